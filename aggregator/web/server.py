"""Run the web app inside an event loop the caller owns (``aggregator run``).

uvicorn's ``Server.serve`` installs SIGINT/SIGTERM handlers; the service already owns those
signals, so the embedded server leaves them alone and stops when the caller's event is set.
The listening socket is bound before uvicorn starts, so an address already in use is reported
as an ``AggregatorError`` instead of uvicorn's ``sys.exit(1)``.

Idle and slow clients are bounded (issue #19: 1,100 connections that sent nothing exhausted the
file descriptors and ``/healthz`` went unanswered for 75 s). uvicorn's keep-alive timeout only
starts after a response and stops at the first byte received, so ``_GuardedH11Protocol`` adds a
deadline for a whole request head, from the connection's start or the previous response, and
keeps at most ``MAX_CONNECTIONS`` open by closing the connection that waited longest for its
request when a new one comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator
from typing import Any, ClassVar

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

from aggregator.exceptions import AggregatorError

# How many not-yet-accepted connections the kernel queues; the service serves a handful of
# readers and feed readers, so uvicorn's default of 2048 is kept.
LISTEN_BACKLOG = 2048
# Open connections at most: far below the usual 1,024 file descriptors of a process (the
# database, the parse and index processes' pipes and the fetcher's connections need the
# rest), and far above what a handful of readers, feed readers and a proxy hold.
MAX_CONNECTIONS = 256
# Seconds a client has to send a whole request head, from connecting or from the previous
# response. A browser or feed reader sends it at once; only an idle or a slowloris client
# takes longer.
REQUEST_HEAD_TIMEOUT = 10.0
# Seconds an idle kept-alive connection stays open after a response (uvicorn's default).
KEEP_ALIVE_TIMEOUT = 5
# Requests in progress at most; beyond it uvicorn answers 503 at once. uvicorn counts open
# connections against it as well, so it is one over the connection cap: a connection the cap
# let in is never refused its request.
LIMIT_CONCURRENCY = MAX_CONNECTIONS + 1


class _GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request head and a cap on connections."""

    head_timeout: ClassVar[float] = REQUEST_HEAD_TIMEOUT
    max_connections: ClassVar[int] = MAX_CONNECTIONS
    # Connections waiting for a request head, oldest first (a dict keeps insertion order).
    waiting: ClassVar[dict[_GuardedH11Protocol, None]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            oldest = next(iter(self.waiting), None)
            (oldest or self)._close()
            if oldest is None:
                return
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:  # a request head arrived: the app has it now
            self._stop_waiting()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._await_head()

    def _await_head(self) -> None:
        self._stop_waiting()
        self.waiting[self] = None
        self._head_deadline = self.loop.call_later(self.head_timeout, self._close)

    def _stop_waiting(self) -> None:
        self.waiting.pop(self, None)
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _close(self) -> None:
        self._stop_waiting()
        if not self.transport.is_closing():
            self.transport.close()


def guarded_protocol(
    *, head_timeout: float = REQUEST_HEAD_TIMEOUT, max_connections: int = MAX_CONNECTIONS
) -> type[H11Protocol]:
    """The protocol class of one server, with its own bounds and its own waiting list."""
    attributes = {
        "head_timeout": head_timeout,
        "max_connections": max_connections,
        "waiting": {},
    }
    return type("GuardedH11Protocol", (_GuardedH11Protocol,), attributes)


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # The service installs its own SIGINT/SIGTERM handlers and sets the stop event.
        yield


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0 picks a free port).

    Raises ``AggregatorError`` naming the address when it cannot be bound.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family = infos[0][0]
        sock = socket.create_server((host, port), family=family, backlog=LISTEN_BACKLOG)
    except OSError as exc:
        raise AggregatorError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.setblocking(False)
    return sock


async def serve(
    app: ASGIApp,
    host: str,
    port: int,
    stop_event: asyncio.Event,
    *,
    sock: socket.socket | None = None,
    head_timeout: float = REQUEST_HEAD_TIMEOUT,
    max_connections: int = MAX_CONNECTIONS,
) -> None:
    """Serve ``app`` on ``host:port`` (or on the already bound ``sock``) until ``stop_event``.

    Requests in progress are allowed to finish; the socket is closed on return. A client gets
    ``head_timeout`` seconds for each request head; past ``max_connections`` open connections
    the one waiting longest for its request is closed.
    """
    listener = sock if sock is not None else bind_socket(host, port)
    config = uvicorn.Config(
        app,
        log_config=None,  # keep the process's logging setup
        access_log=False,
        lifespan="off",
        server_header=False,
        http=guarded_protocol(head_timeout=head_timeout, max_connections=max_connections),
        timeout_keep_alive=KEEP_ALIVE_TIMEOUT,
        limit_concurrency=LIMIT_CONCURRENCY,
    )
    server = _EmbeddedServer(config)

    async def stop_when_asked() -> None:
        await stop_event.wait()
        server.should_exit = True

    watcher = asyncio.create_task(stop_when_asked(), name="web stop watcher")
    try:
        await server.serve(sockets=[listener])
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        listener.close()
