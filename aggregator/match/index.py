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

from aggregator.match.text import Features

# Posting lists longer than this (stories holding the term) are skipped when looking for
# candidates: such a term ("stocks", "google") is shared by too many stories to narrow anything
# down, and scanning it would make the cost per entry grow with the window. With 400, the
# per-entry cost at 100k stories was 1.15x, 1.61x and 2.39x that at 10k in three runs of
# benchmarks/match_scaling.py on a shared, loaded 2-core machine (noisy; not yet settled).
POSTING_CAP = 400

# How many of the best index hits (by shared IDF weight) are scored in full: bounds the cost of
# the rapidfuzz and centroid signals per entry. Not yet tuned; a reasoned margin over the few
# stories that share an entry's rare terms.
MAX_CANDIDATES = 12

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

    @property
    def size(self) -> int:
        """Number of member entries."""
        return len(self.members)

    def add(self, feats: Features) -> list[str]:
        """Add a member; return the index terms that are new to this story."""
        self.members[feats.key] = feats
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

    def idf(self, term: str) -> float:
        """Smoothed inverse document frequency over the entries currently in the window."""
        return math.log((self.docs + 1) / (self.df.get(term, 0) + 1)) + 1.0

    def df_of(self, term: str) -> int:
        """Number of entries in the window holding ``term``."""
        return self.df.get(term, 0)

    def observe(self, terms: Iterable[str]) -> None:
        """Count one document's terms."""
        self.docs += 1
        self.df.update(terms)

    def forget(self, terms: Iterable[str]) -> None:
        """Remove one document's terms from the counts (the entry left the window)."""
        self.docs = max(0, self.docs - 1)
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
