"""Replay a labelled stream through the real Matcher and report how well it groups stories.

    python -m benchmarks.match [--data FILE.tsv] [--stsb DIR] [--seed N] [--no-extra]
                               [--semantic static|minilm|off] [--compare]

The matcher runs with the meaning signal the service uses by default (``static``) unless
``--semantic`` names another; ``--compare`` replays the ``--data`` stream with each of off,
static and minilm (when its extra is installed) in one run, side by side. Prints B-cubed and
pairwise precision/recall/F1, entries/s of matching (embedding each entry included) and peak
memory; with the default data also the cross-check streams (another replay seed, a stream
derived from STS-B pairs) and the ROC AUC of ``Matcher.pair_score`` on STS-B pairs scored >= 4
versus the rest. The last line is ``B3 precision=P recall=R f1=F entries_per_s=N`` for
``--data`` with the chosen signal.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aggregator.match import MatchConfig, Matcher, build
from aggregator.match.embedding import SEMANTIC_SIGNALS, check_available, load_embedder
from aggregator.match.semantic import Embedder, SemanticUnavailable
from aggregator.match.text import Features, features
from aggregator.types import DEFAULT_SEMANTIC
from benchmarks.data import (
    REPLAY_START,
    SHARED_DATA,
    STSB_DIFFERENT,
    STSB_SAME_NEWS,
    Labelled,
    Scores,
    cluster_scores,
    load_stsb,
    load_tsv,
    make_entry,
    roc_auc,
    stsb_pair_check,
    stsb_stream,
    write_tsv,
)

DEFAULT_DATA = SHARED_DATA / "uci-news-head" / "entries.tsv"
DEFAULT_STSB = SHARED_DATA / "stsb-headlines"
# Expire old stories every this many replayed entries, as the service does between polls.
EXPIRE_EVERY = 100
# Entries embedded together, as the match index embeds one feed's new entries at a time (a
# news feed holds 20-50); the embedding is timed with the matching.
POLL_BATCH = 30


@dataclass(frozen=True, slots=True)
class Run:
    """Figures of one replay."""

    scores: Scores
    entries: int
    stories: int
    seconds: float
    predicted: tuple[str, ...] = ()

    @property
    def per_second(self) -> int:
        """Entries matched per second (assign and expire calls only)."""
        return int(self.entries / self.seconds) if self.seconds else 0


def replay(
    stream: Sequence[Labelled], config: MatchConfig | None = None, embedder: Embedder | None = None
) -> Run:
    """Feed ``stream`` to a fresh Matcher in order; time only the matcher's own calls.

    Story merges the matcher reports are applied as the pipeline persists them: each entry is
    scored in the story its assigned story was finally folded into.
    """
    matcher = Matcher(config=config, embedder=embedder)
    predicted = []
    folded: dict[str, str] = {}
    elapsed = 0.0
    batch: list[Features] = []
    for i, item in enumerate(stream):
        start = time.perf_counter()
        if i % POLL_BATCH == 0:
            batch = [features(x.entry) for x in stream[i : i + POLL_BATCH]]
            matcher.prime(batch)
        predicted.append(matcher.assign_features(batch[i % POLL_BATCH]).story_id)
        if i % EXPIRE_EVERY == 0:
            matcher.expire(item.entry.published)
        merges = matcher.take_merges()
        elapsed += time.perf_counter() - start
        for merge in merges:
            folded[merge.other] = merge.into
    final = tuple(_final(folded, sid) for sid in predicted)
    truth = [item.story for item in stream]
    return Run(cluster_scores(truth, final), len(stream), len(set(final)), elapsed, final)


def compare(stream: Sequence[Labelled], name: str) -> dict[str, Run]:
    """Replay ``stream`` with each meaning signal available here, one line each."""
    runs = {}
    for signal in SEMANTIC_SIGNALS:
        try:
            check_available(signal)
        except SemanticUnavailable as exc:
            print(f"{name} semantic={signal}: skipped ({exc})")
            continue
        runs[signal] = replay(stream, embedder=load_embedder(signal))
        print(describe(f"{name} semantic={signal}", runs[signal]))
    return runs


def _final(folded: dict[str, str], story_id: str) -> str:
    while story_id in folded:
        story_id = folded[story_id]
    return story_id


def stsb_auc(folder: Path, config: MatchConfig | None = None) -> float:
    """ROC AUC of pair_score on STS-B headline pairs (>= 4 positive), IDF learnt from them."""
    pairs = load_stsb(folder)
    matcher = Matcher(config=config)
    entries = []
    for i, (_, a, b) in enumerate(pairs):
        when = make_entry(title=a, published=_EPOCH, entry_id=f"{i}a")
        other = make_entry(title=b, published=_EPOCH, entry_id=f"{i}b")
        entries.append((when, other))
    matcher.learn_terms(e for pair in entries for e in pair)
    scores = [matcher.pair_score(a, b) for a, b in entries]
    return roc_auc(scores, [s >= STSB_SAME_NEWS for s, _, _ in pairs])


_EPOCH = REPLAY_START


def describe(name: str, run: Run) -> str:
    """One human-readable line of figures."""
    s = run.scores
    return (
        f"{name}: entries={run.entries} stories_found={run.stories} "
        f"B3 P={s.b3_precision:.3f} R={s.b3_recall:.3f} F1={s.b3_f1:.3f} | "
        f"pairwise P={s.pair_precision:.3f} R={s.pair_recall:.3f} F1={s.pair_f1:.3f} | "
        f"{run.per_second} entries/s"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.match", description=__doc__)
    parser.add_argument("--data", type=Path, default=None, help="labelled TSV stream")
    parser.add_argument("--stsb", type=Path, default=None, help="STS-B headlines folder")
    parser.add_argument("--seed", type=int, default=0, help="replay shuffle seed")
    parser.add_argument("--no-extra", action="store_true", help="skip cross-check streams")
    parser.add_argument(
        "--semantic", choices=SEMANTIC_SIGNALS, default=DEFAULT_SEMANTIC, help="meaning signal"
    )
    parser.add_argument(
        "--compare", action="store_true", help="replay --data with every meaning signal"
    )
    args = parser.parse_args(argv)

    data = args.data or DEFAULT_DATA
    if not data.is_file():
        print(f"skipped: labelled data not found at {data}")
        return 0
    stsb = args.stsb or DEFAULT_STSB
    try:
        check_available(args.semantic)
    except SemanticUnavailable as exc:
        print(f"--semantic: {exc}", file=sys.stderr)
        return 2
    embedder = load_embedder(args.semantic)
    print(f"match index: {build()}; meaning signal: {args.semantic}")
    stream = load_tsv(data, seed=args.seed)
    name = f"{data.name} seed={args.seed}"
    # --compare has replayed the chosen signal already, among the others.
    run = compare(stream, name)[args.semantic] if args.compare else None
    if run is None:
        run = replay(stream, embedder=embedder)
        print(describe(f"{name} semantic={args.semantic}", run))
    if not args.no_extra:
        if args.data is None:
            other = replay(load_tsv(data, seed=args.seed + 1), embedder=embedder)
            print(describe(f"{data.name} seed={args.seed + 1} (cross-check)", other))
        if stsb.is_dir():
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "stsb-stream.tsv"
                rows = stsb_stream(stsb)
                write_tsv(rows, path)
                stream = load_tsv(path)
                derived = replay(stream, embedder=embedder)
                print(describe("stsb-derived stream (cross-check)", derived))
            # By entry id: the TSV round trip escapes quotes in some headlines.
            title_of = {row["entry_id"]: row["title"] for row in rows}
            story_of = {
                title_of[item.entry.entry_id]: sid
                for item, sid in zip(stream, derived.predicted, strict=True)
            }
            check = stsb_pair_check(load_stsb(stsb), story_of)
            print(
                f"stsb judged pairs in that stream: merged {check.merged_same}/{check.same} "
                f"scored >= {STSB_SAME_NEWS:g} (recall {check.recall:.3f}), "
                f"{check.merged_different}/{check.different} scored <= {STSB_DIFFERENT:g}; "
                f"precision {check.precision:.3f}"
            )
            print(f"stsb pair_score ROC AUC (>=4 vs rest, train+dev): {stsb_auc(stsb):.3f}")
        else:
            print(f"stsb: skipped, folder not found at {stsb}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (ru_maxrss): {peak:.1f} MiB")
    s = run.scores
    print(
        f"B3 precision={s.b3_precision:.3f} recall={s.b3_recall:.3f} f1={s.b3_f1:.3f} "
        f"entries_per_s={run.per_second}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
