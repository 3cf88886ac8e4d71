"""In-memory state: per-story aggregates and the inverted index used to find candidates.

Only stories whose newest entry lies inside the window are kept; everything is keyed by
informative terms, so finding candidates for an entry costs the length of a few posting lists
rather than the number of stories in the window.
"""

from __future__ import annotations

import heapq
import itertools
import math
from array import array
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeAlias

from aggregator.match.prior import prior_idf
from aggregator.match.text import BIGRAM_WEIGHT, SUMMARY_WEIGHT, Features

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

# Stories a term's posting list holds as a list before it becomes a dict. A list of n ids
# takes 56 + 8n bytes where the dict took ~230-1,200 (200 feedgen feeds: multi-story postings
# 2.8 -> 1.2 MB); finding a story in it is a scan of at most this many pointers.
POSTING_LIST_MAX = 32

# Query terms per candidate search: the heaviest terms of an entry (or of a story's mass). A
# headline has about 15 terms and title bigrams, all kept; an entry with a 100-word summary has
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

# Members whose titles are kept for the fuzzy comparison: the first few define the story, the
# latest few follow how it is told now. Bounded so one big story costs no more than a small one.
REP_FIRST = 4
REP_LAST = 4


# A story's mass below this is gone: what is left once a member's share is taken off a term
# no member holds any more is rounding, not meaning.
MASS_EPSILON = 1e-9


# A term's posting: one story id, a list of them, or an ordered set of them (see TermIndex).
Posting: TypeAlias = str | list[str] | dict[str, None]


@dataclass(slots=True)
class StoryState:
    """The aggregate of one story's members, updated as entries join or leave.

    Per-term figures are packed: ``slots`` maps each term a member holds to its place in the
    ``counts`` and ``mass`` arrays. One dict and two typed arrays take about 41 bytes per term
    and story where a dict of counts, a dict of masses and a float object per mass took about
    75 (200 feedgen feeds, 10,000 entries: 11.7 MB became 6.5). Slots freed by a leaving term
    are reused by the next new one.

    A story that has only ever had one member keeps only ``slots`` (each term's slot is its
    place in the member's terms): its counts are all 1, its mass is the member's shares
    (:func:`share_at`) and its names and figures are the member's, read from the member when
    asked. Most stories of a real window have one member, and the arrays, the free list and
    the name and figure counters repeated the member's terms at about 1 KB a story (AllSides,
    8,026 entries in 6,767 stories). The arrays are built when a second member joins, with the
    values adding members one by one gives, and kept from then on, so every figure is the same
    as if they had always been kept. ``slots`` stays, as the scoring loop reads it for every
    candidate: building it when read cost about 6 % more instructions on AllSides.
    """

    story_id: str
    # In the order they joined (dicts keep it, and removing one costs O(1)).
    members: dict[tuple[str, str], Features] = field(default_factory=dict)
    # Term -> slot, in the order the terms first joined (what iterating the terms follows).
    slots: dict[str, int] = field(default_factory=dict)
    # Members holding the term, by slot (0 in a free slot); None until a second member joins
    # (see above), as is every field down to ``kept_kinds``.
    kept_counts: array[int] | None = None
    # Sum over members of each term's share of the member's unit vector, without the IDF
    # factor (applied when compared): the average-link signal between stories (``link.py``).
    # 0.0 where no member with a share holds the term (see MASS_EPSILON).
    kept_mass: array[float] | None = None
    free: list[int] | None = None
    # Members' names and figures, and the figures by kind ("%", "$", ...): whether the story
    # states a figure of a kind. None while no member has any (most stories): an empty Counter
    # takes ~90 bytes.
    kept_entities: Counter[str] | None = None
    kept_numbers: Counter[str] | None = None
    kept_kinds: Counter[str] | None = None
    newest: datetime | None = None
    # The norm of each member's term weights, in the order of ``members`` (0.0: no share).
    # A member's share of a term is its weight factor over this norm (``shares``), so eight
    # bytes give back what it added to ``mass`` exactly, where its packed shares took ~0.3 KB.
    norms: array[float] = field(default_factory=lambda: array("d"))
    # Creation order (older stories keep their id when two merge) and the size at which the
    # story is next compared with its neighbours.
    born: int = 0
    next_check: int = 1

    @property
    def size(self) -> int:
        """Number of member entries."""
        return len(self.members)

    def _single(self) -> Features | None:
        """The member of a story without arrays (None: the story is empty)."""
        for feats in self.members.values():
            return feats
        return None

    @property
    def counts(self) -> array[int]:
        """Members holding each term, by slot."""
        kept = self.kept_counts
        if kept is not None:
            return kept
        return array("i", [1]) * len(self.slots)

    @property
    def mass(self) -> array[float]:
        """The story's mass of each term, by slot."""
        kept = self.kept_mass
        if kept is not None:
            return kept
        only = self._single()
        return array("d") if only is None else array("d", shares(only, self.norms[0]))

    def figures(self) -> tuple[Collection[str], Collection[str]] | None:
        """The figures the members state and their kinds (``%:92`` and ``%``); None while no
        member states any. Read from the member of a one-member story without counting them."""
        if self.kept_counts is not None:
            if self.kept_numbers is None or self.kept_kinds is None:
                return None
            return self.kept_numbers, self.kept_kinds
        only = self._single()
        if only is None or not only.numbers:
            return None
        return only.numbers, number_kinds(only.numbers)

    def names(self, name: str) -> bool:
        """Whether a member names ``name`` (one of its entities)."""
        if self.kept_counts is not None:
            return self.kept_entities is not None and name in self.kept_entities
        only = self._single()
        return only is not None and name in only.entities

    def count(self, term: str) -> int:
        """Members holding ``term``."""
        slot = self.slots.get(term)
        if slot is None:
            return 0
        return 1 if self.kept_counts is None else self.kept_counts[slot]

    def mass_of(self, term: str) -> float:
        """The story's mass of ``term``; 0.0 when it has none."""
        slot = self.slots.get(term)
        return 0.0 if slot is None else self.mass_at(slot)

    def mass_at(self, slot: int) -> float:
        """``mass[slot]``, without building the array of a story that keeps none."""
        kept = self.kept_mass
        if kept is not None:
            return kept[slot]
        only = self._single()
        assert only is not None, "an empty story has no slot"
        return share_at(only, self.norms[0], slot)

    def has_mass(self, term: str) -> bool:
        """Whether the story has a share of ``term`` (the terms of ``mass_dict``)."""
        return self.mass_of(term) > 0.0

    def mass_dict(self) -> dict[str, float]:
        """The story's mass by term, the terms in the order they joined."""
        mass = self.kept_mass
        if mass is None:
            only = self._single()
            if only is None:
                return {}
            pairs = zip(only.terms, shares(only, self.norms[0]), strict=True)
            return {term: value for term, value in pairs if value > 0.0}
        out = {}
        for term, slot in self.slots.items():
            value = mass[slot]
            if value > 0.0:
                out[term] = value
        return out

    def add(self, feats: Features, norm: float = 0.0) -> list[str]:
        """Add a member whose term weights have this ``norm`` (0.0: it brings no share of
        ``mass``); return the index terms new here."""
        if self.kept_counts is None:
            only = self._single()
            if only is None:
                self.members[feats.key] = feats
                self.norms.append(norm)
                self.slots = {term: slot for slot, term in enumerate(feats.all_terms)}
                self._newer(feats)
                return list(feats.all_terms)
            # The second member: the first one's figures become arrays, as if kept.
            self.kept_counts = array("i", [1]) * len(self.slots)
            self.kept_mass = array("d", shares(only, self.norms[0]))
            self.free = []
            self._count_names(only)
        self.members[feats.key] = feats
        self.norms.append(norm)
        fresh = self._accumulate(feats, norm)
        self._count_names(feats)
        self._newer(feats)
        return fresh

    def _newer(self, feats: Features) -> None:
        if self.newest is None or feats.published > self.newest:
            self.newest = feats.published

    def _accumulate(self, feats: Features, norm: float) -> list[str]:
        """Count a member's terms into the arrays; the terms new to the story."""
        fresh = []
        slots = self.slots
        counts = self.kept_counts
        total = self.kept_mass
        free = self.free
        assert counts is not None and total is not None and free is not None
        for term, value in zip(feats.all_terms, shares(feats, norm), strict=True):
            slot = slots.get(term)
            if slot is None:
                fresh.append(term)
                if free:
                    slot = free.pop()
                    counts[slot] = 1
                    total[slot] = value
                else:
                    slot = len(counts)
                    counts.append(1)
                    total.append(value)
                slots[term] = slot
            else:
                counts[slot] += 1
                total[slot] += value
        return fresh

    def _count_names(self, feats: Features) -> None:
        """Count a member's names and figures into the counters."""
        if feats.entities:
            if self.kept_entities is None:
                self.kept_entities = Counter()
            self.kept_entities.update(feats.entities)
        if feats.numbers:
            if self.kept_numbers is None or self.kept_kinds is None:
                self.kept_numbers, self.kept_kinds = Counter(), Counter()
            self.kept_numbers.update(feats.numbers)
            self.kept_kinds.update(number_kinds(feats.numbers))

    def remove(self, key: tuple[str, str]) -> list[str]:
        """Remove a member; return the index terms no member holds any more."""
        position = self._position(key)
        norm = self.norms.pop(position)
        feats = self.members.pop(key)
        slots = self.slots
        counts = self.kept_counts
        total = self.kept_mass
        free = self.free
        if counts is None or total is None or free is None:
            self.slots = {}
            self.newest = None
            return list(feats.all_terms)
        gone = []
        for term, value in zip(feats.all_terms, shares(feats, norm), strict=True):
            slot = slots[term]
            left_count = counts[slot] - 1
            if left_count > 0:
                counts[slot] = left_count
                left = total[slot] - value
                total[slot] = left if left > MASS_EPSILON else 0.0
            else:
                del slots[term]
                counts[slot] = 0
                total[slot] = 0.0
                free.append(slot)
                gone.append(term)
        if self.kept_entities is not None:
            _discount(self.kept_entities, feats.entities)
            if not self.kept_entities:
                self.kept_entities = None
        if self.kept_numbers is not None and self.kept_kinds is not None:
            _discount(self.kept_numbers, feats.numbers)
            _discount(self.kept_kinds, number_kinds(feats.numbers))
            if not self.kept_numbers:
                self.kept_numbers = self.kept_kinds = None
        if feats.published == self.newest:
            self.newest = max((m.published for m in self.members.values()), default=None)
        return gone

    def holds(self, url: str | None = None, wire: str | None = None) -> bool:
        """Whether a member has this link (or this wire text): a scan, as it is asked only
        when a member leaves (a Counter of each per story took ~200 bytes a story)."""
        return any(
            (url is not None and m.url == url) or (wire is not None and m.wire == wire)
            for m in self.members.values()
        )

    def norm_of(self, key: tuple[str, str]) -> float:
        """The norm a member was added with (0.0: it brought no share)."""
        return self.norms[self._position(key)]

    def _position(self, key: tuple[str, str]) -> int:
        """Where a member is in ``members`` (and ``norms``): a scan, as members leave a story
        only when edited, split or merged."""
        for position, member in enumerate(self.members):
            if member == key:
                return position
        raise KeyError(key)

    def representatives(self) -> list[Features]:
        """The first and the latest members, compared one by one in the fuzzy signal."""
        members = self.members
        if len(members) <= REP_FIRST + REP_LAST:
            return list(members.values())
        first = list(itertools.islice(members.values(), REP_FIRST))
        last = list(itertools.islice(reversed(members.values()), REP_LAST))
        return first + last[::-1]


def shares(feats: Features, norm: float) -> list[float]:
    """A member's share of each of its terms: its unit vector's components without the IDF
    factor (``factor * idf / norm`` over ``idf``); all 0.0 when ``norm`` is 0.0."""
    title, summary = feats.title_count, feats.summary_count
    bigrams = len(feats.terms) - title - summary
    if not norm:
        return [0.0] * len(feats.terms)
    # Three values, each divided once: the same doubles as dividing term by term.
    return (
        [1.0 / norm] * title + [SUMMARY_WEIGHT / norm] * summary + [BIGRAM_WEIGHT / norm] * bigrams
    )


def share_at(feats: Features, norm: float, position: int) -> float:
    """The share of the term at ``position`` in ``feats.terms``: ``shares(feats, norm)[position]``
    without the list."""
    if not norm:
        return 0.0
    if position < feats.title_count:
        return 1.0 / norm
    if position < feats.title_count + feats.summary_count:
        return SUMMARY_WEIGHT / norm
    return BIGRAM_WEIGHT / norm


def number_kinds(figures: Iterable[str]) -> list[str]:
    """The kind of each tagged figure (``%:92`` -> ``%``), one per figure."""
    return [f.partition(":")[0] for f in figures]


def _discount(counts: Counter[str], items: Iterable[str]) -> None:
    """Take one of each of ``items`` off ``counts``, dropping what reaches zero."""
    for item in items:
        left = counts[item] - 1
        if left > 0:
            counts[item] = left
        else:
            del counts[item]


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
        # only one does (most terms: names, title bigrams), a list up to POSTING_LIST_MAX, a
        # dict used as an ordered set beyond (membership in O(1)); None while none does.
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
        """Record that ``story_id`` holds each of ``terms``."""
        postings = self._postings
        for term in terms:
            i = self._id(term)
            posting = postings[i]
            if posting is None:
                postings[i] = story_id
            elif isinstance(posting, str):
                if posting != story_id:
                    postings[i] = [posting, story_id]
            elif isinstance(posting, list):
                if story_id not in posting:
                    if len(posting) < POSTING_LIST_MAX:
                        posting.append(story_id)
                    else:
                        grown = dict.fromkeys(posting)
                        grown[story_id] = None
                        postings[i] = grown
            else:
                posting[story_id] = None

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
                if isinstance(posting, list):
                    if story_id in posting:
                        posting.remove(story_id)
                else:
                    posting.pop(story_id, None)
                if len(posting) == 1:
                    postings[i] = next(iter(posting))
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
