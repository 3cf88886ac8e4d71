"""httpcore's connection pool with bookkeeping that does not grow with the pool on each request.

httpcore 1.0's ``AsyncConnectionPool._assign_requests_to_connections`` runs on every request
and every response close, and each run asks every pooled connection whether it has expired
(a ``poll`` on its socket) and, for each idle one, rebuilds a list of all connections only to
take its length, which makes the run quadratic (encode/httpx#3215). Measured here with 64
kept-alive connections: 6,000 requests made 39,000 runs and 10 M ``is_idle`` calls, the largest
cost of a steady polling cycle. ``LinearPool`` makes the same decisions with less work:

- the length is taken of the list itself, so a full sweep is linear;
- the full sweep (drop closed connections, close expired and surplus idle ones) runs at most
  every ``SWEEP_SECONDS``, and whenever a request needs a new connection while the pool is full,
  so a dead connection never holds a slot that a request is waiting for; in between, only a
  connection about to be reused is checked for expiry, and an expired one is closed, not used;
- an idle connection already handed to a request that has not yet started on it is not handed
  to a second one. Upstream does, and all but one of those requests then meet
  ``ConnectionNotAvailable`` and go round again: about six runs per request instead of two.
"""

from __future__ import annotations

import time
from typing import Any

import httpcore
from httpcore._async.connection_pool import AsyncPoolRequest
from httpcore._async.interfaces import AsyncConnectionInterface

# Expired idle connections are closed within this long even when no request needs their slot;
# keep-alive lasts seconds, so a tenth of a second changes nothing for the server or for us.
SWEEP_SECONDS = 0.1


class LinearPool(httpcore.AsyncConnectionPool):
    """``httpcore.AsyncConnectionPool`` whose per-request bookkeeping does not scan the pool."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sweep_due = 0.0

    def _sweep(self, closing: list[AsyncConnectionInterface]) -> None:
        """Upstream's clean-up pass; like upstream it compares the number of *all* connections
        with the keep-alive limit."""
        self._sweep_due = time.monotonic() + SWEEP_SECONDS
        connections = self._connections
        for connection in list(connections):
            if connection.is_closed():
                connections.remove(connection)
            elif connection.has_expired() or (
                connection.is_idle() and len(connections) > self._max_keepalive_connections
            ):
                connections.remove(connection)
                closing.append(connection)

    def _reusable(
        self,
        request: AsyncPoolRequest,
        taken: set[int],
        closing: list[AsyncConnectionInterface],
    ) -> AsyncConnectionInterface | None:
        """An idle, unexpired connection to the request's origin that no one else was given."""
        origin = request.request.url.origin
        for connection in list(self._connections):
            if id(connection) in taken or not connection.can_handle_request(origin):
                continue
            if not connection.is_available():
                continue
            if connection.has_expired():
                self._connections.remove(connection)
                closing.append(connection)
                continue
            return connection
        return None

    def _assign_requests_to_connections(self) -> list[AsyncConnectionInterface]:
        closing: list[AsyncConnectionInterface] = []
        if time.monotonic() >= self._sweep_due:
            self._sweep(closing)
        queued = [r for r in self._requests if r.is_queued()]
        if not queued:
            return closing
        connections = self._connections
        taken = {id(r.connection) for r in self._requests if r.connection is not None}
        for pool_request in queued:
            # Reuse an idle connection to the origin, else open one while under the limit, else
            # replace an idle connection to another origin, else stay queued.
            connection = self._reusable(pool_request, taken, closing)
            if connection is None:
                if len(connections) >= self._max_connections:
                    self._sweep(closing)
                origin = pool_request.request.url.origin
                if len(connections) < self._max_connections:
                    connection = self.create_connection(origin)
                    connections.append(connection)
                else:
                    idle = next(
                        (c for c in connections if id(c) not in taken and c.is_idle()), None
                    )
                    if idle is None:
                        continue
                    connections.remove(idle)
                    closing.append(idle)
                    connection = self.create_connection(origin)
                    connections.append(connection)
            pool_request.assign_to_connection(connection)
            taken.add(id(connection))
        return closing
