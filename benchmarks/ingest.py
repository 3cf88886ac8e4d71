"""Entries per second for changed feeds, stage by stage, on the same bytes.

    python -m benchmarks.ingest [--feeds N] [--runs R] [--smoke]

N synthetic 50-entry feeds (``aggregator.testing.feedgen``) are read by:

- ``lxml`` alone (``etree.fromstring``, the floor for any XML feed parser);
- ``feedparser`` alone, as ``parse_feed`` calls it (sanitising and resolving URIs) and with
  both off;
- ``parse_rss20`` alone (``aggregator.parse.rss``: lxml plus feedparser's rules, issue #7);
- ``parse_feed`` with the fast path off (feedparser, as before issue #7) and on (the default;
  our decoding, DTD neutralising and record conversion around either parser);
- ``parse_feed`` + ``normalise_entry`` (plain text, links, hashes);
- the same plus matching (``Matcher.assign`` of every entry);
- the whole pipeline: served on 127.0.0.1 and polled once by ``open_runtime`` +
  ``Updater.refresh_many`` into a fresh SQLite database (fetch, parse, normalise, match, store).

Each stage prints the median entries/s of R runs and its ratio to feedparser alone. The last
line is ``ingest entries_per_s=E`` for the whole pipeline.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import feedparser
from lxml import etree  # type: ignore[import-untyped]

from aggregator.match import Matcher
from aggregator.normalise import normalise_entry
from aggregator.parse import parse_feed
from aggregator.parse.rss import parse_rss20
from aggregator.testing import feedgen
from aggregator.types import Entry
from benchmarks.feedserver import FeedServer
from benchmarks.poll import DEFAULT_CONCURRENCY, median, poll_cycles

DEFAULT_FEEDS = 200
DEFAULT_RUNS = 3
SMOKE_FEEDS = 4
_HEADERS = {"content-type": "application/rss+xml; charset=utf-8"}


def _lxml(docs: Sequence[bytes]) -> int:
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    return sum(len(etree.fromstring(d, parser).findall("./channel/item")) for d in docs)


def _feedparser(docs: Sequence[bytes], *, full: bool) -> int:
    return sum(
        len(feedparser.parse(io.BytesIO(d), sanitize_html=full, resolve_relative_uris=full).entries)
        for d in docs
    )


def _fast(docs: Sequence[bytes]) -> int:
    total = 0
    for d in docs:
        fast = parse_rss20(d, "https://example.com/f")
        if fast is None:
            raise SystemExit("ingest benchmark: the fast path declined a feedgen feed")
        total += len(fast.entries)
    return total


def _parse(docs: Sequence[bytes], *, fast_path: bool = True) -> int:
    url = "https://example.com/f"
    return sum(len(parse_feed(d, _HEADERS, url, fast_path=fast_path).entries) for d in docs)


def _normalised(docs: Sequence[bytes]) -> list[Entry]:
    now = datetime.now(UTC)
    out: list[Entry] = []
    for n, d in enumerate(docs):
        url = f"https://outlet{n}.example.com/feed"
        out += (normalise_entry(e, url, now) for e in parse_feed(d, _HEADERS, url).entries)
    return out


def _matched(docs: Sequence[bytes]) -> int:
    matcher = Matcher()
    entries = _normalised(docs)
    for entry in entries:
        matcher.assign(entry)
    return len(entries)


def _timed(stage: Callable[[], int], runs: int) -> tuple[float, int]:
    rates, count = [], 0
    for _ in range(runs):
        t0 = time.perf_counter()
        count = stage()
        rates.append(count / (time.perf_counter() - t0))
    return median(rates), count


def _pipeline(feeds: int, runs: int) -> float:
    rates = []
    with FeedServer(feeds) as server:
        for _ in range(runs):
            with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
                first, _, _ = asyncio.run(poll_cycles(server, Path(tmp), DEFAULT_CONCURRENCY, 0, 0))
            if first.errors:
                raise SystemExit("ingest benchmark: some feeds failed")
            rates.append(first.entries_per_s)
    return median(rates)


def run(feeds: int, runs: int) -> str:
    """Time every stage, print the table, return the summary line."""
    base = time.time() - 86_400
    docs = [feedgen.document(i, 0, base).body for i in range(feeds)]
    stages: list[tuple[str, Callable[[], int]]] = [
        ("lxml etree.fromstring", lambda: _lxml(docs)),
        ("feedparser (sanitize, resolve)", lambda: _feedparser(docs, full=True)),
        ("feedparser (no sanitize/resolve)", lambda: _feedparser(docs, full=False)),
        ("fast path alone (parse_rss20)", lambda: _fast(docs)),
        ("parse_feed, feedparser only", lambda: _parse(docs, fast_path=False)),
        ("parse_feed (fast path)", lambda: _parse(docs)),
        ("parse_feed + normalise", lambda: len(_normalised(docs))),
        ("parse + normalise + match", lambda: _matched(docs)),
    ]
    results = [(name, *_timed(stage, runs)) for name, stage in stages]
    reference = results[1][1]
    whole = _pipeline(feeds, runs)
    print(f"{feeds} feeds, {results[0][2]} entries, median of {runs} runs")
    print(f"{'stage':<36} {'entries/s':>10} {'vs feedparser':>14}")
    for name, rate, _count in [*results, ("whole pipeline (fetch..store)", whole, 0)]:
        print(f"{name:<36} {rate:10.0f} {rate / reference:13.2f}x")
    return f"ingest entries_per_s={whole:.0f}"


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--feeds", type=int, default=DEFAULT_FEEDS)
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    parser.add_argument("--smoke", action="store_true", help=f"{SMOKE_FEEDS} feeds, 1 run")
    args = parser.parse_args(argv)
    if args.smoke:
        args.feeds, args.runs = SMOKE_FEEDS, 1
    print(run(args.feeds, args.runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
