"""Average link between stories: the signal that lets stories told in different words merge.

Each member is an IDF-weighted unit vector over its terms. A story keeps, per term, the sum of
its members' components without the IDF factor (``StoryState.mass_at``, packed), so the
average cosine over every (member of A, member of B) pair is one sparse dot product of the two
sums divided by ``|A| * |B|``. Average link does not chain: one bridging headline adds only
``1 / (|A| * |B|)`` of its similarity, where single link would join the two stories outright.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from aggregator.match.index import top_keys
from aggregator.match.story import StoryState, number_kinds

Idf = Callable[[str], float]

# Average link at or above this merges two stories (or joins a new entry to a story).
# UCI head seed 0 (prior share .5, join .42): .30 -> P .900 R .507 F1 .649 (seed 1: P .909
# R .476). With join .45: .25 -> P .903 R .466, .30 -> P .918 R .449. Without the anchor
# check and the prior, .15 -> P .842 R .561, .25 -> P .873 R .458. Without title bigrams,
# .40 (see score.JOIN_THRESHOLD).
LINK_THRESHOLD = 0.40
# A story is compared with its neighbours when its size reaches ``next_check``, then again
# after growing by this factor: the cost of the checks stays linear in the number of entries.
# UCI head: 1.25 scores exactly as 1.5 (B3 P .903 R .502 at the time), at more checks.
CHECK_GROWTH = 1.5
# Terms of a story (highest mass x IDF first) whose posting lists are read to find neighbours.
# 12 instead of 8 scores the same on UCI head seeds 0/1 (B3 within .001).
LINK_QUERY_TERMS = 8
# Top terms of each side of which at least one must appear on the other (anchors_agree).
# UCI head seed 0 with link .20: 1 -> P .903 R .421, 2 -> P .884 R .446, 3 -> P .879 R .463.
ANCHOR_TERMS = 2
# Two stories of at least RELATIVE_MIN_SIZE members also merge when their average link is at
# least RELATIVE_LINK times the lower of their cohesions (a story's average link with itself)
# and at least RELATIVE_FLOOR: a topic told in varied words has a low cohesion, and a second
# story as close to it as its own members are is the same topic. UCI head seeds 0 / 1 (join
# .44, link .35): .55 -> P .905/.904 R .539/.537; off -> P .906/.913 R .499/.477 (link .33);
# .6 with join .42 -> P .894/.894 R .573/.568. Floor .08 vs .12: R +.013 at equal P.
# Min size 5 instead of 3: P .898 R .552 vs .894 .573.
RELATIVE_LINK = 0.55
RELATIVE_MIN_SIZE = 3
RELATIVE_FLOOR = 0.08
# Neighbours scored in full per check. 10 instead of 6: seed 0 R .543 vs .539 at equal P,
# seed 1 unchanged; not worth the extra cost.
LINK_CANDIDATES = 6
# Terms listed in a link's evidence, heaviest first.
LINK_TERMS_SHOWN = 6


@dataclass(frozen=True, slots=True)
class StoryMerge:
    """Story ``other`` was folded into ``into`` (the older id survives); why, as JSON."""

    into: str
    other: str
    score: float
    evidence: Mapping[str, object]


def average_link(
    a: Mapping[str, float], size_a: int, b: Mapping[str, float], size_b: int, idf: Idf
) -> tuple[float, list[str]]:
    """Mean cosine over member pairs of two stories, and the terms contributing most."""
    small, large = (a, b) if len(a) <= len(b) else (b, a)
    dot = 0.0
    parts: list[tuple[float, str]] = []
    # Only shared terms count: the smaller side is walked in its own order (see story_link).
    for term, mine in small.items():
        theirs = large.get(term)
        if theirs is not None:
            dot = _add_part(dot, parts, term, mine, theirs, idf)
    return _mean_link(dot, parts, size_a * size_b)


def story_link(
    a: Mapping[str, float], size_a: int, story: StoryState, idf: Idf
) -> tuple[float, list[str]]:
    """:func:`average_link` of a mass (an entry's, or a story's ``mass_dict``) and a story,
    read from the story's packed sums.

    The smaller side is walked in its own order, so the sum adds the same parts in the same
    order in every run: a set intersection of the two key views walked them in an order that
    came from string hashes, and two runs of one stream differed in the last digits of a link
    (and so, at a threshold, could differ in a merge).
    """
    slots = story.slots
    dot = 0.0
    parts: list[tuple[float, str]] = []
    if len(a) <= len(slots):
        for term, mine in a.items():
            slot = slots.get(term)
            if slot is not None:
                dot = _add_part(dot, parts, term, mine, story.mass_at(slot), idf)
    else:
        for term, slot in slots.items():
            held = a.get(term)
            if held is not None:
                dot = _add_part(dot, parts, term, held, story.mass_at(slot), idf)
    return _mean_link(dot, parts, size_a * story.size)


def _add_part(
    dot: float, parts: list[tuple[float, str]], term: str, mine: float, theirs: float, idf: Idf
) -> float:
    """``dot`` plus one shared term's part, kept in ``parts``; a term the other side holds
    without a share (members that brought none) adds nothing."""
    if theirs <= 0.0:
        return dot
    weight = idf(term)
    part = mine * theirs * weight * weight
    parts.append((part, term))
    return dot + part


def _mean_link(dot: float, parts: list[tuple[float, str]], pairs: int) -> tuple[float, list[str]]:
    """The dot product over the ``pairs`` member pairs, and the terms of the largest parts."""
    top = sorted(parts, reverse=True)[:LINK_TERMS_SHOWN]
    return dot / pairs, [t for _, t in top]


def query_terms(mass: Mapping[str, float], idf: Idf, limit: int = LINK_QUERY_TERMS) -> list[str]:
    """The most telling terms of a mass (highest mass x IDF first): where neighbours are found.

    Also the anchors of :func:`anchors_agree` (its first ``ANCHOR_TERMS``).
    """
    return top_keys({t: v * idf(t) for t, v in mass.items()}, limit)


def check_due(story: StoryState) -> bool:
    """True when the story has grown enough since it was last compared with its neighbours."""
    if story.size < story.next_check:
        return False
    story.next_check = max(story.size + 1, math.ceil(story.size * CHECK_GROWTH))
    return True


def figures_conflict(
    mine: Iterable[str],
    theirs: Collection[str] | None,
    their_kinds: Collection[str] | None = None,
) -> bool:
    """True when both sides state figures of one kind and none agree (92% vs 72%).

    ``their_kinds``: the kinds of ``theirs`` (``StoryState.figures``), when known.
    """
    if not theirs:
        return False
    if their_kinds is None:
        their_kinds = number_kinds(theirs)
    by_kind: dict[str, list[str]] = {}
    for figure in mine:
        kind = figure.partition(":")[0]
        if kind != "n":
            by_kind.setdefault(kind, []).append(figure)
    return any(
        kind in their_kinds and not any(f in theirs for f in figures)
        for kind, figures in by_kind.items()
    )


def story_figures_conflict(mine: Iterable[str], story: StoryState) -> bool:
    """:func:`figures_conflict` of figures and a story's."""
    figures = story.figures()
    return figures is not None and figures_conflict(mine, figures[0], figures[1])


def anchors_agree(a: Mapping[str, float], b: Mapping[str, float], idf: Idf) -> bool:
    """True when each side's most telling terms appear on the other side too.

    Two stories sharing only their generic words ("files for bankruptcy") are told about
    different subjects (Sbarro, Mt. Gox): each one's top terms must be present in the other.
    """
    return anchors_present(query_terms(a, idf, ANCHOR_TERMS), b) and anchors_present(
        query_terms(b, idf, ANCHOR_TERMS), a
    )


def anchors_present(ranked: Sequence[str], other: Mapping[str, float]) -> bool:
    """True when one of the first ``ANCHOR_TERMS`` of ``ranked`` (see query_terms) is in other."""
    return any(t in other for t in ranked[:ANCHOR_TERMS])


def anchors_held(ranked: Sequence[str], story: StoryState) -> bool:
    """:func:`anchors_present` in a story's mass."""
    return any(story.has_mass(t) for t in ranked[:ANCHOR_TERMS])


def cohesion(mass: Mapping[str, float], size: int, idf: Idf) -> float:
    """Average link of a story with itself, over distinct member pairs (1.0 for one member)."""
    if size < 2:
        return 1.0
    total = sum((value * idf(term)) ** 2 for term, value in mass.items())
    return max(0.0, (total - size) / (size * (size - 1)))
