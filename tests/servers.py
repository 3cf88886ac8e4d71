"""A real HTTP/1.1 server on 127.0.0.1 for tests: no mocks between the client and the socket.

Usage::

    with LoopbackServer() as server:
        server.route("/feed.xml", Reply(body=b"<rss/>", etag='"v1"'))
        server.route("/slow", lambda request: Reply(body=drip(b"x" * 100, every=0.5)))
        url = server.url("/feed.xml")
        ...
        assert server.requests[0].headers["user-agent"].startswith("aggregator/")

A route maps a path (query string ignored) to a ``Reply`` or to a callable taking the
``RecordedRequest`` and returning a ``Reply``. A ``Reply`` body is bytes, or an iterable of byte
chunks written as they are produced (so a generator can sleep between chunks, never end, or raise
to cut the connection). ``etag`` / ``last_modified`` make the server answer conditional requests
with 304 Not Modified the way a well-behaved origin does. ``raw`` bypasses HTTP framing entirely
for malformed responses. Unknown paths answer 404. Every request is recorded in ``requests``.
"""

from __future__ import annotations

import email.utils
import http.server
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from types import TracebackType

Handler = Callable[["RecordedRequest"], "Reply"]

# How long a stopping server waits for its accept loop: the loop polls every 0.5 s by default.
SHUTDOWN_POLL_SECONDS = 0.02


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it; header names are lower-case."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    client: tuple[str, int]
    received_at: float


@dataclass
class Reply:
    """What the server sends for one request.

    ``content_length``: ``"auto"`` sends the real length of a bytes body (and of nothing for an
    iterable body unless ``chunked``); an int sends that value whatever the body (to lie);
    ``None`` sends no Content-Length. ``chunked`` uses chunked transfer encoding. An iterable
    body without ``chunked`` or a length is ended by closing the connection.
    """

    status: int = 200
    body: bytes | Iterable[bytes] = b""
    headers: Sequence[tuple[str, str]] | Mapping[str, str] = ()
    etag: str | None = None
    last_modified: str | None = None
    content_length: int | str | None = "auto"
    chunked: bool = False
    delay: float = 0.0
    raw: bytes | None = None
    reason: str | None = None

    @classmethod
    def redirect(cls, location: str, status: int = 302) -> Reply:
        """A redirect to ``location`` (absolute or relative)."""
        return cls(status=status, headers={"Location": location})


def drip(data: bytes, *, every: float, size: int = 1) -> Iterator[bytes]:
    """Yield ``data`` ``size`` bytes at a time, sleeping ``every`` seconds before each piece."""
    for start in range(0, len(data), size):
        time.sleep(every)
        yield data[start : start + size]


def endless(chunk: bytes = b"x" * 65536) -> Iterator[bytes]:
    """Yield ``chunk`` forever (the server stops it when the client disconnects)."""
    while True:
        yield chunk


@dataclass
class _Routes:
    table: dict[str, Reply | Handler] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)


def _not_modified(request: RecordedRequest, reply: Reply) -> bool:
    inm = request.headers.get("if-none-match")
    if inm is not None and reply.etag is not None:
        tags = {t.strip() for t in inm.split(",")}
        return reply.etag in tags or "*" in tags
    ims = request.headers.get("if-modified-since")
    if ims is not None and reply.last_modified is not None:
        try:
            since = email.utils.parsedate_to_datetime(ims)
            modified = email.utils.parsedate_to_datetime(reply.last_modified)
        except (TypeError, ValueError):
            return False
        return modified <= since
    return False


class _RequestHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    routes: _Routes  # set on the per-server subclass

    def log_message(self, format: str, *args: object) -> None:
        """Silence the default stderr access log."""

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = RecordedRequest(
            method=self.command,
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            client=(str(self.client_address[0]), int(self.client_address[1])),
            received_at=time.monotonic(),
        )
        with self.routes.lock:
            self.routes.requests.append(request)
            target = self.routes.table.get(self.path.split("?", 1)[0])
        if target is None:
            reply = Reply(status=404, body=b"not found")
        elif isinstance(target, Reply):
            reply = target
        else:
            reply = target(request)
        try:
            self._send(request, reply)
        except (BrokenPipeError, ConnectionResetError, _Stopped):
            self.close_connection = True

    do_GET = do_HEAD = do_POST = _handle

    def _send(self, request: RecordedRequest, reply: Reply) -> None:
        if reply.delay:
            time.sleep(reply.delay)
        if reply.raw is not None:
            self.wfile.write(reply.raw)
            self.wfile.flush()
            self.close_connection = True
            return
        if _not_modified(request, reply):
            self.send_response(304)
            self._validators(reply)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        reason = reply.reason
        if reason is None:
            try:
                reason = HTTPStatus(reply.status).phrase
            except ValueError:
                reason = ""
        self.send_response(reply.status, reason)
        headers = reply.headers.items() if isinstance(reply.headers, Mapping) else reply.headers
        for name, value in headers:
            self.send_header(name, value)
        self._validators(reply)
        body = reply.body
        if reply.chunked:
            self.send_header("Transfer-Encoding", "chunked")
        elif isinstance(reply.content_length, int):
            self.send_header("Content-Length", str(reply.content_length))
        elif reply.content_length == "auto" and isinstance(body, bytes):
            self.send_header("Content-Length", str(len(body)))
        else:
            self.close_connection = True
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command == "HEAD":
            return
        chunks: Iterable[bytes] = [body] if isinstance(body, bytes) else body
        for chunk in chunks:
            if self.routes.stopping.is_set():
                raise _Stopped
            if reply.chunked:
                if chunk:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            else:
                self.wfile.write(chunk)
            self.wfile.flush()
        if reply.chunked:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        if isinstance(reply.content_length, int) and not isinstance(body, bytes):
            self.close_connection = True

    def _validators(self, reply: Reply) -> None:
        if reply.etag is not None:
            self.send_header("ETag", reply.etag)
        if reply.last_modified is not None:
            self.send_header("Last-Modified", reply.last_modified)


class _Stopped(Exception):
    """The server is stopping: abandon the response being written."""


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A client hanging up mid-request is normal in these tests; anything else is reported."""
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


class LoopbackServer:
    """A threaded HTTP/1.1 server on 127.0.0.1 at a free port; use as a context manager."""

    def __init__(self, routes: Mapping[str, Reply | Handler] | None = None) -> None:
        self._routes = _Routes(table=dict(routes or {}))
        handler = type("Handler", (_RequestHandler,), {"routes": self._routes})
        self._httpd = _Server(("127.0.0.1", 0), handler)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "/") -> str:
        """The absolute URL of ``path`` on this server."""
        return self.base_url + path

    def route(self, path: str, reply: Reply | Handler) -> None:
        """Serve ``reply`` (or call it per request) at ``path``; replaces any earlier route."""
        with self._routes.lock:
            self._routes.table[path] = reply

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the requests received so far, oldest first."""
        with self._routes.lock:
            return list(self._routes.requests)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        """The requests received for ``path`` (query string ignored)."""
        return [r for r in self.requests if r.path.split("?", 1)[0] == path]

    def start(self) -> LoopbackServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": SHUTDOWN_POLL_SECONDS},
            name=f"loopback-http-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, abandon responses still being written, close the socket."""
        self._routes.stopping.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def closed_port() -> int:
    """A port on 127.0.0.1 with nothing listening (bound then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
