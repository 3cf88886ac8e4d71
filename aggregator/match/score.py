"""Signals comparing one entry with one story, and their combination into one score.

Pure functions: they read the entry's features, the story's aggregate and an IDF function.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from rapidfuzz import fuzz, process

from aggregator.match.link import (
    LINK_THRESHOLD,
    RELATIVE_FLOOR,
    RELATIVE_LINK,
    story_figures_conflict,
)
from aggregator.match.story import StoryState
from aggregator.match.text import SUMMARY_WEIGHT, Features

Idf = Callable[[str], float]

# Share of a story's members that must hold a term for it to count fully in the coverage
# signal (UCI stories are topic-level, so a term in 15% of members is characteristic).
# 0.15 with the defaults gives P .906 R .421; 0.34 gave fewer joins into big stories.
FULL_SHARE = 0.15
# Time proximity: score multiplier exp(-gap / TIME_SCALE), floored at TIME_FLOOR. Reports of one
# event cluster within hours; a gap of days is weak evidence against (follow-ups, re-runs).
TIME_SCALE = timedelta(hours=36)
TIME_FLOOR = 0.85
_TIME_SCALE_SECONDS = TIME_SCALE.total_seconds()
# Shared terms listed in the evidence, heaviest first.
SHARED_SHOWN = 8


# Measurements below: `python -m benchmarks.match --no-extra` (UCI head, seed 0, B3), one
# parameter moved from the defaults at a time unless said otherwise.
# Before the prior and story merges: 0.40 gave B3 P .906 R .421 F1 .574, 0.33 P .833 R .572.
# With them (seeds 0/1): 0.44 -> P .905/.904 R .539/.537; 0.42 (relative link .6) -> P .894/.894.
# With W_FUZZY 0.20 (seeds 0/1): 0.375 -> P .902/.902 R .560/.553 F1 .691/.685; 0.38 -> P
# .903/.902 R .551/.546; 0.37 -> P .899/.898 R .568/.568.
# Without title bigrams (text.py) fewer terms share an entry's weight, so a shared word counts
# for more. B3 P/R, AllSides and UCI head, seeds 0/1, join/link (link.LINK_THRESHOLD); with
# bigrams at .375/.35: AllSides .941/.463 .940/.462, UCI .903/.547 .904/.549. Without:
# .375/.35 -> AllSides .867/.536, UCI .874/.670 (seed 0); .45/.42 -> .954/.453 .948/.454,
# UCI .902/.570 .886/.576; .45/.40 -> .944/.467 .939/.469, UCI .902/.570 .886/.576;
# .45/.385 -> .935/.479 .932/.482; .47/.385 -> .939/.474 .936/.478, UCI .904/.548 .897/.555.
# .45/.40 is as precise on AllSides's events with more recall, and more recall on UCI's topics.
# At .46 the TASS report of the Ankara talks (tests/test_match_events.py) scores .442 against
# the other agencies' story and starts its own: a story of three lowers the bar by .033.
JOIN_THRESHOLD = 0.45
# Threshold drop per log(story size): established stories absorb reports worded differently.
# 0.03 as above; 0.06 gave P .767 R .564; 0 (fixed threshold) gave P .903 R .370 at 0.33.
SIZE_DISCOUNT = 0.03
# Floor of the size-relative threshold (never reached on UCI head: log(322) * 0.03 = 0.17).
MIN_THRESHOLD = 0.15
# Signal weights. Ownership (share of a term's window occurrences held by the story) is what
# lifts recall on topic-level stories: 0 -> P .942 R .166 (threshold .33); 1.0 -> P .844 R .566.
W_COSINE = 0.45
W_COVERAGE = 0.25  # 0.5 gave P .874 R .515: coverage alone over-rewards short titles
# Fuzzy title match. It tells a right story from a wrong one less well than the centroid
# cosine (UCI head seed 0, every scored candidate: ROC AUC .75 vs .85; best candidates within
# .1 of the threshold: mean fuzzy .48-.59 right, .48-.58 wrong), yet lifts every candidate.
# Seeds 0/1, each weight with the threshold that keeps P >= .90: 0.30 (join .44) F1
# .675/.674; 0.25 (.41) .681/.676; 0.20 (.375) .691/.685; 0.15 (.35) .684/.683; 0.10 (.33)
# .677/.677. Earlier, 0.1 at join .33 without the prior gave P .966 R .141.
W_FUZZY = 0.20
W_OWNER = 0.50
# Penalty per IDF share of entity names the story never mentions: 0 gave P .877 R .522.
ENTITY_PENALTY = 0.15
# A conflicting figure (92% vs 72%) takes this off, a veto in effect (scores stay below 1.4):
# 0.25 and 0.5 let the poll unit case through (0.51, 0.61); UCI head: P .906 R .420 with 1.0.
NUMBER_PENALTY = 1.0


# The meaning signal (``semantic.py``, off without an embedder) adds W_MEANING * (mean centred
# cosine to the story's members - MEANING_MID) to each candidate's join margin. Measured with
# the static model, B3 P/F1, AllSides seeds 0/1 and UCI head seeds 0/1 (words alone: AllSides
# .956/.613 .956/.611, UCI head .902/.691 .902/.685), before the event rule: weight .2 mid .4 ->
# AllSides .937/.629 .942/.629, UCI .902/.688 .902/.692; .3/.4 -> .924/.642, UCI .903/.691;
# .3/.45 -> .932/.635, UCI .907/.679; .4/.4 -> .905/.655; .3/.3 -> .889/.656, UCI .886/.710;
# .2/.5 -> .949/.621, UCI .908/.665. A lower mid or a higher weight buys recall with precision
# on both streams. Blending the meaning into the average links as well (share .3-.6 of the
# link, link threshold .4-.55) cost UCI head recall (its topic-level stories merge by links)
# for no AllSides gain (share .6, link .5, mid .55: AllSides .932/.631, UCI .916/.629): the
# links use words alone. With the event rule below, mid .42 keeps AllSides at P >= .93 (the
# event-level target): .931/.628 .934/.626, UCI .903/.681 .904/.683 (mid .4: .929/.630); with
# DAY_PENALTY on links as well: AllSides .934/.622 .936/.622, UCI head unchanged. These
# figures embed 300 characters of summary; with text.MEANING_LEAD_CHARS (150): AllSides
# .941/.620 .940/.620, UCI head unchanged (no summaries).
W_MEANING = 0.2
MEANING_MID = 0.42
# Reports of one event come out within hours of each other; the same people in the news a day
# or more later is another event (the Putin-Erdogan phone call three days before their Ankara
# talks). Past EVENT_DAY the meaning can only count against a join. 24 h instead of no limit:
# AllSides .938/.627 .943/.626, UCI head .902/.687 .902/.692 (their replays spread each story
# over 48 h at random, so there the rule can only cost); 12 h: AllSides .942/.623.
EVENT_DAY = timedelta(hours=24)
_EVENT_DAY_MICROSECONDS = EVENT_DAY // timedelta(microseconds=1)
_MICROSECONDS_PER_DAY = 86_400_000_000
# Taken off a join score (and an average link) per day between an entry and a story's newest
# report beyond EVENT_DAY, with or without the meaning signal: a week later the same words are
# next week's figures or the second vaccine approved, not this event. On join scores alone, .1
# and .2 leave the AllSides and UCI head figures unchanged (their replays span 48 h); on links
# too, AllSides R .473 -> .466 at P .931 -> .934.
DAY_PENALTY = 0.2
# The event rule: an entry within EVENT_HOURS of a story's newest report, naming at least
# EVENT_MIN_ENTITIES people, organisations or places of which the story mentions all but
# EVENT_MAX_MISS (IDF share), and alike in meaning (centred cosine >= EVENT_MEANING), gets
# EVENT_BONUS on its margin: same actors, same place, hours apart and similar meaning make one
# event even told in few shared words (the agency reports of the Ankara talks in
# tests/test_match_events.py). The AllSides replay packs 167 reports an hour, mostly of the
# same US politicians, at random times, so there the rule mostly meets different events:
# bonus .15 (6 h, meaning .5, miss .5, 2 entities) -> P .869; .15 (3 h, .55, .4, 3) -> .919;
# .08 (2 h, .5, .4, 3) -> .929/.932 at mid .4. Real streams are timed: there it is what joins
# the differently worded reports of one press conference.
EVENT_HOURS = timedelta(hours=2)
EVENT_MIN_ENTITIES = 3
EVENT_MAX_MISS = 0.4
EVENT_MEANING = 0.5
EVENT_BONUS = 0.08


@dataclass(frozen=True, slots=True)
class MatchConfig:
    """Weights and thresholds of the combined score (see the constants for measurements)."""

    threshold: float = JOIN_THRESHOLD
    w_cosine: float = W_COSINE
    w_coverage: float = W_COVERAGE
    w_fuzzy: float = W_FUZZY
    w_owner: float = W_OWNER
    size_discount: float = SIZE_DISCOUNT
    min_threshold: float = MIN_THRESHOLD
    full_share: float = FULL_SHARE
    entity_penalty: float = ENTITY_PENALTY
    number_penalty: float = NUMBER_PENALTY
    link_threshold: float = LINK_THRESHOLD
    relative_link: float = RELATIVE_LINK
    relative_floor: float = RELATIVE_FLOOR
    w_meaning: float = W_MEANING
    meaning_mid: float = MEANING_MID
    event_bonus: float = EVENT_BONUS
    day_penalty: float = DAY_PENALTY


def proximity(when: datetime | None, newest: datetime | None) -> float:
    """The time-proximity factor exp(-gap / TIME_SCALE), floored at TIME_FLOOR."""
    if when is None or newest is None:
        return 1.0
    gap = abs((when - newest).total_seconds())
    return max(TIME_FLOOR, math.exp(-gap / _TIME_SCALE_SECONDS))


def days_apart(when: datetime | None, newest: datetime | None) -> float:
    """Days between an entry and a story's newest report beyond the first EVENT_DAY (0 within
    it): the same people in the news days later is another event."""
    if when is None or newest is None:
        return 0.0
    beyond = abs(_microseconds(when - newest)) - _EVENT_DAY_MICROSECONDS
    # The same figure as (abs(gap) - EVENT_DAY) / timedelta(days=1), which divides the two
    # durations' microseconds too, without building three timedeltas per candidate.
    return max(0.0, beyond / _MICROSECONDS_PER_DAY)


def _microseconds(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def threshold_for(size: int, config: MatchConfig) -> float:
    """The join threshold for a story of ``size`` members: lower for established stories."""
    return max(
        config.min_threshold, config.threshold - config.size_discount * math.log(float(size))
    )


@dataclass(frozen=True, slots=True)
class Signals:
    """Per-signal scores of one (entry, story) comparison and the shared terms."""

    cosine: float
    coverage: float
    fuzzy: float
    owner: float
    entity_miss: float
    number_conflict: bool
    time_factor: float
    shared: tuple[str, ...]
    score: float

    def evidence(self) -> dict[str, object]:
        """A JSON-serialisable explanation."""
        return {
            "cosine": round(self.cosine, 4),
            "coverage": round(self.coverage, 4),
            "fuzzy": round(self.fuzzy, 4),
            "owner": round(self.owner, 4),
            "entity_miss": round(self.entity_miss, 4),
            "number_conflict": self.number_conflict,
            "time_factor": round(self.time_factor, 4),
            "shared_terms": list(self.shared),
            "score": round(self.score, 4),
        }


def entry_weights(feats: Features, idf: Idf) -> dict[str, float]:
    """IDF weights of an entry's terms (title, then summary-only)."""
    weights = {t: idf(t) for t in feats.title_terms}
    for term in feats.summary_terms:
        weights[term] = SUMMARY_WEIGHT * idf(term)
    return weights


@dataclass(frozen=True, slots=True)
class Query:
    """An entry prepared once for comparison with several stories (see :func:`prepare`)."""

    weights: dict[str, float]
    idfs: dict[str, float]
    total: float
    norm: float
    entity_idfs: dict[str, float]
    entity_total: float


def weights_of(feats: Features, idfs: Mapping[str, float]) -> dict[str, float]:
    """:func:`entry_weights` from the IDF of each of ``feats.all_terms``."""
    weights = {t: idfs[t] for t in feats.title_terms}
    for term in feats.summary_terms:
        weights[term] = SUMMARY_WEIGHT * idfs[term]
    return weights


def prepare(feats: Features, idf: Idf, idfs: dict[str, float] | None = None) -> Query:
    """The entry's term weights and the sums every comparison with a story reuses.

    ``idfs``: the IDF of each of ``feats.all_terms`` when the caller has it.
    """
    if idfs is None:
        idfs = {t: idf(t) for t in feats.all_terms}
    weights = weights_of(feats, idfs)
    entity_idfs = {e: idf(e) for e in feats.entities}
    return Query(
        weights=weights,
        idfs=idfs,
        total=sum(weights.values()),
        norm=math.sqrt(sum(w * w for w in weights.values())),
        entity_idfs=entity_idfs,
        entity_total=sum(entity_idfs.values()),
    )


def centroid_weight(count: int, idf_value: float) -> float:
    """Sublinear member count times IDF: a term in 50 members is not 50 times as telling."""
    return (1.0 + math.log(float(count))) * idf_value


def story_norm(story: StoryState, idf: Idf) -> float:
    """Euclidean norm of the story centroid."""
    counts = story.counts
    return math.sqrt(
        sum(((1.0 + math.log(float(counts[s]))) * idf(t)) ** 2 for t, s in story.slots.items())
    )


def score(
    feats: Features,
    query: Query,
    story: StoryState,
    norm: float,
    df: Callable[[str], int],
    config: MatchConfig,
) -> Signals:
    """Compare an entry (features + its :func:`prepare`) with a story; all signals and the score."""
    signals = score_above(feats, query, story, norm, df, config, -math.inf)
    assert signals is not None  # nothing is at or below -inf
    return signals


def score_above(
    feats: Features,
    query: Query,
    story: StoryState,
    norm: float,
    df: Callable[[str], int],
    config: MatchConfig,
    floor: float,
    missed: float | None = None,
) -> Signals | None:
    """:func:`score`, or None when the score cannot exceed ``floor`` whatever the fuzzy match.
    ``missed``: :func:`entity_miss` of the pair when the caller has it already.

    Only the terms the entry shares with the story are visited: the others add nothing to the
    dot product, coverage or ownership, and the entry's own sums come with ``query``. The
    fuzzy title match, the costliest signal, is computed last and only when a perfect one
    could lift the score above ``floor`` (the caller's best so far).
    """
    slots = story.slots
    # None: a one-member story keeps no counts; its member holds each of its terms once.
    counts = story.kept_counts
    weights = query.weights
    idfs = query.idfs
    full = config.full_share * story.size
    dot = 0.0
    covered = 0.0
    owned = 0.0
    # The shared terms, in the entry's order: a set intersection of the two key views cost
    # more than the sums it fed, and its order (string hashes) varied from run to run.
    common: list[str] = []
    for term, w in weights.items():
        slot = slots.get(term)
        if slot is None:
            continue
        common.append(term)
        count = 1 if counts is None else counts[slot]
        dot += w * (1.0 + math.log(float(count))) * idfs[term]
        covered += w * min(1.0, count / full)
        owned += w * min(1.0, count / max(1, df(term)))
    total = query.total
    cosine = dot / (query.norm * norm) if dot and norm else 0.0
    coverage = covered / total if total else 0.0
    owner = owned / total if total else 0.0
    if missed is None:
        missed = entity_miss(query, story)
    conflict = _number_conflict(feats, story)
    time_factor = proximity(feats.published, story.newest)
    partial = config.w_cosine * cosine + config.w_coverage * coverage + config.w_owner * owner
    penalty = config.entity_penalty * missed + (config.number_penalty if conflict else 0.0)
    penalty += days_apart(feats.published, story.newest) * config.day_penalty
    if (partial + config.w_fuzzy) * time_factor - penalty <= floor:
        return None
    texts = [rep.fuzzy_text for rep in story.representatives()]
    best = process.extractOne(feats.fuzzy_text, texts, scorer=fuzz.ratio)
    fuzzy = best[1] / 100.0 if best else 0.0
    combined = (partial + config.w_fuzzy * fuzzy) * time_factor - penalty
    ranked = sorted([(weights[t], t) for t in common], reverse=True)
    return Signals(
        cosine=cosine,
        coverage=coverage,
        fuzzy=fuzzy,
        owner=owner,
        entity_miss=missed,
        number_conflict=conflict,
        time_factor=time_factor,
        shared=tuple(t for _, t in ranked[:SHARED_SHOWN]),
        score=combined,
    )


def entity_miss(query: Query, story: StoryState) -> float:
    """IDF share of the entry's named entities that no member of the story mentions."""
    if not query.entity_idfs:
        return 0.0
    missed = 0.0
    slots = story.slots
    for ent, w in query.entity_idfs.items():
        if ent not in slots and not story.names(ent):
            missed += w
    return missed / query.entity_total


def _number_conflict(feats: Features, story: StoryState) -> bool:
    """True when the entry and the story state figures of one kind and none agree (92% vs 72%)."""
    return bool(feats.numbers) and story_figures_conflict(feats.numbers, story)


def meaning_bonus(
    meaning: float, gap: timedelta | None, missed: float, entities: int, config: MatchConfig
) -> tuple[float, bool]:
    """What the meaning signal adds to a join margin, and whether the event rule held.

    ``meaning``: the entry's mean centred cosine to the story's members; ``gap``: time between
    the entry and the story's newest report (None: unknown); ``missed``: :func:`entity_miss`;
    ``entities``: how many named entities the entry has. See the matcher's docstring.
    """
    bonus = config.w_meaning * (meaning - config.meaning_mid)
    if gap is not None and gap > EVENT_DAY:
        # Same words a day or more apart: later news of the same people, not this event.
        return min(bonus, 0.0), False
    event = (
        gap is not None
        and gap <= EVENT_HOURS
        and entities >= EVENT_MIN_ENTITIES
        and missed <= EVENT_MAX_MISS
        and meaning >= EVENT_MEANING
    )
    return bonus + (config.event_bonus if event else 0.0), event
