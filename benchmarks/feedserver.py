"""A fast local feed server for the polling benchmarks: HTTP/1.1 keep-alive on 127.0.0.1.

The server runs in its own processes (``workers`` asyncio protocol servers sharing one port
through ``SO_REUSEPORT``), so it does not compete with the measured client for the GIL. The
documents of ``aggregator.testing.feedgen`` are generated before the timed part (``prepare``) into a
folder of files, so what a benchmark measures is the client, not the generator.

    with FeedServer(feeds=1000) as server:
        server.prepare(0)            # first cycle: every feed is new
        urls = server.urls()
        ...poll...
        server.prepare(1)            # steady cycle: 5 % of the feeds carry two new entries

``GET /feed/{i}.xml`` answers 200 with the feed's current document, or 304 when the request's
``If-None-Match`` / ``If-Modified-Since`` match (feeds without validators always answer 200
with the same bytes). Anything else is 404.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from types import TracebackType

from aggregator.testing import feedgen

# Server processes. One answers ~10k conditional requests/s here, more than the client can
# send; two keep first-cycle bodies flowing while the client parses.
DEFAULT_WORKERS = 2
# Seconds a starting worker has to bind its socket before the benchmark gives up.
START_TIMEOUT = 10.0
# Sequence number 0 of every feed is published this long before the server starts, so the
# entries are recent (inside the match window) as on a live news site.
BASE_AGE_SECONDS = 24 * 3600
_MAX_HEADER_BYTES = 16 * 1024

_SPAWN = multiprocessing.get_context("spawn")


def _file(root: Path, feed: int, version: int) -> Path:
    return root / f"{feed}-{version}.xml"


def _write_documents(root: str, cycle: int, base: float, feeds: Sequence[int]) -> int:
    for feed in feeds:
        path = _file(Path(root), feed, feedgen.version(feed, cycle))
        if not path.exists():
            path.write_bytes(feedgen.document(feed, cycle, base).body)
    return len(feeds)


class _Http(asyncio.Protocol):
    """A minimal HTTP/1.1 keep-alive responder for GET requests (no bodies, no pipelining)."""

    def __init__(self, root: Path, feeds: int, base: float, cycle: Synchronized[int]) -> None:
        self._root = root
        self._base = base
        self._feeds = feeds
        self._cycle = cycle
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while b"\r\n\r\n" in self._buffer:
            head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
            self._respond(head)
        if len(self._buffer) > _MAX_HEADER_BYTES and self._transport is not None:
            self._transport.close()

    def _respond(self, head: bytes) -> None:
        assert self._transport is not None
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        path = parts[1] if len(parts) == 3 else ""
        feed = -1
        if path.startswith("/feed/") and path.endswith(".xml"):
            number = path[len("/feed/") : -len(".xml")]
            feed = int(number) if number.isdigit() else -1
        if not 0 <= feed < self._feeds:
            self._send(b"404 Not Found", [], b"not found")
            return
        cycle = self._cycle.value
        etag, modified = feedgen.validators(feed, cycle, self._base)
        extra = []
        if etag is not None and modified is not None:
            extra = [("ETag", etag), ("Last-Modified", modified)]
            inm, ims = headers.get("if-none-match"), headers.get("if-modified-since")
            if inm == etag or (inm is None and ims == modified):
                self._send(b"304 Not Modified", extra, b"")
                return
        body = _file(self._root, feed, feedgen.version(feed, cycle)).read_bytes()
        extra.append(("Content-Type", "application/rss+xml; charset=utf-8"))
        self._send(b"200 OK", extra, body, head=parts[0] == "HEAD")

    def _send(
        self, status: bytes, headers: list[tuple[str, str]], body: bytes, *, head: bool = False
    ) -> None:
        assert self._transport is not None
        lines = [b"HTTP/1.1 " + status, b"Content-Length: %d" % len(body)]
        lines += [f"{k}: {v}".encode("latin-1") for k, v in headers]
        self._transport.write(b"\r\n".join(lines) + b"\r\n\r\n" + (b"" if head else body))


def _serve(
    port: int, root: str, feeds: int, base: float, cycle: Synchronized[int], ready: object
) -> None:
    async def main() -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(4096)
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Http(Path(root), feeds, base, cycle), sock=sock)
        ready.set()  # type: ignore[attr-defined]
        await server.serve_forever()

    asyncio.run(main())


class FeedServer:
    """``feeds`` synthetic feeds served from ``workers`` processes; a context manager."""

    def __init__(self, feeds: int, *, workers: int = DEFAULT_WORKERS) -> None:
        self.feeds = feeds
        self.workers = workers
        self.base = float(int(time.time()) - BASE_AGE_SECONDS)
        self._root = Path(tempfile.mkdtemp(prefix="feedserver-"))
        self._cycle: Synchronized[int] = _SPAWN.Value("i", 0)
        self._procs: list[multiprocessing.process.BaseProcess] = []
        self.port = 0

    @property
    def pids(self) -> list[int]:
        """Process ids of the server workers (left out of the client's CPU figures)."""
        return [p.pid for p in self._procs if p.pid is not None]

    def url(self, feed: int) -> str:
        """The URL of feed number ``feed``."""
        return f"http://127.0.0.1:{self.port}/feed/{feed}.xml"

    def urls(self) -> list[str]:
        """The URLs of every feed, in feed order."""
        return [self.url(i) for i in range(self.feeds)]

    def prepare(self, cycle: int, *, jobs: int | None = None) -> None:
        """Write every document ``cycle`` needs (in parallel), then serve ``cycle``."""
        jobs = jobs or os.cpu_count() or 1
        step = max(1, self.feeds // (jobs * 8))
        batches = [range(s, min(s + step, self.feeds)) for s in range(0, self.feeds, step)]
        if self.feeds <= step or jobs == 1:
            _write_documents(str(self._root), cycle, self.base, range(self.feeds))
        else:
            with ProcessPoolExecutor(jobs, mp_context=_SPAWN) as pool:
                jobs_done = [
                    pool.submit(_write_documents, str(self._root), cycle, self.base, batch)
                    for batch in batches
                ]
                for job in jobs_done:
                    job.result()
        self._cycle.value = cycle

    def start(self) -> FeedServer:
        """Start the server processes on a free port."""
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        probe.bind(("127.0.0.1", 0))
        self.port = int(probe.getsockname()[1])
        try:
            for _ in range(self.workers):
                ready = _SPAWN.Event()
                args = (self.port, str(self._root), self.feeds, self.base, self._cycle, ready)
                proc = _SPAWN.Process(target=_serve, args=args, daemon=True)
                proc.start()
                self._procs.append(proc)
                if not ready.wait(START_TIMEOUT):
                    raise RuntimeError("feed server process did not start")
        except BaseException:
            self.stop()
            raise
        finally:
            probe.close()  # the workers hold the port now
        return self

    def stop(self) -> None:
        """Stop the server processes and delete the documents."""
        for proc in self._procs:
            proc.terminate()
        for proc in self._procs:
            proc.join()
        self._procs.clear()
        shutil.rmtree(self._root, ignore_errors=True)

    def __enter__(self) -> FeedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
