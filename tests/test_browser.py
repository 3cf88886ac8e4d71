"""The pages in a real headless Chromium, served by a real uvicorn on 127.0.0.1.

Needs Debian's ``chromium`` package (``/usr/bin/chromium``, or ``$CHROMIUM`` pointing elsewhere)
and the ``playwright`` Python package; the Playwright-managed browser download is not used.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from starlette.applications import Starlette
from test_web import NOW, SCRIPT_HEADLINE, make_config, seed

from aggregator.storage import open_storage
from aggregator.web import bind_socket, create_app, serve

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

playwright_sync = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
)

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
# A cold Chromium start on a busy 2-core machine takes a few seconds; 30 s is ample.
LAUNCH_TIMEOUT_MS = 30_000
# uvicorn answers within milliseconds; this bounds a hang rather than a slow start.
SERVER_STOP_SECONDS = 10

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason=f"no Chromium at {CHROMIUM} (apt-get install chromium, or set CHROMIUM)",
)


class LiveServer:
    """The app served by ``aggregator.web.serve`` in its own thread and event loop."""

    def __init__(self, app: Starlette) -> None:
        self.sock = bind_socket("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self._app = app
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="uvicorn-test", daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._ready.set()
            host, port = self.sock.getsockname()[:2]
            await serve(self._app, host, port, self._stop, sock=self.sock)

        asyncio.run(main())

    def __enter__(self) -> LiveServer:
        self._thread.start()
        self._ready.wait()
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(SERVER_STOP_SECONDS)
        assert not self._thread.is_alive(), "uvicorn did not stop"


@pytest.fixture
def live_url(tmp_path: Path) -> Iterator[str]:
    config = make_config(tmp_path)
    storage = open_storage(config.settings.storage_url)
    try:
        seed(storage)
        app = create_app(storage, settings=config.settings, clock=lambda: NOW)
        with LiveServer(app) as server:
            yield server.url
    finally:
        storage.close()


# A phone (iPhone 12-14 CSS width) and a desktop.
WIDTHS = {"phone": 390, "desktop": 1280}
# Words at most this long must never be broken across lines; a longer token (a pasted URL in a
# headline) may wrap anywhere rather than push the page sideways.
MAX_UNBREAKABLE_WORD = 24

# What a person sees, measured in the page: sideways overflow, words split over two lines,
# times split over two lines. Runs in the browser on the laid-out page.
LAYOUT_PROBLEMS_JS = """
(maxWord) => {
  const doc = document.documentElement;
  const problems = [];
  if (doc.scrollWidth > doc.clientWidth) {
    problems.push(`page is ${doc.scrollWidth - doc.clientWidth}px wider than the screen`);
  }
  const walker = document.createTreeWalker(document.querySelector("main"), NodeFilter.SHOW_TEXT);
  const range = document.createRange();
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const parent = node.parentElement;
    // Feed URLs may wrap anywhere (.feed-url): they are addresses, not words.
    if (!parent || parent.closest("details:not([open]), select, option, .feed-url")) continue;
    for (const match of node.data.matchAll(/\\S+/g)) {
      if (match[0].length > maxWord) continue;
      range.setStart(node, match.index);
      range.setEnd(node, match.index + match[0].length);
      const lines = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
      if (lines.size > 1) problems.push(`word cut across lines: ${match[0]}`);
    }
  }
  for (const time of document.querySelectorAll("main time")) {
    const lines = new Set([...time.getClientRects()].map((r) => Math.round(r.top)));
    if (lines.size > 1) problems.push(`time cut across lines: ${time.textContent}`);
  }
  return problems;
}
"""


@pytest.fixture
def browser() -> Iterator[Browser]:
    with playwright_sync.sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=LAUNCH_TIMEOUT_MS
        )
        try:
            yield launched
        finally:
            launched.close()


def _open(browser: Browser, url: str, width: int) -> Page:
    context = browser.new_context(viewport={"width": width, "height": 844})
    page = context.new_page()
    response = page.goto(url)
    assert response is not None and response.status == 200, url
    return page


@pytest.fixture
def page(browser: Browser, live_url: str) -> Page:
    return _open(browser, live_url + "/", WIDTHS["phone"])


# Each page a reader reaches, with text a person must see on it.
PAGES = {
    "front page": (
        "/",
        [
            "Quake hits coast",
            "A strong earthquake struck the coast",
            "Alpha News, Beta Wire, Gamma Times",
        ],
    ),
    "story page": (
        "/stories/quake1",
        ["First report: started this story.", "Same story: shares quake, coast", "Evidence"],
    ),
    "search": ("/?q=rescue", ["Quake hits coast", "1 story matching “rescue”"]),
    "filters": (
        "/?tag=business&min_sources=2",
        ["Quake hits coast", "Markets rally", "from at least 2 outlets"],
    ),
    "sources page": (
        "/feeds",
        ["Alpha News", "Delta Daily", "connection refused by delta.example", "410 Gone"],
    ),
}


@pytest.mark.parametrize("width", WIDTHS.values(), ids=WIDTHS.keys())
@pytest.mark.parametrize("name", PAGES)
def test_pages_read_well_on_a_phone_and_a_desktop(
    browser: Browser, live_url: str, name: str, width: int
) -> None:
    path, texts = PAGES[name]
    page = _open(browser, live_url + path, width)
    visible = page.locator("main").inner_text()
    for text in texts:
        assert text in visible, f"{text!r} not visible on {name} at {width}px"
    assert page.evaluate(LAYOUT_PROBLEMS_JS, MAX_UNBREAKABLE_WORD) == []


def test_story_evidence_is_folded_until_asked_for(browser: Browser, live_url: str) -> None:
    page = _open(browser, live_url + "/stories/quake1", WIDTHS["phone"])
    evidence = page.locator("li", has_text="Beta Wire").locator("dl.evidence")
    assert not evidence.is_visible()
    page.locator("li", has_text="Beta Wire").locator("summary").click()
    assert evidence.is_visible()
    assert "shared_terms" in evidence.inner_text()


def test_filter_form_submits_without_javascript(browser: Browser, live_url: str) -> None:
    page = _open(browser, live_url + "/", WIDTHS["desktop"])
    page.select_option("select[name=min_sources]", "3")
    page.click("form[role=search] button")
    page.wait_for_url("**/?*min_sources=3*")
    assert page.locator("article h2 a").all_inner_texts() == ["Quake hits coast"]
    page.fill("input[name=q]", "budget")
    page.select_option("select[name=min_sources]", "1")
    page.click("form[role=search] button")
    page.wait_for_url("**q=budget*")
    assert page.locator("article h2 a").all_inner_texts() == ["Budget passes"]


def test_script_headline_renders_as_text_and_runs_nothing(page: Page) -> None:
    assert page.evaluate("() => window.pwned === undefined")
    assert page.title() != "pwned"
    headline = page.locator("article h2 a", has_text="Markets rally").first
    assert headline.inner_text() == SCRIPT_HEADLINE
    assert headline.is_visible()
    # No script element exists anywhere in the page: the headline is text, not markup.
    assert page.locator("script").count() == 0
