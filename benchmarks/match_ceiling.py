"""How far offline clustering gets on a labelled stream, beside the online matcher.

    python -m benchmarks.match_ceiling [--data FILE.tsv] [--semantic] [--limit N]

Offline agglomerative clustering sees every headline at once and may revise any grouping, so
at a given precision it is a generous reference for what one similarity can do. For each
similarity (TF-IDF over the matcher's own terms; with ``--semantic`` also the all-MiniLM-L6-v2
cosine of the ``semantic`` extra, and the mean of the two) and each linkage (average, complete,
weighted, single), the merge threshold is swept and the best B-cubed F1 among cuts with
precision >= ``PRECISION_FLOOR`` is printed, then the best F1 at any precision. The online
``Matcher`` replays the same stream (``benchmarks.match``, default meaning signal) in the same
run.

The last line is ``ceiling precision_floor=P offline_best_f1=F online_f1=G``: ``F`` is the
best offline F1 at that precision over every similarity and linkage measured.
Needs numpy and scipy (the ``dev`` extra); skips with a message when the data is absent.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.sparse import csr_matrix
from scipy.spatial.distance import squareform

from aggregator.match.embedding import load_embedder
from aggregator.match.semantic import CachedEmbedder, SemanticUnavailable, load_minilm
from aggregator.match.text import features
from aggregator.types import DEFAULT_SEMANTIC
from benchmarks.data import Labelled, Scores, cluster_scores, load_tsv
from benchmarks.match import DEFAULT_DATA, replay

# The precision the targets ask for: cuts below it do not count as reaching a target.
PRECISION_FLOOR = 0.90
LINKAGES = ("average", "complete", "weighted", "single")
# Merge thresholds swept, as similarities (a cut at t joins clusters whose linkage similarity
# is at least t): steps of .01 resolve the F1 peak to about .005 on UCI head.
THRESHOLDS = tuple(round(0.01 * i, 2) for i in range(1, 100))

Matrix = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Cut:
    """One threshold of one clustering and its scores."""

    threshold: float
    scores: Scores

    def describe(self) -> str:
        """The threshold and its B-cubed figures."""
        return f"sim>={self.threshold:.2f} {figures(self.scores)}"


def figures(scores: Scores) -> str:
    """B-cubed precision, recall and F1 on one line."""
    return f"P={scores.b3_precision:.3f} R={scores.b3_recall:.3f} F1={scores.b3_f1:.3f}"


def lexical_similarity(stream: Sequence[Labelled]) -> Matrix:
    """Cosine of smoothed-IDF vectors over each entry's matcher terms (stems)."""
    docs = [sorted(set(features(item.entry).all_terms)) for item in stream]
    vocab: dict[str, int] = {}
    df: dict[int, int] = {}
    rows, cols = [], []
    for row, terms in enumerate(docs):
        for term in terms:
            col = vocab.setdefault(term, len(vocab))
            df[col] = df.get(col, 0) + 1
            rows.append(row)
            cols.append(col)
    n = len(docs)
    values = [math.log((n + 1) / (df[c] + 1)) + 1.0 for c in cols]
    matrix = csr_matrix((values, (rows, cols)), shape=(n, len(vocab)), dtype=np.float64)
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    unit = csr_matrix(matrix.multiply(1.0 / norms[:, None]))
    return np.asarray((unit @ unit.T).todense(), dtype=np.float64)


def semantic_similarity(stream: Sequence[Labelled], embedder: CachedEmbedder) -> Matrix:
    """Cosine of the packaged all-MiniLM-L6-v2 headline vectors (needs the semantic extra)."""
    titles = [item.entry.title for item in stream]
    embedder.prime(titles)
    vectors = np.asarray(embedder(titles), dtype=np.float64)
    return vectors @ vectors.T


def condensed_distance(similarity: Matrix) -> NDArray[np.float64]:
    """``1 - similarity`` as scipy's condensed (upper triangle) distance vector."""
    distance = np.clip(1.0 - similarity, 0.0, 2.0)
    distance = (distance + distance.T) / 2.0
    np.fill_diagonal(distance, 0.0)
    return np.asarray(squareform(distance, checks=False), dtype=np.float64)


def sweep(distance: NDArray[np.float64], method: str, truth: Sequence[str]) -> list[Cut]:
    """Cluster with one linkage and score every threshold of ``THRESHOLDS``."""
    tree = linkage(distance, method=method)
    cuts = []
    for threshold in THRESHOLDS:
        labels = fcluster(tree, t=1.0 - threshold, criterion="distance")
        cuts.append(Cut(threshold, cluster_scores(truth, [str(x) for x in labels])))
    return cuts


def best_at_floor(cuts: Sequence[Cut]) -> Cut | None:
    """The cut of highest F1 among those with precision >= PRECISION_FLOOR."""
    kept = [c for c in cuts if c.scores.b3_precision >= PRECISION_FLOOR]
    return max(kept, key=lambda c: c.scores.b3_f1, default=None)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.match_ceiling")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="labelled TSV stream")
    parser.add_argument("--seed", type=int, default=0, help="replay shuffle seed (online side)")
    parser.add_argument("--semantic", action="store_true", help="also the MiniLM similarity")
    parser.add_argument("--limit", type=int, default=None, help="first N replayed rows only")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        print(f"skipped: labelled data not found at {args.data}")
        return 0
    stream = load_tsv(args.data, seed=args.seed)[: args.limit]
    truth = [item.story for item in stream]
    similarities = {"lexical": lexical_similarity(stream)}
    try:
        embedder = CachedEmbedder(load_minilm()) if args.semantic else None
    except SemanticUnavailable as exc:
        print(f"--semantic: {exc}", file=sys.stderr)
        return 2
    if embedder is not None:
        similarities["minilm"] = semantic_similarity(stream, embedder)
        similarities["mean"] = (similarities["lexical"] + similarities["minilm"]) / 2.0
    print(f"{args.data.name}: {len(stream)} entries, {len(set(truth))} labelled stories")
    # Context for the figures: a stream of mostly one-entry stories scores high unclustered.
    alone = cluster_scores(truth, [str(i) for i in range(len(truth))])
    print(f"every entry alone: {figures(alone)}")
    overall = 0.0
    for name, similarity in similarities.items():
        distance = condensed_distance(similarity)  # one for every linkage
        for method in LINKAGES:
            cuts = sweep(distance, method, truth)
            floor = best_at_floor(cuts)
            top = max(cuts, key=lambda c: c.scores.b3_f1)
            shown = floor.describe() if floor else "none"
            print(f"offline {name:<7} {method:<8} best at P>={PRECISION_FLOOR:.2f}: {shown}")
            print(f"{'':25} best at any P: {top.describe()}")
            if floor is not None:
                overall = max(overall, floor.scores.b3_f1)
    online = replay(stream, embedder=load_embedder(DEFAULT_SEMANTIC)).scores
    semantic_online = replay(stream, embedder=embedder).scores if embedder else None
    for name, scores in (("online", online), ("online minilm", semantic_online)):
        if scores is not None:
            print(f"{name} matcher seed={args.seed}: {figures(scores)}")
    print(
        f"ceiling precision_floor={PRECISION_FLOOR:.2f} offline_best_f1={overall:.3f} "
        f"online_f1={online.b3_f1:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
