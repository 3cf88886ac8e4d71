"""Run the web app inside an event loop the caller owns (``aggregator run``).

uvicorn's ``Server.serve`` installs SIGINT/SIGTERM handlers; the service already owns those
signals, so the embedded server leaves them alone and stops when the caller's event is set.
The listening socket is bound before uvicorn starts, so an address already in use is reported
as an ``AggregatorError`` instead of uvicorn's ``sys.exit(1)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator

import uvicorn
from starlette.types import ASGIApp

from aggregator.exceptions import AggregatorError

# How many not-yet-accepted connections the kernel queues; the service serves a handful of
# readers and feed readers, so uvicorn's default of 2048 is kept.
LISTEN_BACKLOG = 2048


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
) -> None:
    """Serve ``app`` on ``host:port`` (or on the already bound ``sock``) until ``stop_event``.

    Requests in progress are allowed to finish; the socket is closed on return.
    """
    listener = sock if sock is not None else bind_socket(host, port)
    config = uvicorn.Config(
        app,
        log_config=None,  # keep the process's logging setup
        access_log=False,
        lifespan="off",
        server_header=False,
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
