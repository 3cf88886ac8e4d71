"""Matching alone on realistic feed entries (titles with summaries), optionally against old code.

    python -m benchmarks.match_realistic [--feeds N] [--runs R] [--compare DIR]

N synthetic 50-entry feeds (``aggregator.testing.feedgen``, ~80 KB each, every entry with a summary
of ~80 words) are parsed and normalised once, outside the timing; then a fresh ``Matcher``
assigns every entry, and only the ``assign`` calls are timed (CPU time of the process). Feeds
come in groups of four outlets telling the same stories, so the B-cubed scores against that
truth are printed too.

``--compare DIR`` also times the ``aggregator.match`` of another checkout (e.g. one made by
``git worktree add /tmp/old COMMIT``) on the same pickled entries, in a child process, runs
alternating with this checkout's so both see the same machine load. The last line is
``realistic entries_per_s=N``.
"""

from __future__ import annotations

import argparse
import os
import pickle
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from aggregator.match import Matcher
from aggregator.match.prior import prior_idf
from aggregator.normalise import normalise_entry
from aggregator.parse import parse_feed
from aggregator.testing import feedgen
from aggregator.types import Entry
from benchmarks.data import cluster_scores

DEFAULT_FEEDS = 40
DEFAULT_RUNS = 3
# Fixed UNIX time of sequence number 0, so every run (and the child) sees the same entries.
BASE = datetime(2024, 6, 1, tzinfo=UTC).timestamp()
_HEADERS = {"content-type": "application/rss+xml; charset=utf-8"}

# Run in a child interpreter whose ``aggregator`` comes from another checkout: reads the
# pickled entries and loads the word frequencies; prints where the matcher was imported from,
# the seconds spent in ``assign`` and the final story ids.
_CHILD = """
import pickle, sys, time
import aggregator.match
from aggregator.match import Matcher
from aggregator.match.prior import prior_idf
print(aggregator.match.__file__)
entries = pickle.load(open(sys.argv[1], "rb"))
prior_idf("news")
m = Matcher()
t0 = time.process_time()
ids = [m.assign(e).story_id for e in entries]
folded = {x.other: x.into for x in m.take_merges()}
print(time.process_time() - t0)
def final(s):
    while s in folded:
        s = folded[s]
    return s
print(" ".join(final(s) for s in ids))
"""


def entries(feeds: int) -> tuple[list[Entry], list[str]]:
    """The normalised entries of ``feeds`` feedgen feeds, oldest first, and their true stories."""
    now = datetime.now(UTC)
    out: list[tuple[Entry, str]] = []
    for n in range(feeds):
        url = f"https://outlet{n}.example.com/feed"
        doc = feedgen.document(n, 0, BASE).body
        for parsed in parse_feed(doc, _HEADERS, url).entries:
            entry = normalise_entry(parsed, url, now)
            seq = entry.entry_id.rsplit("-", 1)[1]
            out.append((entry, f"{n // feedgen.OUTLETS_PER_STORY}:{seq}"))
    out.sort(key=lambda pair: (pair[0].published, pair[0].feed_url))
    return [e for e, _ in out], [s for _, s in out]


def time_here(stream: Sequence[Entry]) -> tuple[float, list[str]]:
    """CPU seconds spent in ``assign`` for ``stream`` and the final story of each entry.

    CPU time, not wall time: matching is single-threaded, and on a shared machine the wall
    time also counts the waits for a core.
    """
    prior_idf("news")  # loads the word frequencies once per process, as the child does
    matcher = Matcher()
    start = time.process_time()
    ids = [matcher.assign(e).story_id for e in stream]
    folded = {m.other: m.into for m in matcher.take_merges()}
    seconds = time.process_time() - start
    return seconds, [_final(folded, s) for s in ids]


def time_there(checkout: Path, pickled: Path) -> tuple[float, list[str]]:
    """As :func:`time_here` with the ``aggregator`` package of ``checkout``."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    # In the checkout's folder: ``-c`` puts the working directory first on sys.path.
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(pickled)],
        cwd=checkout,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    if not Path(out[0]).resolve().is_relative_to(checkout.resolve()):
        raise SystemExit(f"--compare: {out[0]} is not from {checkout}")
    return float(out[1]), out[2].split()


def _final(folded: dict[str, str], story_id: str) -> str:
    while story_id in folded:
        story_id = folded[story_id]
    return story_id


def _line(name: str, count: int, seconds: list[float], truth: list[str], ids: list[str]) -> str:
    best = min(seconds)
    s = cluster_scores(truth, ids)
    return (
        f"{name:<10} {count / best:9.0f} entries per CPU-s (best of {len(seconds)}; "
        f"{best / count * 1e6:.0f} us/entry)  B3 P={s.b3_precision:.3f} R={s.b3_recall:.3f} "
        f"F1={s.b3_f1:.3f}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.match_realistic")
    parser.add_argument("--feeds", type=int, default=DEFAULT_FEEDS)
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    parser.add_argument("--compare", type=Path, default=None, help="another checkout's root")
    args = parser.parse_args(argv)
    stream, truth = entries(args.feeds)
    summary_words = sum(len(e.summary.split()) for e in stream) / len(stream)
    print(f"{args.feeds} feeds, {len(stream)} entries, {summary_words:.0f} summary words each")
    here: list[float] = []
    there: list[float] = []
    ids_here: list[str] = []
    ids_there: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-match-") as tmp:
        pickled = Path(tmp) / "entries.pickle"
        pickled.write_bytes(pickle.dumps(stream))
        for _ in range(args.runs):
            if args.compare is not None:
                seconds, ids_there = time_there(args.compare, pickled)
                there.append(seconds)
            seconds, ids_here = time_here(stream)
            here.append(seconds)
    if args.compare is not None:
        print(_line(f"{args.compare}", len(stream), there, truth, ids_there))
    print(_line("this tree", len(stream), here, truth, ids_here))
    print(f"realistic entries_per_s={len(stream) / min(here):.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
