"""Offline HTML handouts: built from an executed lesson, opened in headless Chromium from file://.

The page must draw the saved widgets (a builder's text inputs) and must not ask any host but this one
for anything: every request is recorded, and requests to other hosts are blocked and reported.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

import pytest

from helpers import need_tool

ROOT = Path(__file__).resolve().parent.parent
LESSON = "02-apptainer-basics"   # a short lesson with a builder in its saved widget state
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def test_rewrite_points_scripts_at_vendor_and_drops_cdn():
    from hpcwidgets.handouts import EMBED_AMD_JS, REQUIRE_JS, _REMOTE, _rewrite
    page = ('<script src="https://cdnjs.cloudflare.com/ajax/libs/require.js/2.1.10/require.min.js"></script>'
            '<script src="https://unpkg.com/@jupyter-widgets/html-manager@^1.0.1/dist/embed-amd.js"></script>'
            '<script src="https://cdn.example.org/mathjax.js"></script><link rel="stylesheet" href="//fonts.example/x.css">')
    out = _rewrite(page)
    assert f'src="{REQUIRE_JS}"' in out and f'src="{EMBED_AMD_JS}"' in out
    assert not _REMOTE.search(out), out


def test_anywidget_state_becomes_a_plain_button():
    import nbformat
    from hpcwidgets.handouts import WIDGET_STATE_MIME, offline_widget_state
    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {WIDGET_STATE_MIME: {"version_major": 2, "version_minor": 0, "state": {
        "a": {"model_name": "AnyModel", "model_module": "anywidget", "model_module_version": "~0.9.*",
              "state": {"label": "Copy"}},
        "b": {"model_name": "TextModel", "model_module": "@jupyter-widgets/controls", "model_module_version": "2.0.0",
              "state": {"value": "x"}}}}}
    state = offline_widget_state(nb).metadata["widgets"][WIDGET_STATE_MIME]["state"]
    assert state["a"]["model_name"] == "ButtonModel" and state["a"]["state"]["disabled"] is True
    assert state["b"]["state"] == {"value": "x"}
    assert nb.metadata["widgets"][WIDGET_STATE_MIME]["state"]["a"]["model_name"] == "AnyModel"  # input untouched


@pytest.mark.real
@pytest.mark.browser
def test_handout_draws_widgets_offline(tmp_path):
    need_tool("npm", "the handouts install require.js and the widget manager with npm")
    chromium = need_tool("chromium", "the handout test opens the page in headless Chromium")
    playwright = pytest.importorskip("playwright.sync_api")
    from hpcwidgets.handouts import build
    notebook = ROOT / "notebooks" / f"{LESSON}.ipynb"
    assert notebook.is_file(), f"{notebook} is missing"
    out = tmp_path / "handouts"
    vendor = ROOT / "handouts" / "vendor"
    if vendor.is_dir():  # reuse a vendor folder from `make handouts` instead of downloading again
        out.mkdir()
        (out / "vendor").symlink_to(vendor, target_is_directory=True)
    (page_path,) = build(ROOT / "notebooks", out, names=[LESSON])
    text = page_path.read_text(encoding="utf-8")
    assert "application/vnd.jupyter.widget-state+json" in text
    assert not re.search(r"""(?:src|href)=["']https?://""", text)

    requests: list[str] = []
    remote: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()

            def route(r):
                url = r.request.url
                requests.append(url)
                host = urlparse(url).hostname or ""
                if url.startswith(("file:", "data:", "blob:", "about:")) or host in ("localhost", "127.0.0.1"):
                    r.continue_()
                else:
                    remote.append(url)
                    r.abort()
            page.route("**/*", route)
            page.goto(page_path.as_uri())
            # a wait, not a timed assertion: a busy 2-core machine took over 30 s once to lay the widgets out
            page.wait_for_selector(".jupyter-widgets.widget-text input", state="visible", timeout=120_000)
            values = page.eval_on_selector_all(".jupyter-widgets.widget-text input", "els => els.map(e => e.value)")
            previews = page.eval_on_selector_all(".hpcw-preview", "els => els.map(e => e.innerText)")
        finally:
            browser.close()
    assert not remote, f"the handout asked other hosts for: {remote}"
    assert any(u.endswith("embed-amd.js") for u in requests), requests
    assert any("pytorch_24.05.sif" in v for v in values), values
    assert any("apptainer exec" in t for t in previews), previews
