"""One story's aggregate of its members: per-term counts and summed shares, names, figures.

The matcher keeps one ``StoryState`` per story in the window (``index.py`` holds what spans the
stories: document frequencies and the term -> stories postings).
"""

from __future__ import annotations

import itertools
from array import array
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from aggregator.match.text import SUMMARY_WEIGHT, Features

# Members whose titles are kept for the fuzzy comparison: the first few define the story, the
# latest few follow how it is told now. Bounded so one big story costs no more than a small one.
REP_FIRST = 4
REP_LAST = 4


# A story's mass below this is gone: what is left once a member's share is taken off a term
# no member holds any more is rounding, not meaning.
MASS_EPSILON = 1e-9


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
    # Each member's row in the meaning state (``SemanticState``), in the order of ``members``
    # (-1: none); None while no member has one (the signal is off). A dict of entry key -> row
    # in the meaning state took about 75 bytes a member, 4 here.
    rows: array[int] | None = None
    # Creation order (older stories keep their id when two merge) and the size at which the
    # story is next compared with its neighbours.
    born: int = 0
    next_check: int = 1
    # What ``cache.StoryCache`` computed over all its terms, each with the size it was computed
    # at (0: never): kept here, unboxed, where three dicts by story id of (size, value) tuples
    # took about 280 bytes a story (1,000 feedgen feeds: 3.5 MB).
    norm_size: int = 0
    norm_value: float = 0.0
    tops_size: int = 0
    tops: list[str] | None = None
    cohesion_size: int = 0
    cohesion_value: float = 0.0

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
        """The story's mass of the term in ``slot`` (``kept_mass``, or the one member's share)."""
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
            return {} if only is None else unit_mass(only, self.norms[0])
        out = {}
        for term, slot in self.slots.items():
            value = mass[slot]
            if value > 0.0:
                out[term] = value
        return out

    def add(self, feats: Features, norm: float = 0.0, row: int = -1) -> list[str]:
        """Add a member whose term weights have this ``norm`` (0.0: it brings no share of
        ``mass``) and whose meaning is in ``row`` (-1: none); return the index terms new here."""
        if self.kept_counts is None:
            only = self._single()
            if only is None:
                self.members[feats.key] = feats
                self.norms.append(norm)
                self._add_row(row)
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
        self._add_row(row)
        fresh = self._accumulate(feats, norm)
        self._count_names(feats)
        self._newer(feats)
        return fresh

    def _add_row(self, row: int) -> None:
        """Record the meaning row of the member just added (see ``rows``)."""
        rows = self.rows
        if rows is not None:
            rows.append(row)
        elif row >= 0:
            self.rows = array("i", [-1]) * (len(self.members) - 1)
            self.rows.append(row)

    def row_of(self, key: tuple[str, str]) -> int:
        """The meaning row of a member (-1: none)."""
        return -1 if self.rows is None else self.rows[self._position(key)]

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
        if self.rows is not None:
            self.rows.pop(position)
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

    def holds(self, url_key: int | None = None, wire_key: int | None = None) -> bool:
        """Whether a member has this link's key (or this wire copy's): a scan, as it is asked
        only when a member leaves (a Counter of each per story took ~200 bytes a story)."""
        return any(
            (url_key is not None and m.url_key == url_key)
            or (wire_key is not None and m.wire_key == wire_key)
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


def unit_mass(feats: Features, norm: float) -> dict[str, float]:
    """An entry's unit-vector components divided by each term's IDF (see ``link.py``), given
    the norm of its term weights: its ``shares`` by term (none when ``norm`` is 0.0)."""
    if not norm:
        return {}
    return dict(zip(feats.terms, shares(feats, norm), strict=True))


def shares(feats: Features, norm: float) -> list[float]:
    """A member's share of each of its terms: its unit vector's components without the IDF
    factor (``factor * idf / norm`` over ``idf``); all 0.0 when ``norm`` is 0.0."""
    title = feats.title_count
    if not norm:
        return [0.0] * len(feats.terms)
    # Two values, each divided once: the same doubles as dividing term by term.
    return [1.0 / norm] * title + [SUMMARY_WEIGHT / norm] * (len(feats.terms) - title)


def share_at(feats: Features, norm: float, position: int) -> float:
    """The share of the term at ``position`` in ``feats.terms``: ``shares(feats, norm)[position]``
    without the list."""
    if not norm:
        return 0.0
    if position < feats.title_count:
        return 1.0 / norm
    return SUMMARY_WEIGHT / norm


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
