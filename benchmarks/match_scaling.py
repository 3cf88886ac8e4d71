"""Per-entry assign cost as the window holds more stories.

    python -m benchmarks.match_scaling [--max] [--probes N]

Fills a Matcher with 10k and 100k (and with --max 1M) synthetic one-entry stories through
``add_known``, then times ``assign`` for the same probe entries against each and prints a table.
Synthetic titles mix Zipf-distributed common words (shared by many stories, as "stocks" or
"says" are) with a few rare words, like real headlines.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import random
import resource
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from aggregator.match import Matcher
from benchmarks.data import make_entry

START = datetime(2024, 1, 1, tzinfo=UTC)
# Vocabulary: common words follow Zipf's law over COMMON_WORDS, rare words are drawn uniformly
# from RARE_WORDS; a headline has COMMON_PER_TITLE + RARE_PER_TITLE words.
COMMON_WORDS = 5_000
RARE_WORDS = 2_000_000
COMMON_PER_TITLE = 6
RARE_PER_TITLE = 3


def _title(rng: random.Random, cum_weights: Sequence[float]) -> str:
    # Cumulative weights: ``choices`` would otherwise sum all 5,000 weights on every call
    # (the same draws either way).
    common = rng.choices(range(COMMON_WORDS), cum_weights=cum_weights, k=COMMON_PER_TITLE)
    rare = [rng.randrange(RARE_WORDS) for _ in range(RARE_PER_TITLE)]
    return " ".join([f"w{c}" for c in common] + [f"r{r}" for r in rare])


def measure(stories: int, probes: int, seed: int = 0) -> tuple[float, float, float]:
    """(fill seconds, CPU microseconds per assign, peak RSS MiB) with ``stories`` in the window.

    CPU time of the process: on a shared machine the wall time also counts waits for a core.
    """
    rng = random.Random(seed)
    weights = list(itertools.accumulate(1.0 / (rank + 1) for rank in range(COMMON_WORDS)))
    matcher = Matcher(window=timedelta(days=3650))
    step = timedelta(days=1) / stories
    fill = time.perf_counter()
    for i in range(stories):
        entry = make_entry(
            title=_title(rng, weights), published=START + i * step, entry_id=f"k{i}", source="s"
        )
        matcher.add_known(entry, f"story{i}")
    fill = time.perf_counter() - fill
    probe_rng = random.Random(seed + 1)
    entries = [
        make_entry(
            title=_title(probe_rng, weights),
            published=START + timedelta(days=1),
            entry_id=f"p{i}",
            source="probe",
        )
        for i in range(probes)
    ]
    # The fill's collection debt (a full pass over millions of objects, due at any moment)
    # is paid before the probes rather than landing on a few of them.
    gc.collect()
    start = time.process_time()
    for entry in entries:
        matcher.assign(entry)
    per_entry = (time.process_time() - start) / probes * 1e6
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return fill, per_entry, peak


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.match_scaling")
    parser.add_argument("--max", action="store_true", help="also measure 1,000,000 stories")
    parser.add_argument("--probes", type=int, default=2000, help="assign calls timed per size")
    args = parser.parse_args(argv)
    sizes = [10_000, 100_000] + ([1_000_000] if args.max else [])
    print(f"{'stories':>10} {'fill s':>8} {'us/assign':>10} {'vs 10k':>7} {'peak RSS MiB':>13}")
    base = None
    for size in sizes:
        fill, per_entry, peak = measure(size, args.probes)
        base = base or per_entry
        print(f"{size:>10,} {fill:>8.1f} {per_entry:>10.1f} {per_entry / base:>7.2f} {peak:>13.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
