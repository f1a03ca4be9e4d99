"""The forms in a real JupyterLab and Chromium, session 20: the keyboard reaches every part (Advanced, Load and Reset,
the preview), nothing is cut off at 1500 or 800 px, and a bad value is explained under its field.

Uses the JupyterLab server and helpers of tests/test_widgets_browser.py; skipped without Chromium and Playwright,
failed under ``HPCW_REQUIRE_REAL=1``.
"""

from __future__ import annotations

import pytest

from test_lexer import MULTI_NODE
from test_widgets_browser import HEAD, control, findings, lab, open_builder, preview, shot, type_into  # noqa: F401

pytestmark = [pytest.mark.real, pytest.mark.browser]

#: what is cut off in the builder: tab titles narrower than their text, controls that reach past the tab panel or
#: their row, placeholders longer than their box (measured with the input's own font)
CUT = """() => {
  const b = document.querySelector('.hpcw-builder'); const out = [];
  for (const t of b.querySelectorAll('.lm-TabBar-tabLabel'))
    if (t.scrollWidth > t.clientWidth + 1) out.push(['tab title', t.textContent]);
  for (const panel of b.querySelectorAll('.widget-tab-contents')) {
    const right = panel.getBoundingClientRect().right;
    for (const i of panel.querySelectorAll('input, textarea, select')) {
      const r = i.getBoundingClientRect();
      if (r.width && r.right > right - 1) out.push(['past the panel', i.getAttribute('aria-label') || i.placeholder]);
    }
  }
  const ctx = document.createElement('canvas').getContext('2d');
  for (const i of b.querySelectorAll('input[placeholder]')) {
    if (!i.offsetWidth || !i.placeholder) continue;
    const s = getComputedStyle(i); ctx.font = s.font;
    const room = i.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight);
    if (ctx.measureText(i.placeholder).width > room + 0.5) out.push(['placeholder', i.placeholder]);
  }
  return out; }"""


def _nothing_cut_on_any_tab(page) -> list:
    cut = []
    tabs = page.locator(".hpcw-builder .lm-TabBar-tab")
    for n in range(tabs.count()):
        tabs.nth(n).click()
        cut += page.evaluate(CUT)
    tabs.first.click()
    return cut


def _focused(page) -> str:
    return page.evaluate("() => { const e = document.activeElement; "
                         "return (e.labels && e.labels.length ? e.labels[0].textContent : e.textContent).trim(); }")


@pytest.mark.parametrize("width", [1500, 800])
def test_nothing_is_cut_off(lab, width):
    cls = "WorkflowBuilder"
    code = HEAD.format(work=str(lab["work"]), cls=cls) + f"{cls}(profile='generic', submit=False)"
    context, page = open_builder(lab, f"{cls}-{width}", code)
    try:
        page.set_viewport_size({"width": width, "height": 1100})
        page.get_by_role("button", name="Show advanced fields").first.click()  # its fields are measured too
        assert _nothing_cut_on_any_tab(page) == []
        pre = page.locator(".hpcw-preview pre").first
        column = page.locator(".hpcw-preview").first
        assert pre.bounding_box()["width"] <= column.bounding_box()["width"] + 0.5, "the preview keeps to its column"
        shot(page, f"s20-layout-{width}")
    finally:
        context.close()


def test_keyboard_reaches_advanced_load_and_the_preview(lab):
    from playwright.sync_api import expect
    cls = "WorkflowBuilder"
    code = HEAD.format(work=str(lab["work"]), cls=cls) + f"{cls}(profile='generic', submit=False)"
    context, page = open_builder(lab, f"{cls}-keyboard", code)
    try:
        control(page, "Set-up lines").focus()
        page.keyboard.press("Tab")
        assert _focused(page).startswith("Show advanced fields")
        expect(control(page, "QOS")).to_be_hidden()
        page.keyboard.press("Enter")
        expect(page.get_by_role("button", name="Hide advanced fields")).to_be_focused()
        expect(control(page, "QOS")).to_be_visible()
        page.keyboard.press("Tab")
        assert _focused(page) == "QOS"
        page.keyboard.press("Shift+Tab")
        page.keyboard.press(" ")
        expect(control(page, "QOS")).to_be_hidden()

        page.get_by_role("button", name="Show Load and Reset").focus()
        page.keyboard.press("Enter")
        expect(page.get_by_role("button", name="Hide Load and Reset")).to_be_focused()
        expect(page.locator(".hpcw-builder button[title='Read the pasted text into the form']")).to_be_visible()

        pre = page.locator(".hpcw-preview pre").first
        pre.focus()
        expect(pre).to_be_focused()
        assert pre.evaluate("e => e.scrollWidth > e.clientWidth"), "the preview has a line wider than its column"
        page.keyboard.press("End")
        page.keyboard.press("ArrowRight")
        page.wait_for_function("() => document.querySelector('.hpcw-preview pre').scrollLeft > 0")
    finally:
        context.close()


def test_a_bad_value_is_explained_under_its_field_and_findings_lines_are_even(lab):
    from playwright.sync_api import expect
    cls = "WorkflowBuilder"
    code = (HEAD.format(work=str(lab["work"]), cls=cls) + f"DECK = {MULTI_NODE!r}\n"
            f"{cls}.from_script(DECK, profile='generic', submit=False)")
    context, page = open_builder(lab, f"{cls}-messages", code)
    try:
        page.set_viewport_size({"width": 800, "height": 1100})
        box = control(page, "Time limit")
        box.fill("1.5h")
        box.press("Tab")
        row = page.locator(".hpcw-field", has=page.get_by_label("Time limit", exact=True))
        under = row.locator(".hpcw-field-error")
        expect(under).to_be_visible()
        expect(under).to_contain_text("'1.5h' is not a Slurm time")
        expect(findings(page)).to_contain_text("'1.5h' is not a Slurm time")  # Findings says it as before
        gap = under.bounding_box()["y"] - (box.bounding_box()["y"] + box.bounding_box()["height"])
        assert 0 <= gap < 20, "right under its box"
        shot(page, "s20-message-under-field")
        type_into(page, "Time limit", "02:00:00")
        expect(row.locator(".hpcw-field-error")).to_be_hidden()

        expect(preview(page)).to_contain_text("#SBATCH --time=02:00:00")  # the form's refresh is done
        fixable = page.locator(".hpcw-finding-row", has_text="HPC101").locator(".hpcw-finding")
        expect(fixable).to_be_visible()
        for _ in range(20):
            spacing = fixable.evaluate(
                "e => [parseFloat(getComputedStyle(e).lineHeight), parseFloat(getComputedStyle(e).fontSize)]")
            if spacing[0] == spacing[0]:
                break  # (NaN: the findings were drawn again as the element was read, and it had left the page)
            page.wait_for_timeout(100)
        assert spacing[0] < 2 * spacing[1], f"a finding's lines are spaced as text, not as control rows: {spacing}"
    finally:
        context.close()
