"""In-memory state across stories: term weights and the inverted index that finds candidates.

Each story's own aggregate is a ``StoryState`` (``story.py``). Only stories whose newest entry
lies inside the window are kept; everything is keyed by informative terms, so finding
candidates for an entry costs the length of a few posting lists rather than the number of
stories in the window.
"""

from __future__ import annotations

import heapq
import math
from array import array
from collections.abc import Iterable, Mapping
from typing import TypeAlias

from aggregator.match.prior import prior_idf
from aggregator.match.story import StoryState

# Posting lists longer than this (stories holding the term) are skipped when looking for
# candidates: such a term ("stocks", "google") is shared by too many stories to narrow anything
# down, and scanning it would make the cost per entry grow with the window. With 400,
# benchmarks/match_scaling.py (CPU time, fill's collection paid first) gave 557 / 708 us per
# assign at 10k / 100k stories (1.27x) and, with --max, 537 / 684 / 1,378 us at 10k / 100k /
# 1M (2.57x at 1M, 11.3 GB peak). UCI head B3 is the same with 100, 200 and 400; 100 was only
# ~10% cheaper at 10k stories.
POSTING_CAP = 400

# Postings read per candidate search, rarest terms first (see TermIndex.candidates): bounds
# the cost when many stories share mid-frequency terms, as they do once the window holds
# 100k stories or more.
SCAN_BUDGET = 400

# A posting list of at most this many stories is searched for a story before the story is
# added to it; a longer one is not, as a story is linked only to terms new to it
# (``TermIndex.link``), and the search would be a scan of the whole list. A list of n ids takes
# 56 + 8n bytes where a dict used as an ordered set took ~230-1,200 for a few (200 feedgen
# feeds: multi-story postings 2.8 -> 1.2 MB) and about 40 a story beyond (1,000 feedgen feeds:
# the 5,977 postings of more than this many stories, 11.8 MB as dicts).
POSTING_LIST_MAX = 32

# Query terms per candidate search: the heaviest terms of an entry (or of a story's mass). A
# headline has about 8 terms, all kept; an entry with a 100-word summary has
# over 100, and reading every posting list cost ~0.4 ms per entry on feedgen entries.
QUERY_TERMS = 24

# Share of the general-English prior in a term's weight (the rest is online IDF).
PRIOR_SHARE = 0.5
_KEEP = 1.0 - PRIOR_SHARE

# How many of the best index hits (by shared IDF weight) are scored in full: bounds the cost of
# the rapidfuzz and centroid signals per entry. UCI head seeds 0/1: 8 scores as 12 did (B3
# within .001) at 2,531 instead of ~2,000 entries/s.
MAX_CANDIDATES = 8

# Up to this many keys, top_keys sorts them all (measured: 30 keys 1.2 vs 5.3 us, 200 keys 8.9
# vs 12.9 us, 2,000 keys 97 vs 88 us for heapq.nlargest of 8).
SORT_MAX = 500


# A term's posting: one story id or a list of them (see TermIndex).
Posting: TypeAlias = str | list[str]


class TermIndex:
    """Document frequencies learnt from the stream, and term -> stories posting lists.

    A term's weight is ``c * (ln(docs + 1) + 1) + d``, where ``c`` is ``1 - PRIOR_SHARE`` for
    a term with a general-English prior and 1 for one without. ``d`` is kept per term in the
    window and updated when its document frequency changes, so reading a weight is one dict
    look-up however often the window moves (``idf`` is called millions of times per thousand
    entries).

    Each term in the window has an id: its place in the typed arrays and lists that hold its
    figures (document frequency, ``d``, which ``c``, posting list). One dict of ids and packed
    figures take about 184 bytes per term, the term's text included, where a dict per figure
    and a float object took about 210 (200 feedgen feeds: 70,189 terms, 14.7 -> 12.9 MB). An
    id is freed for reuse when its term leaves both the counts and every story.
    """

    def __init__(self) -> None:
        self.docs = 0
        self._ids: dict[str, int] = {}
        # Each id's term, the copy every indexed entry shares ("" for a free id): see shared.
        self._terms: list[str] = []
        self._free: list[int] = []
        self._df: list[int] = []
        self._d: array[float] = array("d")
        # 1 where the term has a general-English prior (c = 1 - PRIOR_SHARE), 0 where not.
        self._blended = bytearray()
        # The stories holding each term, in the order they came to: the story id itself while
        # only one does (most terms: names, rare words), a list beyond; None while none does.
        # Taking a story out of a long list is a scan, paid when a story leaves the window or
        # loses a term, where a dict (an ordered set) took five times the memory.
        self._postings: list[Posting | None] = []
        self._log_docs = 1.0
        self._blended_log_docs = _KEEP

    def shared(self, terms: tuple[str, ...]) -> tuple[str, ...]:
        """``terms`` with each term the index knows replaced by the index's own copy.

        Features unpickled from a parse worker carry their own copy of every term, and a window
        of a million entries would hold them all. The index's ids are the table of copies:
        ``sys.intern`` kept a second table, about 32 bytes a term where an id's place in
        ``_terms`` takes 8 (70,000 terms: 2.25 against 0.56 MB). A term new to the index keeps
        the entry's copy, which becomes the index's when the entry is added."""
        ids = self._ids
        known = self._terms
        out = []
        for term in terms:
            i = ids.get(term)
            out.append(term if i is None else known[i])
        return tuple(out)

    @property
    def terms(self) -> int:
        """Number of distinct terms counted in the window or held by a story."""
        return len(self._ids)

    def idf(self, term: str) -> float:
        """Online IDF over the window blended with the general-English prior (``prior.py``)."""
        i = self._ids.get(term)
        if i is not None:
            return self._weight(i)
        c, d = _coefficients(term, 0)
        return c * self._log_docs + d

    def _weight(self, i: int) -> float:
        base = self._blended_log_docs if self._blended[i] else self._log_docs
        return base + self._d[i]

    def idfs(self, terms: Iterable[str]) -> dict[str, float]:
        """:meth:`idf` of each of ``terms``."""
        ids = self._ids
        d = self._d
        blended = self._blended
        blended_log_docs = self._blended_log_docs
        log_docs = self._log_docs
        out = {}
        for term in terms:
            i = ids.get(term)
            if i is not None:
                out[term] = (blended_log_docs if blended[i] else log_docs) + d[i]
                continue
            c, d0 = _coefficients(term, 0)
            out[term] = c * log_docs + d0
        return out

    def centroid_norm(self, story: StoryState) -> float:
        """Norm of the story centroid ``(1 + ln count) * idf`` (``score.story_norm``), fused:
        each term's weight is read in place, without building a dict of them first."""
        counts = story.counts
        total = 0.0
        for term, slot in story.slots.items():
            weight = (1.0 + math.log(float(counts[slot]))) * self.idf(term)
            total += weight * weight
        return math.sqrt(total)

    def _set_docs(self, docs: int) -> None:
        self.docs = docs
        # ln(docs + 1) + 1, so that idf = _log_docs - ln(df + 1) is the smoothed IDF.
        self._log_docs = math.log(float(docs + 1)) + 1.0
        self._blended_log_docs = _KEEP * self._log_docs

    def df_of(self, term: str) -> int:
        """Number of entries in the window holding ``term``."""
        i = self._ids.get(term)
        return 0 if i is None else self._df[i]

    def _id(self, term: str) -> int:
        """The term's id, given one (document frequency 0, no story) if it has none."""
        i = self._ids.get(term)
        if i is not None:
            return i
        prior = prior_idf(term)
        d = _offset(prior, 0)
        flag = 0 if prior is None else 1
        if self._free:
            i = self._free.pop()
            self._terms[i] = term
            self._df[i] = 0
            self._d[i] = d
            self._blended[i] = flag
        else:
            i = len(self._df)
            self._terms.append(term)
            self._df.append(0)
            self._d.append(d)
            self._blended.append(flag)
            self._postings.append(None)
        self._ids[term] = i
        return i

    def _release(self, term: str, i: int) -> None:
        """Free the id of a term no entry counts and no story holds any more."""
        del self._ids[term]
        self._terms[i] = ""
        self._free.append(i)

    def observe(self, terms: Iterable[str]) -> None:
        """Count one document's terms."""
        self._set_docs(self.docs + 1)
        df = self._df
        d = self._d
        blended = self._blended
        share = PRIOR_SHARE
        keep = _KEEP
        for term in terms:
            i = self._id(term)
            count = df[i] + 1
            df[i] = count
            # _offset(prior, count), inlined: this runs for every term of every entry. The
            # prior is looked up again (memoised for words) rather than kept: 8 bytes a term.
            # float(): compiled, math.log of a float is the C function, of an int a Python call.
            online = -math.log(float(count + 1))
            if blended[i]:
                d[i] = keep * online + share * (prior_idf(term) or 0.0)
            else:
                d[i] = online

    def forget(self, terms: Iterable[str]) -> None:
        """Remove one document's terms from the counts (the entry left the window)."""
        self._set_docs(max(0, self.docs - 1))
        df = self._df
        for term in terms:
            i = self._ids[term]
            left = df[i] - 1
            df[i] = left
            # Down to 0, the weight is an unseen term's, as if the term had no id.
            self._d[i] = _coefficients(term, left)[1]
            if not left and self._postings[i] is None:
                self._release(term, i)

    def link(self, story_id: str, terms: Iterable[str]) -> None:
        """Record that ``story_id`` holds each of ``terms``: terms it did not hold (a story
        is linked to the terms its new member brings it, ``StoryState.add``), as a posting
        list longer than ``POSTING_LIST_MAX`` is not searched for it first."""
        postings = self._postings
        for term in terms:
            i = self._id(term)
            posting = postings[i]
            if posting is None:
                postings[i] = story_id
            elif isinstance(posting, str):
                if posting != story_id:
                    postings[i] = [posting, story_id]
            elif len(posting) >= POSTING_LIST_MAX or story_id not in posting:
                posting.append(story_id)

    def unlink(self, story_id: str, terms: Iterable[str]) -> None:
        """Record that ``story_id`` no longer holds any of ``terms``."""
        postings = self._postings
        for term in terms:
            i = self._ids.get(term)
            if i is None:
                continue
            posting = postings[i]
            if posting is None:
                continue
            if isinstance(posting, str):
                if posting == story_id:
                    postings[i] = None
            else:
                at = _find(posting, story_id)
                if at >= 0:
                    del posting[at]
                if len(posting) == 1:
                    postings[i] = posting[0]
                elif not posting:
                    postings[i] = None
            if postings[i] is None and not self._df[i]:
                self._release(term, i)

    def candidates(self, weights: Mapping[str, float], limit: int = MAX_CANDIDATES) -> list[str]:
        """Stories sharing the most IDF weight with the ``QUERY_TERMS`` heaviest terms, best first.

        ``weights`` ranks the terms (an entry's weights or a story's mass times IDF); the score
        of a story is the sum of the IDF of the query terms it holds. Posting lists are read
        shortest (rarest term) first until the next one would take the total past ``SCAN_BUDGET``
        postings, so the cost stays bounded however many stories share a common term.
        """
        terms: Iterable[str] = weights
        if len(weights) > QUERY_TERMS:
            terms = top_keys(weights, QUERY_TERMS)
        ids = self._ids
        postings = self._postings
        found: list[tuple[int, int, Posting]] = []
        for term in terms:
            i = ids.get(term)
            if i is None:
                continue
            posting = postings[i]
            if posting is not None:
                found.append((1 if isinstance(posting, str) else len(posting), i, posting))
        found.sort(key=_length)
        acc: dict[str, float] = {}
        budget = SCAN_BUDGET
        for length, i, posting in found:
            weight = self._weight(i)
            if isinstance(posting, str):
                acc[posting] = acc.get(posting, 0.0) + weight
                budget -= 1
            elif length <= budget and length <= POSTING_CAP:
                budget -= length
                for sid in posting:
                    acc[sid] = acc.get(sid, 0.0) + weight
            else:
                break  # every later list is at least as long
        return top_keys(acc, limit)


def _find(posting: list[str], story_id: str) -> int:
    """Where ``story_id`` is in ``posting`` (-1: nowhere). By identity first: the matcher links
    and unlinks a story under its one copy of the id (``StoryState.story_id``), so the scan
    reads only the list's pointers, where comparing the strings reads each story's id, a
    cache miss a story in a large window (``benchmarks.poll --feeds 10000``, single runs: the
    index's CPU in the first cycle 561 s with ``list.remove``, 439 s so). By value where that
    finds nothing."""
    for at in range(len(posting)):
        if posting[at] is story_id:
            return at
    for at in range(len(posting)):
        if posting[at] == story_id:
            return at
    return -1


def _length(item: tuple[int, int, object]) -> int:
    return item[0]


def top_keys(scores: Mapping[str, float], limit: int) -> list[str]:
    """The ``limit`` keys of highest score, best first, ties in key order (heapq.nlargest).

    Sorting in C is the faster way up to a few hundred keys; nlargest's Python loop beyond.
    """
    if len(scores) <= SORT_MAX:
        return sorted(scores, key=scores.__getitem__, reverse=True)[:limit]
    return heapq.nlargest(limit, scores, key=scores.__getitem__)


def _coefficients(term: str, df: int) -> tuple[float, float]:
    """``(c, d)``: the term's weight is ``c * (ln(docs + 1) + 1) + d`` (see TermIndex)."""
    prior = prior_idf(term)
    return (1.0 if prior is None else _KEEP), _offset(prior, df)


def _offset(prior: float | None, df: int) -> float:
    """``d`` of a term with this prior (None: none) and document frequency."""
    online = -math.log(float(df + 1))  # online IDF = _log_docs + online
    if prior is None:
        return online
    return _KEEP * online + PRIOR_SHARE * prior
