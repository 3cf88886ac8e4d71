"""In-memory state: per-story aggregates and the inverted index used to find candidates.

Only stories whose newest entry lies inside the window are kept; everything is keyed by
informative terms, so finding candidates for an entry costs the length of a few posting lists
rather than the number of stories in the window.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from aggregator.match.prior import prior_idf
from aggregator.match.text import Features

# Posting lists longer than this (stories holding the term) are skipped when looking for
# candidates: such a term ("stocks", "google") is shared by too many stories to narrow anything
# down, and scanning it would make the cost per entry grow with the window. With 400, the
# per-entry cost at 100k stories was 1.15x, 1.61x and 2.39x that at 10k in three runs of
# benchmarks/match_scaling.py on a shared, loaded 2-core machine (noisy; not yet settled).
POSTING_CAP = 400

# Share of the general-English prior in a term's weight (the rest is online IDF).
PRIOR_SHARE = 0.5

# How many of the best index hits (by shared IDF weight) are scored in full: bounds the cost of
# the rapidfuzz and centroid signals per entry. UCI head seeds 0/1: 8 scores as 12 did (B3
# within .001) at 2,531 instead of ~2,000 entries/s.
MAX_CANDIDATES = 8

# Members whose titles are kept for the fuzzy comparison: the first few define the story, the
# latest few follow how it is told now. Bounded so one big story costs no more than a small one.
REP_FIRST = 4
REP_LAST = 4


@dataclass(slots=True)
class StoryState:
    """The aggregate of one story's members, updated as entries join or leave."""

    story_id: str
    members: dict[tuple[str, str], Features] = field(default_factory=dict)
    order: list[tuple[str, str]] = field(default_factory=list)
    term_counts: Counter[str] = field(default_factory=Counter)
    entity_counts: Counter[str] = field(default_factory=Counter)
    number_counts: Counter[str] = field(default_factory=Counter)
    urls: set[str] = field(default_factory=set)
    wires: set[str] = field(default_factory=set)
    newest: datetime | None = None
    # Sum over members of each term's share of the member's unit vector, without the IDF
    # factor (applied when compared): the average-link signal between stories (``link.py``).
    mass: dict[str, float] = field(default_factory=dict)
    member_mass: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)
    # Creation order (older stories keep their id when two merge) and the size at which the
    # story is next compared with its neighbours.
    born: int = 0
    next_check: int = 1

    @property
    def size(self) -> int:
        """Number of member entries."""
        return len(self.members)

    def add(self, feats: Features, mass: dict[str, float] | None = None) -> list[str]:
        """Add a member (with its unit-vector ``mass``); return the index terms new here."""
        self.members[feats.key] = feats
        if mass:
            self.member_mass[feats.key] = mass
            for term, value in mass.items():
                self.mass[term] = self.mass.get(term, 0.0) + value
        self.order.append(feats.key)
        fresh = []
        for term in feats.all_terms:
            if self.term_counts[term] == 0:
                fresh.append(term)
            self.term_counts[term] += 1
        self.entity_counts.update(feats.entities)
        self.number_counts.update(feats.numbers)
        if feats.url:
            self.urls.add(feats.url)
        if feats.wire:
            self.wires.add(feats.wire)
        if self.newest is None or feats.published > self.newest:
            self.newest = feats.published
        return fresh

    def remove(self, key: tuple[str, str]) -> list[str]:
        """Remove a member; return the index terms no member holds any more."""
        feats = self.members.pop(key)
        self.order.remove(key)
        for term, value in self.member_mass.pop(key, {}).items():
            left = self.mass.get(term, 0.0) - value
            if left > 1e-9:
                self.mass[term] = left
            else:
                self.mass.pop(term, None)
        gone = []
        for term in feats.all_terms:
            self.term_counts[term] -= 1
            if self.term_counts[term] <= 0:
                del self.term_counts[term]
                gone.append(term)
        self.entity_counts.subtract(feats.entities)
        self.number_counts.subtract(feats.numbers)
        self.entity_counts = +self.entity_counts
        self.number_counts = +self.number_counts
        self.urls = {m.url for m in self.members.values() if m.url}
        self.wires = {m.wire for m in self.members.values() if m.wire}
        self.newest = max((m.published for m in self.members.values()), default=None)
        return gone

    def representatives(self) -> list[Features]:
        """The first and the latest members, compared one by one in the fuzzy signal."""
        keys = self.order[:REP_FIRST] + self.order[REP_FIRST:][-REP_LAST:]
        return [self.members[k] for k in keys]


class TermIndex:
    """Document frequencies learnt from the stream, and term -> stories posting lists."""

    def __init__(self) -> None:
        self.df: Counter[str] = Counter()
        self.docs = 0
        self.postings: dict[str, dict[str, None]] = {}
        self._prior: dict[str, float | None] = {}
        self._logs: list[float] = []  # ln(df + 1) by df
        self._log_docs = 1.0

    def idf(self, term: str) -> float:
        """Online IDF over the window blended with the general-English prior (``prior.py``)."""
        df = self.df.get(term, 0)
        logs = self._logs
        while len(logs) <= df:
            logs.append(math.log(len(logs) + 1))
        online = self._log_docs - logs[df]
        try:
            prior = self._prior[term]
        except KeyError:
            prior = self._prior[term] = prior_idf(term)
        if prior is None:
            return online
        return (1.0 - PRIOR_SHARE) * online + PRIOR_SHARE * prior

    def _set_docs(self, docs: int) -> None:
        self.docs = docs
        # ln(docs + 1) + 1, so that idf = _log_docs - ln(df + 1) is the smoothed IDF.
        self._log_docs = math.log(docs + 1) + 1.0

    def df_of(self, term: str) -> int:
        """Number of entries in the window holding ``term``."""
        return self.df.get(term, 0)

    def observe(self, terms: Iterable[str]) -> None:
        """Count one document's terms."""
        self._set_docs(self.docs + 1)
        self.df.update(terms)

    def forget(self, terms: Iterable[str]) -> None:
        """Remove one document's terms from the counts (the entry left the window)."""
        self._set_docs(max(0, self.docs - 1))
        for term in terms:
            left = self.df[term] - 1
            if left > 0:
                self.df[term] = left
            else:
                del self.df[term]

    def link(self, story_id: str, terms: Iterable[str]) -> None:
        """Record that ``story_id`` holds each of ``terms``."""
        for term in terms:
            self.postings.setdefault(term, {})[story_id] = None

    def unlink(self, story_id: str, terms: Iterable[str]) -> None:
        """Record that ``story_id`` no longer holds any of ``terms``."""
        for term in terms:
            posting = self.postings.get(term)
            if posting is not None:
                posting.pop(story_id, None)
                if not posting:
                    del self.postings[term]

    def candidates(self, terms: Iterable[str], limit: int = MAX_CANDIDATES) -> list[str]:
        """Stories sharing the most IDF weight with ``terms``, best first."""
        acc: dict[str, float] = {}
        for term in terms:
            posting = self.postings.get(term)
            if not posting or len(posting) > POSTING_CAP:
                continue
            weight = self.idf(term)
            for sid in posting:
                acc[sid] = acc.get(sid, 0.0) + weight
        if len(acc) <= limit:
            return sorted(acc, key=acc.__getitem__, reverse=True)
        return heapq.nlargest(limit, acc, key=acc.__getitem__)
