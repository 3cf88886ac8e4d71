"""The home page in a real headless Chromium, served by a real uvicorn on 127.0.0.1.

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
    from playwright.sync_api import Page

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


@pytest.fixture
def page(live_url: str) -> Iterator[Page]:
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=LAUNCH_TIMEOUT_MS
        )
        try:
            context = browser.new_context(viewport={"width": 390, "height": 844})  # a phone
            page = context.new_page()
            page.goto(live_url + "/")
            yield page
        finally:
            browser.close()


def test_story_with_three_outlets_shows_three_source_links(page: Page) -> None:
    quake = page.locator("article", has_text="Quake hits coast")
    links = quake.locator("ul.aggregator-sources li a")
    assert links.count() == 3
    assert links.all_inner_texts() == [
        "Quake hits coast",
        "Strong quake strikes coast",
        "Coast quake: dozens hurt",
    ]
    assert [links.nth(i).get_attribute("href") for i in range(3)] == [
        "https://alpha.example/a-quake",
        "https://beta.example/b-quake",
        "https://gamma.example/g-quake",
    ]
    assert "3 outlets" in quake.locator(".meta").inner_text()


def test_script_headline_renders_as_text_and_runs_nothing(page: Page) -> None:
    assert page.evaluate("() => window.pwned === undefined")
    assert page.title() != "pwned"
    headline = page.locator("article h2 a", has_text="Markets rally").first
    assert headline.inner_text() == SCRIPT_HEADLINE
    assert headline.is_visible()
    # No script element exists anywhere in the page: the headline is text, not markup.
    assert page.locator("script").count() == 0


def test_page_fits_a_phone_screen(page: Page) -> None:
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
