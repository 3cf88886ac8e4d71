"""Our pipeline beside the ``reader`` library on the same first and steady updates.

    python -m benchmarks.peer [--feeds N] [--runs R] [--venv DIR] [--smoke]

Both poll the same N feeds (``benchmarks.feedserver``) into a fresh SQLite database: a first
update (every entry new) and a steady one (5 % of the feeds carry two new entries, the rest
answer 304 or identical bytes). ``reader`` (PyPI ``reader``, not a dependency of this project)
runs in a virtual environment of its own, created on first use at ``--venv``
(default ``/tmp/aggregator-bench-venv``), and is driven in a subprocess; its
``update_feeds(workers=...)`` retrieves in threads, as its documentation recommends for many
feeds. Our side is ``open_runtime`` + ``Updater.refresh_many``, matching included (``reader``
does no matching, so the comparison favours it). The last line is::

    peer feeds=N speedup_first=X speedup_steady=Y

where the speedups are reader's median seconds over ours.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aggregator.match import build
from aggregator.runtime import open_runtime
from benchmarks.feedserver import FeedServer
from benchmarks.poll import DEFAULT_CONCURRENCY, make_config, median

DEFAULT_FEEDS = 1_000
DEFAULT_RUNS = 3
SMOKE_FEEDS = 20
DEFAULT_VENV = Path(tempfile.gettempdir()) / "aggregator-bench-venv"
# The reader release measured against, pinned so figures stay comparable over time; its vendored
# feedparser imports ``sgmllib``, which Python 3 ships only as the sgmllib3k package.
READER_REQUIREMENTS = ("reader==3.26", "sgmllib3k==1.0.0")
# reader's own retrieval threads; its docs suggest a few dozen for many feeds. More threads only
# contend for the GIL with its parser here.
READER_WORKERS = 16

# Runs inside reader's venv. Protocol: one JSON line per update; waits for a line on stdin
# between the first and the steady update (while the server moves to the next cycle).
_READER_SCRIPT = r"""
import json, resource, sys, time
from reader import make_reader

db, urls_file, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
urls = open(urls_file).read().split()
reader = make_reader(db)
for url in urls:
    reader.add_feed(url)

def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime

def update():
    c0, t0 = cpu(), time.perf_counter()
    results = list(reader.update_feeds_iter(workers=workers, scheduled=False))
    wall = time.perf_counter() - t0
    errors = sum(1 for r in results if isinstance(r.value, Exception))
    done = [r.value for r in results if r.value is not None and not isinstance(r.value, Exception)]
    new = sum(v.new for v in done)
    print(json.dumps({"wall": wall, "cpu": cpu() - c0, "new": new, "errors": errors}), flush=True)

update()
sys.stdin.readline()
update()
reader.close()
"""


def ensure_reader(venv: Path) -> Path:
    """The Python of a virtual environment holding ``reader``, created if needed."""
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import reader, sgmllib"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q", *READER_REQUIREMENTS]
    subprocess.run(pip, check=True)
    return python


def reader_updates(python: Path, server: FeedServer, workers: int) -> tuple[dict, dict]:  # type: ignore[type-arg]
    """reader's first and steady update of every feed of ``server``: wall, cpu, new, errors."""
    with tempfile.TemporaryDirectory(prefix="bench-peer-") as tmp:
        urls = Path(tmp) / "urls.txt"
        urls.write_text("\n".join(server.urls()))
        server.prepare(0)
        args = [str(python), "-c", _READER_SCRIPT, str(Path(tmp) / "db.sqlite"), str(urls)]
        proc = subprocess.Popen(
            [*args, str(workers)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert proc.stdin is not None and proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        server.prepare(1)
        proc.stdin.write("next\n")
        proc.stdin.flush()
        steady = json.loads(proc.stdout.readline())
        proc.stdin.close()
        if proc.wait() != 0:
            raise SystemExit("peer benchmark: the reader run failed")
    return first, steady


async def our_updates(server: FeedServer, concurrency: int) -> tuple[dict, dict]:  # type: ignore[type-arg]
    """Our first and steady update of every feed of ``server``: wall, new, errors."""
    figures = []
    with tempfile.TemporaryDirectory(prefix="bench-peer-") as tmp:
        config = make_config(Path(tmp), server.urls(), concurrency)
        server.prepare(0)
        async with open_runtime(config) as runtime:
            for cycle in (0, 1):
                server.prepare(cycle)
                feeds = runtime.storage.list_feeds()
                t0 = time.perf_counter()
                results = await runtime.updater.refresh_many(feeds)
                figures.append(
                    {
                        "wall": time.perf_counter() - t0,
                        "new": sum(r.new for r in results),
                        "errors": sum(1 for r in results if r.error),
                    }
                )
    return figures[0], figures[1]


def run(feeds: int, runs: int, venv: Path, concurrency: int) -> str:
    """Run both sides ``runs`` times, print the table, return the summary line."""
    python = ensure_reader(venv)
    print(f"match index: {build()}", flush=True)
    ours: list[tuple[dict, dict]] = []  # type: ignore[type-arg]
    theirs: list[tuple[dict, dict]] = []  # type: ignore[type-arg]
    with FeedServer(feeds) as server:
        server.prepare(0, jobs=os.cpu_count())
        for _ in range(runs):
            ours.append(asyncio.run(our_updates(server, concurrency)))
            theirs.append(reader_updates(python, server, READER_WORKERS))
            for name, (first, steady) in (("ours", ours[-1]), ("reader", theirs[-1])):
                print(
                    f"{name:<7} first {first['wall']:7.2f} s ({first['new']} new, "
                    f"{first['errors']} errors)  steady {steady['wall']:6.2f} s "
                    f"({steady['new']} new, {steady['errors']} errors)",
                    flush=True,
                )
    for first, steady in ours + theirs:
        if first["errors"] or steady["errors"] or first["new"] != feeds * 50:
            raise SystemExit("peer benchmark: some feeds failed or entries went missing")
    speedups = []
    for index in (0, 1):
        mine = median([pair[index]["wall"] for pair in ours])
        peer = median([pair[index]["wall"] for pair in theirs])
        speedups.append(peer / mine if mine else 0.0)
        label = ("first", "steady")[index]
        print(f"median {label}: ours {mine:.2f} s, reader {peer:.2f} s")
    return f"peer feeds={feeds} speedup_first={speedups[0]:.2f} speedup_steady={speedups[1]:.2f}"


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--feeds", type=int, default=DEFAULT_FEEDS)
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    parser.add_argument("--smoke", action="store_true", help=f"{SMOKE_FEEDS} feeds, 1 run")
    args = parser.parse_args(argv)
    if args.smoke:
        args.feeds, args.runs = SMOKE_FEEDS, 1
    print(run(args.feeds, args.runs, args.venv, args.concurrency))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
