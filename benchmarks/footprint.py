"""The service's memory, as an operator sees it: the RSS of its whole process tree.

    python -m benchmarks.footprint [--feeds A,B] [--settle S] [--workers W] [--smoke]

Runs the real service (``python -m aggregator run``) three times, each on a fresh temporary
SQLite storage: with ``feeds: []``, then with the first A (200) and the first B (1,000)
synthetic feeds of ``aggregator.testing.feedgen`` (50 entries each), served by
``benchmarks.feedserver`` on 127.0.0.1. A run with feeds waits until the service has polled
every feed once (its ``/metrics`` counter of refreshes), then S seconds for the pools to settle,
and reads the resident set size of the service and of every process under it (match index,
parse workers, the multiprocessing resource tracker) from /proc (``rss_mb``); again once idle
parse workers have stopped (``POOL_IDLE_SECONDS``) and the match index has come back into the
service process (``INDEX_IDLE_SECONDS``), as soon as the tree's process count and RSS have held
still for S seconds (``steady``, with its process count): the figure of the last line, with
each process's share (the service first). ``peak`` is the highest sum sampled meanwhile.
``--workers`` sets ``settings.workers`` (default auto). Linux only (/proc).

The last line is::

    footprint idle_mb=A feeds200_mb=B feeds1000_mb=C
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from aggregator.refresh.index_elastic import INDEX_IDLE_SECONDS
from aggregator.refresh.workers import POOL_IDLE_SECONDS
from benchmarks.feedserver import FeedServer

# The feed counts of the targets (#16): after 200 feeds and after 1,000 feeds.
DEFAULT_FEEDS = (200, 1000)
# Seconds after the last poll (or after start, idle) before the figure is read: the pools
# finish their work and the collector runs.
SETTLE_SECONDS = 5.0
# Seconds the service has to answer /healthz, and to poll every feed once.
START_TIMEOUT = 120.0
POLL_TIMEOUT = 1800.0
# How often RSS is sampled while the service polls, for the peak.
SAMPLE_SECONDS = 0.25
# The tree is steady once its process count holds and its RSS moves less than this many MB
# over the settle time (after the idle times): the index loads back into the service for
# some seconds after a backlog. Waited for at most STEADY_TIMEOUT seconds.
STEADY_TOLERANCE_MB = 2.0
STEADY_TIMEOUT = 300.0
_POLLS = re.compile(r"^aggregator_polls_total\{[^}]*\}\s+([0-9.e+]+)$", re.MULTILINE)


@dataclass(frozen=True)
class Sample:
    """One reading of a process tree: total RSS in MB and how many processes."""

    rss_mb: float
    processes: int
    # Each process's RSS in MB: the service first, then the others, largest first.
    split: tuple[float, ...] = ()


def _children() -> dict[int, list[int]]:
    """Every process's children, read from /proc/*/stat."""
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # ended meanwhile
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(parent, []).append(int(entry))
    return tree


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss(root: int) -> Sample:
    """The summed RSS of ``root`` and every process below it."""
    tree = _children()
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(tree.get(pid, ()))
    sizes = [_rss_kb(pid) / 1024 for pid in pids]
    split = (sizes[0], *sorted(sizes[1:], reverse=True))
    return Sample(sum(sizes), len(pids), split)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _config(urls: Sequence[str], folder: Path, workers: str) -> Path:
    lines = ["settings:", "  allow_networks: ['127.0.0.0/8']", "  interval: 1h"]
    lines.append(f"  workers: {workers}")
    lines.append("feeds:" + ("" if urls else " []"))
    lines.extend(f"  - url: {url}" for url in urls)
    path = folder / "feeds.yml"
    path.write_text("\n".join(lines) + "\n")
    return path


@contextmanager
def _service(config: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = _free_port()
    listen = f"127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "aggregator", "--config", str(config), "run", "--listen", listen],
        cwd=config.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the service exited with {proc.returncode}")
            try:
                if httpx.get(f"{base}/healthz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the service did not answer /healthz")
            time.sleep(0.2)
        yield proc, base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _polls(base: str) -> float:
    text = httpx.get(f"{base}/metrics", timeout=10).text
    return sum(float(value) for value in _POLLS.findall(text))


def measure(
    urls: Sequence[str], settle: float, workers: str, steady: float
) -> tuple[Sample, Sample, float, float]:
    """Run the service on ``urls``: (the sample ``settle`` s after the poll, the sample
    ``steady`` s after it, the peak MB, seconds to poll all)."""
    with tempfile.TemporaryDirectory(prefix="footprint-") as folder:
        config = _config(urls, Path(folder), workers)
        with _service(config) as (proc, base):
            started = time.monotonic()
            peak = tree_rss(proc.pid).rss_mb
            deadline = started + POLL_TIMEOUT
            while _polls(base) < len(urls):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the service polled {_polls(base):.0f} of {len(urls)}")
                peak = max(peak, tree_rss(proc.pid).rss_mb)
                time.sleep(SAMPLE_SECONDS)
            polled = time.monotonic() - started
            settled_at = time.monotonic() + settle
            while time.monotonic() < settled_at:
                peak = max(peak, tree_rss(proc.pid).rss_mb)
                time.sleep(SAMPLE_SECONDS)
            sample = tree_rss(proc.pid)
            later = time.monotonic() + max(0.0, steady - settle)
            while urls and time.monotonic() < later:
                peak = max(peak, tree_rss(proc.pid).rss_mb)
                time.sleep(SAMPLE_SECONDS)
            steady_sample = _settled(proc.pid, settle) if urls else sample
            peak = max(peak, steady_sample.rss_mb)
            return sample, steady_sample, max(peak, sample.rss_mb), polled


def _settled(root: int, settle: float) -> Sample:
    """The tree's sample once its process count and RSS have held for ``settle`` seconds (see
    STEADY_TOLERANCE_MB), or after STEADY_TIMEOUT."""
    deadline = time.monotonic() + STEADY_TIMEOUT
    held = tree_rss(root)
    since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(SAMPLE_SECONDS)
        now = tree_rss(root)
        if now.processes != held.processes or abs(now.rss_mb - held.rss_mb) > STEADY_TOLERANCE_MB:
            held, since = now, time.monotonic()
        elif time.monotonic() - since >= settle:
            return now
    return tree_rss(root)


def run(feeds: Sequence[int], settle: float, workers: str, steady: float) -> dict[str, float]:
    print(
        f"{'state':<16}{'processes':>10}{'rss_mb':>10}{'steady':>8}{'procs':>6}"
        f"{'peak_mb':>10}{'poll_s':>9}  steady by process (service first)",
        flush=True,
    )
    figures: dict[str, float] = {}
    with FeedServer(feeds=max(feeds)) as server:
        server.prepare(0)
        urls = server.urls()
        for count in (0, *feeds):
            sample, later, peak, seconds = measure(urls[:count], settle, workers, steady)
            name = "idle" if count == 0 else f"feeds{count}"
            figures[name] = later.rss_mb
            label = "idle, feeds: []" if count == 0 else f"after {count} feeds"
            print(
                f"{label:<16}{sample.processes:>10}{sample.rss_mb:>10.0f}{later.rss_mb:>8.0f}"
                f"{later.processes:>6}{peak:>10.0f}{seconds:>9.1f}"
                f"  {' + '.join(f'{mb:.0f}' for mb in later.split)}",
                flush=True,
            )
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--feeds",
        default=",".join(str(n) for n in DEFAULT_FEEDS),
        help="the feed counts after which to measure, comma-separated (default: 200,1000)",
    )
    parser.add_argument("--settle", type=float, default=SETTLE_SECONDS)
    parser.add_argument("--smoke", action="store_true", help="a tiny run: 2 and 5 feeds")
    parser.add_argument(
        "--workers", default="auto", help="settings.workers of the service (auto, 0 or N)"
    )
    args = parser.parse_args(argv)
    feeds = (2, 5) if args.smoke else tuple(int(n) for n in args.feeds.split(","))
    settle = 0.5 if args.smoke else args.settle
    # "steady": once idle parse workers have stopped (refresh/workers.py).
    steady = settle if args.smoke else max(POOL_IDLE_SECONDS, INDEX_IDLE_SECONDS) + args.settle
    figures = run(feeds, settle, args.workers, steady)
    rest = " ".join(f"feeds{n}_mb={figures[f'feeds{n}']:.0f}" for n in feeds)
    print(f"footprint idle_mb={figures['idle']:.0f} {rest}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
