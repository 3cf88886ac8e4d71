"""Poll many feeds through the real pipeline and report how fast a cycle is.

    python -m benchmarks.poll [--feeds N] [--runs R] [--first-runs F] [--concurrency C]
                              [--prefill M] [--postgres URL] [--smoke]

N synthetic feeds (``aggregator.testing.feedgen``) are served by ``benchmarks.feedserver`` on
127.0.0.1. Each first run opens a fresh temporary SQLite storage with ``open_runtime`` and
polls every feed once (everything new: fetch, parse, normalise, match, store), then runs R
steady cycles (95 % of the feeds answer 304 or byte-identical bodies, 5 % carry two new
entries) with ``Updater.refresh_many``. ``--prefill M`` first stores M old entries (outside
the match window) so memory is measured against a database of realistic size. ``--postgres
URL`` stores in a fresh database created on that PostgreSQL server (and dropped afterwards)
instead, where matching and storing run under the matching lock as with several workers.

Reported per cycle: wall seconds, feeds/s, new entries/s, CPU seconds (this process and its
worker processes, the feed server excluded) and peak RSS: this process's plus the peak of the
match index process and of each parse worker (read from /proc before they stop), so the
figure is what the service needs, not only its main process. The last line is::

    poll feeds=N steady_s=S first_entries_per_s=E peak_rss_mb=M
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.feedserver import FeedServer

if TYPE_CHECKING:
    from aggregator.config import Config

# The service's own modules are imported inside the functions that use them: this is the main
# module, which every spawned worker process (parse workers, match index) imports again, so
# importing the service here would make the workers measured heavier than the service's own.

# Feeds in flight at once. Local answers take ~1 ms, so a few dozen keep the client busy;
# more only adds queued sockets and bodies in memory.
DEFAULT_CONCURRENCY = 64
DEFAULT_FEEDS = 10_000
DEFAULT_RUNS = 3
SMOKE_FEEDS = 40
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
# Prefilled entries are this old: outside the match window, as most of a year of news is.
PREFILL_AGE = timedelta(days=30)
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by a live process, from /proc (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def child_pids() -> list[int]:
    """Live child processes of this process (e.g. parse workers), from /proc."""
    me = os.getpid()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == me:
                found.append(int(entry.name))
    return found


def cpu_by_role(exclude: Sequence[int], index_pid: int | None) -> tuple[float, float, float]:
    """CPU seconds so far of this process (with reaped children), of the match index process
    and of the other live children (the parse workers), ``exclude`` left out."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    main = own.ru_utime + own.ru_stime + reaped.ru_utime + reaped.ru_stime
    index = parse = 0.0
    for pid in child_pids():
        if pid == index_pid:
            index = process_cpu(pid)
        elif pid not in exclude:
            parse += process_cpu(pid)
    return main, index, parse


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss_of(pids: Sequence[int]) -> float:
    """Sum of the peak resident memory (VmHWM) of live processes ``pids``, in MiB."""
    total_kib = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                total_kib += int(line.split()[1])
    return total_kib / 1024


def median(values: Sequence[float]) -> float:
    """The median (0.0 for no values)."""
    return statistics.median(values) if values else 0.0


@dataclass(frozen=True, slots=True)
class Cycle:
    """Figures of one polling cycle."""

    feeds: int
    new_entries: int
    errors: int
    wall: float
    # CPU seconds of the main process, the match index process and the parse workers.
    roles: tuple[float, float, float]

    @property
    def cpu(self) -> float:
        return sum(self.roles)

    @property
    def feeds_per_s(self) -> float:
        return self.feeds / self.wall if self.wall else 0.0

    @property
    def entries_per_s(self) -> float:
        return self.new_entries / self.wall if self.wall else 0.0

    def line(self, label: str) -> str:
        return (
            f"{label:<8} {self.wall:8.2f} s {self.feeds_per_s:9.0f} feeds/s "
            f"{self.entries_per_s:8.0f} entries/s  cpu {self.cpu:7.2f} s ({roles([self])})"
            f"  new {self.new_entries:7d}  errors {self.errors}"
        )


def make_config(
    folder: Path, urls: Sequence[str], concurrency: int, storage_url: str | None = None
) -> Config:
    """A configuration polling ``urls`` on loopback into ``storage_url`` (by default an SQLite
    file under ``folder``)."""
    from aggregator.config import Config, Settings
    from aggregator.types import FeedSpec

    settings = Settings(
        storage_url=storage_url or f"sqlite:///{folder / 'aggregator.db'}",
        output=folder / "out",
        concurrency=concurrency,
        # Every benchmark feed lives on the same host; the per-host limit would serialise them.
        per_host=concurrency,
        allow_networks=(LOOPBACK,),
    )
    return Config(folder / "feeds.yml", settings, tuple(FeedSpec(url=u) for u in urls))


def prefill(config: Config, count: int) -> None:
    """Store ``count`` old entries (one story each) for the configured feeds, in bulk."""
    from aggregator.storage import open_storage
    from aggregator.storage.schema import entries, stories, story_entries

    storage = open_storage(config.settings.storage_url)
    now = datetime.now(UTC)
    try:
        storage.sync_feeds(config.feeds, now)
        old = now - PREFILL_AGE
        batch = 20_000
        with storage.engine.begin() as conn:
            for start in range(0, count, batch):
                rows, links, made = [], [], []
                for n in range(start, min(start + batch, count)):
                    feed = config.feeds[n % len(config.feeds)].url
                    sid = f"old{n:x}"
                    when = old - timedelta(minutes=n % 100_000)
                    rows.append(
                        {
                            "feed_url": feed,
                            "entry_id": f"old-{n}",
                            "title": f"Archived headline number {n} about an earlier event",
                            "summary": "An older report kept for the archive. " * 8,
                            "url": f"https://archive.example.com/{n}",
                            "link": f"https://archive.example.com/{n}",
                            "published": when,
                            "updated": None,
                            "first_seen": when,
                            "content_hash": f"{n:064x}",
                            "author": None,
                        }
                    )
                    made.append({"id": sid, "created": when, "updated": when})
                    links.append(
                        {"feed_url": feed, "entry_id": f"old-{n}", "story_id": sid}
                        | {"score": 1.0, "evidence": {}}
                    )
                conn.execute(stories.insert(), made)
                conn.execute(entries.insert(), rows)
                conn.execute(story_entries.insert(), links)
    finally:
        storage.close()


@contextmanager
def measured(exclude: Sequence[int], index_pid: int | None) -> Iterator[list[Any]]:
    """Yield a list that receives the block's wall seconds and CPU seconds by role
    (``cpu_by_role``)."""
    out: list[Any] = []
    before, t0 = cpu_by_role(exclude, index_pid), time.perf_counter()
    yield out
    wall = time.perf_counter() - t0
    after = cpu_by_role(exclude, index_pid)
    out += [wall, (after[0] - before[0], after[1] - before[1], after[2] - before[2])]


async def poll_cycles(
    server: FeedServer,
    folder: Path,
    concurrency: int,
    steady_runs: int,
    prefilled: int,
    storage_url: str | None = None,
) -> tuple[Cycle, list[Cycle], tuple[float, float]]:
    """One first cycle and ``steady_runs`` steady cycles over a fresh storage in ``folder``,
    and the peak memory in MiB of the match index process and of the parse workers."""
    from aggregator.runtime import open_runtime

    config = make_config(folder, server.urls(), concurrency, storage_url)
    if prefilled:
        prefill(config, prefilled)
    server.prepare(0)
    exclude = server.pids
    async with open_runtime(config) as runtime:
        updater = runtime.updater
        index_pid = getattr(updater.index, "pid", None)  # None: matching runs in this process
        feeds = runtime.storage.list_feeds()
        with measured(exclude, index_pid) as m:
            results = await updater.refresh_many(feeds)
        first = Cycle(
            len(results), sum(r.new for r in results), sum(1 for r in results if r.error), *m
        )
        steady: list[Cycle] = []
        for cycle in range(1, steady_runs + 1):
            server.prepare(cycle)
            feeds = runtime.storage.list_feeds()
            with measured(exclude, index_pid) as m:
                results = await updater.refresh_many(feeds)
            errors = sum(1 for r in results if r.error)
            steady.append(Cycle(len(results), sum(r.new for r in results), errors, *m))
        children = [pid for pid in child_pids() if pid not in exclude]
        index_rss = peak_rss_of([pid for pid in children if pid == index_pid])
        parse_rss = peak_rss_of([pid for pid in children if pid != index_pid])
    return first, steady, (index_rss, parse_rss)


@contextmanager
def fresh_database(server: str | None) -> Iterator[str | None]:
    """A new, empty PostgreSQL database on ``server`` (a ``postgresql://`` URL of any database
    there), dropped afterwards; None when ``server`` is None (SQLite)."""
    if server is None:
        yield None
        return
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    name = f"bench_poll_{os.getpid()}_{time.monotonic_ns()}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            # The same server, user and options; only the database differs.
            yield make_url(server).set(database=name).render_as_string(hide_password=False)
        finally:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def roles(cycles: Sequence[Cycle]) -> str:
    """Median CPU seconds of each role over ``cycles``."""
    main, index, parse = (median([c.roles[i] for c in cycles]) for i in range(3))
    return f"{main:.1f} main + {index:.1f} index + {parse:.1f} parse"


def run(
    feeds: int,
    runs: int,
    first_runs: int,
    concurrency: int,
    prefilled: int,
    postgres: str | None = None,
) -> str:
    """Run the benchmark, print the table, return the summary line."""
    from aggregator.match import build

    print(f"match index: {build()}", flush=True)
    firsts: list[Cycle] = []
    steadies: list[Cycle] = []
    index_rss = parse_rss = 0.0
    with FeedServer(feeds) as server:
        for _ in range(first_runs):
            with (
                tempfile.TemporaryDirectory(prefix="bench-poll-") as tmp,
                fresh_database(postgres) as storage_url,
            ):
                first, steady, (index, parse) = asyncio.run(
                    poll_cycles(server, Path(tmp), concurrency, runs, prefilled, storage_url)
                )
            index_rss, parse_rss = max(index_rss, index), max(parse_rss, parse)
            print(first.line("first"), flush=True)
            for cycle in steady:
                print(cycle.line("steady"), flush=True)
            firsts.append(first)
            steadies += steady
    expected_new = feeds * 50
    if any(c.errors for c in firsts + steadies) or any(
        c.new_entries != expected_new for c in firsts
    ):
        raise SystemExit("poll benchmark: some feeds failed or entries went missing")
    steady_s = median([c.wall for c in steadies])
    first_eps = median([c.entries_per_s for c in firsts])
    main_rss = peak_rss_mb()
    rss = main_rss + index_rss + parse_rss
    print(
        f"median first: {median([c.wall for c in firsts]):.2f} s, {first_eps:.0f} entries/s, "
        f"cpu {median([c.cpu for c in firsts]):.2f} s ({roles(firsts)}) | "
        f"median steady: {steady_s:.2f} s, "
        f"{median([c.feeds_per_s for c in steadies]):.0f} feeds/s, "
        f"cpu {median([c.cpu for c in steadies]):.2f} s | peak RSS {rss:.0f} MiB "
        f"({main_rss:.0f} main + {index_rss:.0f} match index + {parse_rss:.0f} parse workers)"
        + (f" with {prefilled} prefilled entries" if prefilled else "")
    )
    return (
        f"poll feeds={feeds} steady_s={steady_s:.2f} "
        f"first_entries_per_s={first_eps:.0f} peak_rss_mb={rss:.0f}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--feeds", type=int, default=DEFAULT_FEEDS)
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS, help="steady cycles per first")
    parser.add_argument("--first-runs", type=int, default=1, help="fresh databases")
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    parser.add_argument("--prefill", type=int, default=0, help="old entries stored first")
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="store in a fresh database on this PostgreSQL server (e.g. "
        "postgresql://postgres@127.0.0.1/postgres) instead of SQLite",
    )
    parser.add_argument("--smoke", action="store_true", help=f"{SMOKE_FEEDS} feeds, 1 run")
    args = parser.parse_args(argv)
    if args.smoke:
        args.feeds, args.runs, args.first_runs = SMOKE_FEEDS, 1, 1
    print(
        run(args.feeds, args.runs, args.first_runs, args.concurrency, args.prefill, args.postgres)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
