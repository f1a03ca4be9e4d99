"""The built deck in headless Chromium: every slide is there, the title renders, nothing is fetched.

Builds the HTML into a temporary folder with Marp CLI (installed from the npm registry into
``slides/.marp`` on first use), serves it from 127.0.0.1 and opens it with Playwright.
"""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest

from helpers import need, need_tool

from hpcwidgets import slides

pytestmark = [pytest.mark.real, pytest.mark.browser]

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"
LOCAL_HOSTS = {"127.0.0.1", "localhost"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    need_tool("chromium", "the browser test opens the deck in headless Chromium")
    need_tool("npm", "Marp CLI is installed from the npm registry")
    out = tmp_path_factory.mktemp("slides-build")
    result = slides.build(out_dir=out, pdf=False, sync=False)
    return result.html


@pytest.fixture(scope="module")
def server(built: Path):
    handler = functools.partial(_QuietHandler, directory=str(built.parent))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/{built.name}"
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002  (keep pytest output clean)
        pass


def test_every_slide_renders_and_nothing_leaves_localhost(server: str) -> None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need(False, "Python Playwright is not installed (pip install playwright)")
    requested: list[str] = []
    left: list[str] = []

    def guard(route) -> None:  # type: ignore[no-untyped-def]
        url = route.request.url
        requested.append(url)
        parsed = urlparse(url)
        if parsed.scheme in ("data", "blob", "about") or parsed.hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            left.append(url)
            route.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            page.route("**/*", guard)
            page.goto(server, wait_until="load")
            sections = page.locator("svg[data-marpit-svg] > foreignObject > section")
            count = sections.count()
            title = page.locator("svg[data-marpit-svg] > foreignObject > section h1").first.inner_text()
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            shot = SCREENSHOTS / "slides-title.png"
            page.screenshot(path=str(shot))
            images = page.locator("img.diagram")
            n_images = images.count()
            broken = page.evaluate("() => Array.from(document.querySelectorAll('img.diagram'))"
                                   ".filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt)")
        finally:
            browser.close()

    deck = (slides.SLIDES_DIR / slides.DECK_NAME).read_text(encoding="utf-8")
    assert count == slides.count_slides(deck), "the HTML has a different number of slides than the deck's --- separators"
    assert "Containers for machine learning" in title
    assert shot.is_file() and shot.stat().st_size > 10_000, "the title screenshot is missing or blank"
    assert n_images == deck.count("](diagrams/"), "every diagram of the deck is an inlined image"
    assert broken == [], f"diagrams that did not decode: {broken}"
    assert requested, "the page made no request at all (the route guard did not run)"
    assert left == [], f"requests left localhost: {left}"
