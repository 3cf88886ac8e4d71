"""``aggregator demo``: the product working without internet.

Serves the sample feeds bundled in ``demo_feeds/`` (five outlets reporting the Putin–Erdogan
Ankara talks of 28 September 2017, among unrelated stories and a near miss: the two leaders'
phone call of 25 September) on 127.0.0.1, polls them through the real pipeline into a
temporary storage folder, publishes, and returns the merged stories. With ``listen``, it then
serves the front page, the story pages and the merged feeds there until stopped (Ctrl-C).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path

from aggregator.config import Config, load_config_text
from aggregator.runtime import open_runtime
from aggregator.storage.base import Storage
from aggregator.types import Story

DEMO_FEEDS = ("rferl", "reuters", "tass", "ap", "afp")


def _feed_bytes(name: str) -> bytes:
    return resources.files("aggregator").joinpath("demo_feeds", f"{name}.xml").read_bytes()


class _DemoHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        name = self.path.strip("/").removesuffix(".xml")
        if name not in DEMO_FEEDS:
            self.send_error(404)
            return
        body = _feed_bytes(name)
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the demo prints its own summary."""


@contextlib.contextmanager
def serve_demo_feeds() -> Iterator[str]:
    """Serve the bundled feeds on an ephemeral loopback port; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _DemoHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def demo_config_text(base_url: str, folder: Path) -> str:
    feeds = "\n".join(f"  - url: {base_url}/{name}.xml" for name in DEMO_FEEDS)
    return (
        "settings:\n"
        f"  storage: {folder / 'demo.db'}\n"
        f"  output: {folder}\n"
        "  allow_networks: ['127.0.0.0/8']\n"
        f"feeds:\n{feeds}\n"
    )


async def run_demo(
    folder: Path | None = None,
    *,
    listen: tuple[str, int] | None = None,
    on_serving: Callable[[list[Story], str], None] | None = None,
    stop: asyncio.Event | None = None,
) -> list[Story]:
    """Poll the bundled feeds once into ``folder`` (a temporary one by default).

    With ``listen`` (host, port), serve the web pages and feeds there afterwards until
    ``stop`` is set (by default: until SIGINT or SIGTERM), calling ``on_serving`` with the
    stories and the address once the socket is bound."""
    with contextlib.ExitStack() as stack:
        if folder is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="aggregator-")))
        base_url = stack.enter_context(serve_demo_feeds())
        config = load_config_text(demo_config_text(base_url, folder), folder / "feeds.yml")
        async with open_runtime(config) as runtime:
            await runtime.updater.refresh_many(runtime.storage.list_feeds())
            runtime.publish()
            stories = runtime.storage.recent_stories(config.settings.max_stories)
            if listen is not None:
                await _serve(runtime.storage, config, listen, stories, on_serving, stop)
            return stories
    raise AssertionError("unreachable")  # pragma: no cover - ExitStack does not swallow


async def _serve(
    storage: Storage,
    config: Config,
    listen: tuple[str, int],
    stories: list[Story],
    on_serving: Callable[[list[Story], str], None] | None,
    stop: asyncio.Event | None,
) -> None:
    from aggregator.web import bind_socket, create_app, serve

    host, port = listen
    sock = bind_socket(host, port)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{sock.getsockname()[1]}/"
    app = create_app(storage, settings=config.settings, public_url=url)
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
    if on_serving is not None:
        on_serving(stories, url)
    await serve(app, host, port, stop, sock=sock)
