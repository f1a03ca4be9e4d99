"""The widget builders follow JupyterLab's theme: readable and labelled in the dark and the light theme.

Uses the JupyterLab server and helpers of ``test_widgets_browser`` (one server for this module, its own
private user settings directory). Before each page opens, the theme is chosen in that directory
(``@jupyterlab/apputils-extension/themes.jupyterlab-settings``; the server reads it on every request):
"JupyterLab Dark" for the dark run, no setting at all (JupyterLab's default, the light theme) for the other.
Colours are measured with ``getComputedStyle``; contrast is the WCAG 2 ratio. Screenshots go to
``test-artifacts/screenshots/WorkflowBuilder-dark.png`` and ``-light.png``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from test_lexer import MULTI_NODE
from test_widgets_browser import HEAD, lab, open_builder, preview, shot  # noqa: F401  (lab is a fixture)

pytestmark = [pytest.mark.real, pytest.mark.browser]  # Chromium is gated by need_tool in the lab fixture

THEME_SETTINGS = Path("@jupyterlab") / "apputils-extension" / "themes.jupyterlab-settings"
RGB = re.compile(r"rgba?\(\s*([\d.]+)[,\s]+([\d.]+)[,\s]+([\d.]+)(?:\s*[,/]\s*([\d.]+%?))?\s*\)")

# Everything measured in one round trip. For each element: its own colour, and the background colours of
# it and every ancestor (innermost first), so Python can composite translucent layers the way they are painted.
MEASURE = """
() => {
  const cs = (el) => getComputedStyle(el);
  const shown = (el) => el.getClientRects().length > 0 && cs(el).visibility !== 'hidden';
  const backs = (el) => { const out = []; for (let e = el; e; e = e.parentElement) out.push(cs(e).backgroundColor);
                          return out; };
  const sample = (el) => ({color: cs(el).color, backs: backs(el), text: (el.textContent || '').trim().slice(0, 60)});
  const probe = document.createElement('div');
  probe.style.background = 'var(--jp-layout-color0)';
  document.body.appendChild(probe);
  const layout0 = cs(probe).backgroundColor;
  probe.remove();
  const builder = document.querySelector('.hpcw-builder');
  const pre = builder.querySelector('.hpcw-preview pre');
  const labels = [...builder.querySelectorAll('.widget-label, label')].filter(
      (el) => shown(el) && el.textContent.trim());
  const error = [...builder.querySelectorAll('.hpcw-sev-error')].find(shown);
  const inputs = [...builder.querySelectorAll('input:not([type=checkbox]), select, textarea')].filter(shown);
  const name = (el) => {
    const parts = [el.getAttribute('aria-label') || ''];
    for (const id of (el.getAttribute('aria-labelledby') || '').split(/\\s+/).filter(Boolean)) {
      const ref = document.getElementById(id);
      parts.push(ref ? ref.textContent : '');
    }
    for (const l of (el.labels || [])) parts.push(l.textContent);
    return parts.join(' ').trim();
  };
  const controls = [...builder.querySelectorAll('input, select, textarea')].map((el) => ({
    tag: el.tagName.toLowerCase(), type: el.getAttribute('type') || '', name: name(el),
    html: el.outerHTML.slice(0, 160)}));
  return {
    theme: document.body.dataset.jpThemeName || '', light: document.body.dataset.jpThemeLight || '',
    layout0, builder: sample(builder), pre: sample(pre), labels: labels.map(sample),
    inputs: inputs.map(sample), error: error ? sample(error) : null,
    finding: error ? sample(error.closest('.hpcw-finding')) : null, controls,
  };
}
"""


def _rgba(css: str) -> tuple[float, float, float, float]:
    m = RGB.fullmatch(css.strip())
    if m is None:
        raise AssertionError(f"cannot read the computed colour {css!r}; teach _rgba this colour syntax")
    r, g, b, a = m.groups()
    alpha = 1.0 if a is None else (float(a[:-1]) / 100 if a.endswith("%") else float(a))
    return float(r), float(g), float(b), alpha


def _over(top: tuple[float, float, float, float], below: tuple[float, float, float]) -> tuple[float, float, float]:
    """``top`` painted over the opaque colour ``below``."""
    r, g, b, a = top
    return tuple(a * c + (1 - a) * d for c, d in zip((r, g, b), below))  # type: ignore[return-value]


def _background(backs: list[str]) -> tuple[float, float, float]:
    """The opaque colour behind an element: its ancestors' backgrounds composited over the white canvas."""
    colour = (255.0, 255.0, 255.0)
    for css in reversed(backs):
        colour = _over(_rgba(css), colour)
    return colour


def _luminance(rgb: tuple[float, float, float]) -> float:
    def channel(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _contrast(a: tuple[float, float, float], b: tuple[float, float, float]) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def _colours(sample: dict) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """(text colour as painted, background) of a measured element."""
    back = _background(sample["backs"])
    return _over(_rgba(sample["color"]), back), back


def _choose_theme(lab, theme: str | None) -> None:
    settings = Path(lab["work"]).parent / "settings"
    if not (settings / "@jupyterlab").is_dir():
        raise AssertionError(f"the lab fixture's user settings directory is not at {settings}; "
                             "update _choose_theme to where test_widgets_browser.lab puts it")
    path = settings / THEME_SETTINGS
    if theme is None:
        path.unlink(missing_ok=True)
    else:
        path.write_text(json.dumps({"theme": theme}))


@pytest.mark.parametrize("name, theme, light", [
    ("dark", "JupyterLab Dark", False),
    ("light", None, True),  # nothing chosen: JupyterLab's default theme, JupyterLab Light
])
def test_workflow_builder_is_readable_and_labelled_in_the_theme(lab, name, theme, light):
    from playwright.sync_api import expect
    _choose_theme(lab, theme)
    cls = "WorkflowBuilder"
    code = (HEAD.format(work=str(lab["work"]), cls=cls) + f"DECK = {MULTI_NODE!r}\n"
            f"{cls}.from_script(DECK, submit=False)")
    context, page = open_builder(lab, f"{cls}-{name}", code)
    try:
        expected_theme = theme or "JupyterLab Light"
        page.wait_for_function("(t) => document.body.dataset.jpThemeName === t", arg=expected_theme)
        error = page.locator(".hpcw-builder .hpcw-sev-error").first
        expect(error).to_be_visible()
        preview(page).scroll_into_view_if_needed()
        shot(page, f"{cls}-{name}")
        got = page.evaluate(MEASURE)

        # (a) the page really is in the chosen theme
        assert got["theme"] == expected_theme and got["light"] == str(light).lower(), got["theme"]
        layout0 = _luminance(_over(_rgba(got["layout0"]), (255.0, 255.0, 255.0)))
        _, behind = _colours(got["builder"])  # what the notebook paints behind the builder
        if light:
            assert layout0 > 0.8 and _luminance(behind) > 0.8, (got["layout0"], behind)
        else:
            assert layout0 < 0.05 and _luminance(behind) < 0.05, (got["layout0"], behind)

        # (b) the preview follows the theme and its text is readable
        text, back = _colours(got["pre"])
        assert got["pre"]["text"].startswith("#!/bin/bash"), got["pre"]["text"]
        if light:
            assert _luminance(back) > 0.7 and _luminance(text) < 0.1, (text, back)
        else:
            assert _luminance(back) < 0.1 and _luminance(text) > 0.5, (text, back)
        assert _contrast(text, back) >= 4.5, (text, back, _contrast(text, back))

        # (c) labels, and the values typed into controls, are readable
        assert len(got["labels"]) >= 5, got["labels"]
        poor = [(s["text"], round(_contrast(*_colours(s)), 2)) for s in got["labels"] + got["inputs"]
                if _contrast(*_colours(s)) < 4.5]
        assert poor == [], f"text below contrast 4.5 in the {name} theme: {poor}"

        # (d) the error finding stands out from the finding's normal text and can be seen
        assert got["error"] is not None, "no error finding is shown"
        assert re.search(r"\b(HPC\d+|FORM|PROFILE)\b", got["error"]["text"]), got["error"]["text"]
        mark, mark_back = _colours(got["error"])
        normal, _ = _colours(got["finding"])
        distance = sum((x - y) ** 2 for x, y in zip(mark, normal)) ** 0.5
        assert distance > 80, f"the error mark {mark} looks like the normal text {normal}"
        assert mark[0] > mark[1] + 60 and mark[0] > mark[2] + 60, f"the error mark {mark} is not red"
        assert _contrast(mark, mark_back) >= 4.5, (mark, mark_back, _contrast(mark, mark_back))

        # every control has an accessible label
        assert len(got["controls"]) >= 10, got["controls"]
        unnamed = [c["html"] for c in got["controls"] if not c["name"]]
        assert unnamed == [], f"controls without an accessible label: {unnamed}"
    finally:
        context.close()
