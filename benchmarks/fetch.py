"""Fetching alone: CPU milliseconds per request and requests/s, 200 and 304, several clients.

    python -m benchmarks.fetch [--feeds N] [--runs R] [--concurrency C] [--smoke]

N synthetic feeds are served by ``benchmarks.feedserver`` on 127.0.0.1 (in other processes, so
only the client's CPU is counted). Each client, in turn and in the same run, makes N requests
without validators (200 with a body of about 30 KiB) and N conditional requests (304), C in
flight at once; the rounds alternate between clients so a busy machine slows all of them alike.

Clients:

- ``fetcher``: ``aggregator.fetch.Fetcher`` as shipped;
- ``upstream pool``: the same ``Fetcher`` on httpcore's own connection pool and anyio streams,
  closing unread 304 bodies, as it was before its pool work (see ``aggregator/fetch/_pool.py``);
- ``httpx (unguarded)``: a plain ``httpx.AsyncClient`` with its default transport and none of
  our defences, as a reference point.

Figures are medians over R rounds. The last line is::

    fetch feeds=N cpu_ms_304=X cpu_ms_200=Y speedup_304=Z

with ``fetcher``'s CPU ms per request and its CPU speedup over ``upstream pool`` on 304s.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import resource
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from aggregator.fetch import KEEPALIVE_SECONDS, Fetcher
from aggregator.fetch._guard import GuardedBackend, GuardedTransport, IPNetwork
from benchmarks.feedserver import FeedServer
from benchmarks.poll import median

DEFAULT_FEEDS = 2_000
DEFAULT_RUNS = 3
# What the polling benchmark uses; enough in flight to keep one client core busy on loopback.
DEFAULT_CONCURRENCY = 64
SMOKE_FEEDS = 50
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")

Validators = tuple[str | None, str | None]
Get = Callable[[str, Validators], Awaitable[tuple[int, Validators]]]
Timings = tuple[list[float], list[float]]


def cpu_seconds() -> float:
    """CPU seconds (user + system) of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _UpstreamBackend(GuardedBackend):
    """Address checks as shipped, but handing httpcore the plain anyio stream."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await super().connect_tcp(host, port, timeout, local_address, socket_options)
        inner: httpcore.AsyncNetworkStream = getattr(stream, "_inner", stream)
        return inner


class _UpstreamTransport(GuardedTransport):
    def __init__(self, allow: Sequence[IPNetwork], max_connections: int) -> None:
        super().__init__(allow, max_connections=max_connections, keepalive_expiry=KEEPALIVE_SECONDS)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=max_connections,
            keepalive_expiry=KEEPALIVE_SECONDS,
            network_backend=_UpstreamBackend(allow, httpcore.AnyIOBackend()),
        )


class UpstreamFetcher(Fetcher):
    """``Fetcher`` on httpcore's stock pool, closing unread bodies (the connection with them)."""

    def _make_transport(self) -> GuardedTransport:
        return _UpstreamTransport(self.allow_networks, self._concurrency)

    async def _release(self, response: httpx.Response, *, drain: bool) -> None:
        await response.aclose()


@dataclass(frozen=True, slots=True)
class Round:
    """One pass of N requests by one client."""

    client: str
    kind: str
    requests: int
    wall: float
    cpu: float


async def _fetcher_round(
    fetcher_class: type[Fetcher], urls: Sequence[str], concurrency: int
) -> Timings:
    """(wall, cpu) of a 200 pass then a 304 pass with one fetcher."""
    async with fetcher_class(
        concurrency=concurrency, per_host=concurrency, allow_networks=[LOOPBACK]
    ) as fetcher:

        async def get(url: str, validators: Validators) -> tuple[int, Validators]:
            result = await fetcher.fetch(url, etag=validators[0], last_modified=validators[1])
            return result.status, (result.etag, result.last_modified)

        return await _passes(get, urls)


async def _httpx_round(urls: Sequence[str], concurrency: int) -> Timings:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    slots = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(limits=limits, trust_env=False) as client:

        async def get(url: str, validators: Validators) -> tuple[int, Validators]:
            headers = {"If-None-Match": validators[0]} if validators[0] else {}
            async with slots:
                response = await client.get(url, headers=headers)
            etag = response.headers.get("etag")
            return response.status_code, (etag, response.headers.get("last-modified"))

        return await _passes(get, urls)


async def _passes(get: Get, urls: Sequence[str]) -> Timings:
    none: Validators = (None, None)
    # Warm-up: open the connections and learn the validators.
    learned = [v for _, v in await asyncio.gather(*(get(u, none) for u in urls))]
    walls: list[float] = []
    cpus: list[float] = []
    for conditional, validators in ((False, [none] * len(urls)), (True, learned)):
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        statuses = [s for s, _ in await asyncio.gather(*map(get, urls, validators))]
        walls.append(time.perf_counter() - t0)
        cpus.append(cpu_seconds() - cpu0)
        # Feeds without validators answer 200 even to a conditional request.
        expected = {200, 304} if conditional else {200}
        if not set(statuses) <= expected:
            raise SystemExit(f"fetch benchmark: unexpected statuses {sorted(set(statuses))}")
    return walls, cpus


CLIENTS: dict[str, Callable[[Sequence[str], int], Coroutine[Any, Any, Timings]]] = {
    "fetcher": lambda urls, c: _fetcher_round(Fetcher, urls, c),
    "upstream pool": lambda urls, c: _fetcher_round(UpstreamFetcher, urls, c),
    "httpx (unguarded)": _httpx_round,
}


def run(feeds: int, runs: int, concurrency: int) -> str:
    """Measure every client ``runs`` times, print the table, return the summary line."""
    rounds: list[Round] = []
    with FeedServer(feeds) as server:
        server.prepare(0)
        urls = server.urls()
        for _ in range(runs):
            for name, client in CLIENTS.items():
                walls, cpus = asyncio.run(client(urls, concurrency))
                for kind, wall, cpu in zip(("200", "304"), walls, cpus, strict=True):
                    rounds.append(Round(name, kind, len(urls), wall, cpu))
    print(f"{feeds} feeds, {concurrency} in flight, median of {runs} rounds")
    print(f"{'client':<20} {'kind':>4} {'req/s':>8} {'CPU ms/req':>11}")
    cpu_ms: dict[tuple[str, str], float] = {}
    for name in CLIENTS:
        for kind in ("200", "304"):
            mine = [r for r in rounds if (r.client, r.kind) == (name, kind)]
            rate = median([r.requests / r.wall for r in mine])
            cpu_ms[name, kind] = median([1000 * r.cpu / r.requests for r in mine])
            print(f"{name:<20} {kind:>4} {rate:8.0f} {cpu_ms[name, kind]:11.3f}")
    speedup = cpu_ms["upstream pool", "304"] / cpu_ms["fetcher", "304"]
    return (
        f"fetch feeds={feeds} cpu_ms_304={cpu_ms['fetcher', '304']:.3f} "
        f"cpu_ms_200={cpu_ms['fetcher', '200']:.3f} speedup_304={speedup:.2f}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--feeds", type=int, default=DEFAULT_FEEDS)
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    parser.add_argument("--smoke", action="store_true", help=f"{SMOKE_FEEDS} feeds, 1 round")
    args = parser.parse_args(argv)
    if args.smoke:
        args.feeds, args.runs = SMOKE_FEEDS, 1
    print(run(args.feeds, args.runs, args.concurrency))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
