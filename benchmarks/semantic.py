"""The matching benchmark with the optional sentence-embedding signal (the ``semantic`` extra).

    HF_HUB_OFFLINE=1 python -m benchmarks.semantic [--data FILE.tsv] [--seed N]

Headlines are encoded in batches before the replay (as a service would encode a poll's new
entries together), so entries/s is that of matching alone. Prints the same figures as
``benchmarks.match`` for the replay seed, the next seed and the STS-B derived stream; the last
line is ``B3 precision=P recall=R f1=F entries_per_s=N`` for ``--data``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from aggregator.match.semantic import CachedEmbedder, load_minilm
from benchmarks.data import load_tsv, stsb_stream, write_tsv
from benchmarks.match import DEFAULT_DATA, DEFAULT_STSB, describe, replay


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.semantic", description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="labelled TSV stream")
    parser.add_argument("--seed", type=int, default=0, help="replay shuffle seed")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        print(f"skipped: labelled data not found at {args.data}")
        return 0
    embedder = CachedEmbedder(load_minilm())
    streams = {
        f"{args.data.name} seed={args.seed}": load_tsv(args.data, seed=args.seed),
        f"{args.data.name} seed={args.seed + 1} (cross-check)": load_tsv(
            args.data, seed=args.seed + 1
        ),
    }
    if DEFAULT_STSB.is_dir():
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "stsb-stream.tsv"
            write_tsv(stsb_stream(DEFAULT_STSB), path)
            streams["stsb-derived stream (cross-check)"] = load_tsv(path)
    start = time.perf_counter()
    embedder.prime([item.entry.title for stream in streams.values() for item in stream])
    print(f"encoded headlines in {time.perf_counter() - start:.1f}s")
    first = None
    for name, stream in streams.items():
        run = replay(stream, embedder=embedder)
        first = first or run
        print(describe(name, run))
    assert first is not None
    s = first.scores
    print(
        f"B3 precision={s.b3_precision:.3f} recall={s.b3_recall:.3f} f1={s.b3_f1:.3f} "
        f"entries_per_s={first.per_second}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
