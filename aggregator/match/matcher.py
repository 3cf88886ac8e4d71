"""The Matcher: holds the in-memory index and assigns each new entry to a story."""

from __future__ import annotations

import heapq
import math
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from aggregator.match.cache import StoryCache
from aggregator.match.index import MAX_CANDIDATES, TermIndex
from aggregator.match.link import (
    LINK_CANDIDATES,
    RELATIVE_MIN_SIZE,
    StoryMerge,
    anchors_held,
    anchors_present,
    check_due,
    query_terms,
    story_figures_conflict,
    story_link,
)
from aggregator.match.score import (
    MatchConfig,
    Query,
    Signals,
    days_apart,
    entity_miss,
    meaning_bonus,
    prepare,
    proximity,
    score,
    score_above,
    story_norm,
    threshold_for,
)
from aggregator.match.semantic import Embedder, SemanticState, Vector
from aggregator.match.story import StoryState, unit_mass
from aggregator.match.text import Features, features
from aggregator.types import Assignment, Entry, new_story_id

EntryKey = tuple[str, str]

# Story aliases (merged-away id -> the id it lives on as) are pruned once they number this
# many and twice as many as the last pruning kept: an alias whose story has left the index
# names nothing it can reach. Unpruned, every merge of a long-running service (about 1 per 100
# entries on UCI head, 1 per 300 on AllSides) and every merge stored before a restart (replayed
# at load) kept one, about 200 bytes, for good.
ALIAS_PRUNE_MIN = 1024
# The expiry heap holds a (newest, story) pair for every time a story's newest time moved;
# only the latest of each is live. Once it holds more than this many pairs per story (and at
# least HEAP_COMPACT_MIN), the stale ones are dropped: on feedgen stories of four members three
# pairs in four were stale, about 45 bytes an entry kept for nothing.
HEAP_PAIRS_PER_STORY = 2
# Below this many pairs the heap is left alone: a pass over it would cost more than it frees.
HEAP_COMPACT_MIN = 1024


@dataclass(frozen=True, slots=True)
class Decision:
    """Outcome of :func:`decide`: the chosen story (None = start a new one) and why."""

    story_id: str | None
    score: float
    evidence: dict[str, object]


class Matcher:
    """Assigns entries to stories within a sliding window of published times."""

    def __init__(
        self,
        window: timedelta = timedelta(hours=48),
        config: MatchConfig | None = None,
        embedder: Embedder | None = None,
        max_entries: int | None = None,
    ) -> None:
        """``embedder`` (optional, see ``embedding.py``) adds the meaning signal.
        ``max_entries``: the most entries the index holds; past it, the stories updated longest
        ago leave the index early, as if their window had ended (None: no bound)."""
        if max_entries is not None and max_entries < 1:
            raise ValueError(f"max_entries must be positive, not {max_entries!r}")
        self.window = window
        self.max_entries = max_entries
        self.semantic = SemanticState(embedder) if embedder is not None else None
        self.config = MatchConfig() if config is None else config
        self.index = TermIndex()
        self.stories: dict[str, StoryState] = {}
        self._entry_story: dict[EntryKey, str] = {}
        self._urls: dict[int, str] = {}
        self._wires: dict[int, str] = {}
        self._forbidden: set[tuple[EntryKey, str]] = set()
        self._alias: dict[str, str] = {}
        self._aliases_kept = 0
        self._cache = StoryCache(self.index)
        # (newest published, story id) of every story, stale pairs included: expire pops
        # the oldest instead of scanning every story in the window.
        self._by_newest: list[tuple[datetime, str]] = []
        self._born = 0
        self._last_query: tuple[Features, Query] | None = None
        # decide()'s candidates for that entry, best first.
        self._last_found: tuple[Features, list[str]] | None = None
        self._merges: list[StoryMerge] = []
        # Vectors embedded ahead by prime(), taken by the entry's next assign or replace.
        self._primed: dict[EntryKey, Vector] = {}

    # -- public API -------------------------------------------------------------------------

    def add_known(self, entry: Entry, story_id: str) -> None:
        """Put a stored entry back into the index under its stored story (start-up rebuild)."""
        self.add_known_many([(entry, story_id)])

    def add_known_many(self, known: Sequence[tuple[Entry, str]]) -> None:
        """:meth:`add_known` for a page of stored entries, their meaning embedded in one call."""
        batch = [features(entry) for entry, _ in known]
        self.prime(batch)
        for feats, (_, story_id) in zip(batch, known, strict=True):
            vector = self._vector(feats)
            self._add(shared_terms(feats, self.index), self._resolve(story_id), vector=vector)
            self._keep_within_cap()

    def prime(self, batch: Sequence[Features]) -> None:
        """Embed the meaning of entries about to be assigned in one call (a feed's new entries):
        per text, one call per entry costs several times as much as one call per batch."""
        if self.semantic is None or not batch:
            return
        vectors = self.semantic.vectors([f.meaning or f.title for f in batch])
        for feats, vector in zip(batch, vectors, strict=True):
            self._primed[feats.key] = vector

    def assign(self, entry: Entry, feats: Features | None = None) -> Assignment:
        """Decide which story ``entry`` belongs to, add it there and return the decision.

        ``feats``: ``features(entry)`` when the caller has it already (computed in a parse
        worker); the index keeps one copy of each of its terms (``shared_terms``).
        """
        return self.assign_features(features(entry) if feats is None else feats)

    def assign_features(self, feats: Features) -> Assignment:
        """:meth:`assign` given the entry's features (all the matcher looks at)."""
        vector = self._vector(feats)
        assignment = self._assign(shared_terms(feats, self.index), vector)
        self._keep_within_cap()
        return assignment

    def _assign(self, feats: Features, vector: Vector | None) -> Assignment:
        decision = self.decide(feats, vector)
        if decision.story_id is None:
            decision = self._link_entry(feats, decision)
        if decision.story_id is None:
            story_id = new_story_id()
            while story_id in self.stories:
                story_id = new_story_id()
            self._add(feats, story_id, vector=vector)
            # A new story was just compared with its neighbours as an entry (_link_entry).
            self.stories[story_id].next_check = 2
            return Assignment(story_id, True, decision.score, decision.evidence)
        self._add(feats, decision.story_id, vector=vector)
        story = self.stories[decision.story_id]
        if check_due(story):
            self._agglomerate(story)
        return Assignment(decision.story_id, False, decision.score, decision.evidence)

    def take_merges(self) -> list[StoryMerge]:
        """Story merges made since the last call, oldest first; the caller persists them.

        :meth:`assign` may fold a story into an older one once the two have grown alike.
        Apply each with ``storage.record_merge(m.into, m.other, now)`` in the order given,
        after storing the assignments returned before the call.
        """
        merges, self._merges = self._merges, []
        return merges

    def update_entry(self, entry: Entry) -> None:
        """Replace the features of an entry the outlet edited; it stays in its story."""
        self.replace(features(entry))

    def replace(self, feats: Features) -> None:
        """:meth:`update_entry` given the edited entry's features."""
        vector = self._vector(feats)  # taken even when unused: prime() may have made it
        story_id = self._entry_story.get(feats.key)
        if story_id is None:
            return
        self._remove(feats.key, story_id)
        self._add(shared_terms(feats, self.index), story_id, vector=vector)

    def expire(self, now: datetime) -> None:
        """Drop every story whose newest entry was published before ``now - window``."""
        horizon = now - self.window
        self._drop_oldest_while(lambda newest: newest < horizon)
        self._prune_aliases()

    def _prune_aliases(self) -> None:
        """Forget the aliases of stories no longer in the index (see ``ALIAS_PRUNE_MIN``); each
        kept alias names the story it resolves to, so chains do not grow."""
        if len(self._alias) <= max(ALIAS_PRUNE_MIN, 2 * self._aliases_kept):
            return
        stories = self.stories
        kept = {}
        for other in self._alias:
            into = self._resolve(other)
            if into in stories:
                kept[other] = into
        self._alias = kept
        self._aliases_kept = len(kept)

    @property
    def entries(self) -> int:
        """Number of entries in the index."""
        return len(self._entry_story)

    def _keep_within_cap(self) -> None:
        """Drop the stories updated longest ago while the index holds more than
        ``max_entries`` entries: memory stays bounded however many feeds post in the window."""
        cap = self.max_entries
        if cap is not None and len(self._entry_story) > cap:
            self._drop_oldest_while(lambda _: len(self._entry_story) > cap)

    def _drop_oldest_while(self, more: Callable[[datetime], bool]) -> None:
        """Drop stories, the one updated longest ago first, while ``more(its newest time)``."""
        queue = self._by_newest
        while queue and more(queue[0][0]):
            newest, story_id = heapq.heappop(queue)
            story = self.stories.get(story_id)
            # A pair is stale once its story's newest time moved: the move pushed a pair of its
            # own, which this loop reaches in its turn.
            if story is not None and story.newest == newest:
                self._drop_story(story_id)

    def forbid(self, entry_key: EntryKey, story_id: str) -> None:
        """Never put ``entry_key`` into ``story_id``; take it out if it is there now.

        The entry then belongs to no story in the index: the caller re-places it with
        :meth:`assign`, which will not choose the forbidden story.
        """
        story_id = self._resolve(story_id)
        self._forbidden.add((entry_key, story_id))
        if self._entry_story.get(entry_key) == story_id:
            self._remove(entry_key, story_id)

    def merge(self, into: str, other: str) -> None:
        """Fold story ``other`` into ``into``; later references to ``other`` mean ``into``."""
        into, other = self._resolve(into), self._resolve(other)
        if into == other:
            return
        self._alias[other] = into
        for key, sid in [p for p in self._forbidden if p[1] == other]:
            self._forbidden.discard((key, sid))
            self._forbidden.add((key, into))
        state = self.stories.get(other)
        if state is None:
            return
        for key in list(state.members):
            feats = state.members[key]
            norm = state.norm_of(key)
            vector = self.semantic.member(state.row_of(key)) if self.semantic is not None else None
            self._remove(key, other, forget=False)
            self._add(feats, into, norm=norm, observe=False, vector=vector)

    def story_of(self, entry_key: EntryKey) -> str | None:
        """The story an indexed entry currently belongs to."""
        return self._entry_story.get(entry_key)

    def learn_terms(self, entries: Iterable[Entry]) -> None:
        """Count the terms of ``entries`` into the IDF statistics without assigning them."""
        for entry in entries:
            self.index.observe(features(entry).all_terms)

    def pair_score(self, a: Entry, b: Entry) -> float:
        """Combined score of ``a`` against a one-entry story made of ``b`` (symmetrised)."""
        fa, fb = features(a), features(b)
        return min(self._pair(fa, fb).score, self._pair(fb, fa).score)

    # -- the decision -----------------------------------------------------------------------

    def decide(self, feats: Features, vector: Vector | None = None) -> Decision:
        """Choose a story for ``feats`` among the indexed ones, or None for a new story.

        ``vector``: the entry's meaning vector when the caller made it already."""
        for rule, table, value in (
            ("same_url", self._urls, feats.url_key),
            ("same_wire_text", self._wires, feats.wire_key),
        ):
            if value is not None and value in table and self._allowed(feats, table[value]):
                return Decision(table[value], 1.0, {"rule": rule, "score": 1.0})
        query = prepare(feats, self.index.idf, self.index.idfs(feats.all_terms))
        if vector is None:
            vector = self._vector(feats)
        prepared = None
        if vector is not None and self.semantic is not None:
            prepared = self.semantic.prepare(vector)
        best: tuple[float, Signals, str, dict[str, object]] | None = None
        found = self.index.candidates(query.weights, MAX_CANDIDATES)
        self._last_found = (feats, found)
        for story_id in found:
            story = self.stories[story_id]
            if not self._allowed(feats, story_id):
                continue
            if story.newest is not None and feats.published - story.newest > self.window:
                continue
            # margin = score - threshold + bonus; a story is best only with a higher margin.
            threshold = threshold_for(story.size, self.config)
            bonus = 0.0
            meaning: dict[str, object] = {}
            missed = entity_miss(query, story)
            if prepared is not None and self.semantic is not None:
                sem = self.semantic.entry_link(prepared, story_id, story.size)
                gap = None if story.newest is None else abs(feats.published - story.newest)
                bonus, event = meaning_bonus(sem, gap, missed, len(feats.entities), self.config)
                meaning = {"meaning": round(sem, 4), "same_event": event}
            floor = -math.inf if best is None else best[0] + threshold - bonus
            norm = self._cache.norm(story)
            signals = score_above(
                feats, query, story, norm, self.index.df_of, self.config, floor, missed
            )
            if signals is None:
                continue
            margin = signals.score - threshold + bonus
            if best is None or margin > best[0]:
                best = (margin, signals, story_id, meaning)
        self._last_query = (feats, query)
        if best is None:
            return Decision(None, 0.0, {"rule": "no_candidate", "score": 0.0})
        margin, signals, story_id, meaning = best
        evidence = {"rule": "score", **signals.evidence(), **meaning, "candidate": story_id}
        if margin >= 0:
            return Decision(story_id, signals.score, evidence)
        return Decision(None, signals.score, {**evidence, "rule": "below_threshold"})

    # -- internals --------------------------------------------------------------------------

    def _query(self, feats: Features) -> Query:
        """The entry's :func:`prepare`, reused from :meth:`decide` for the same entry."""
        if self._last_query is None or self._last_query[0] is not feats:
            idfs = self.index.idfs(feats.all_terms)
            self._last_query = (feats, prepare(feats, self.index.idf, idfs))
        return self._last_query[1]

    def _link_entry(self, feats: Features, decision: Decision) -> Decision:
        """Join the story whose members the entry resembles on average, if close enough."""
        idf = self.index.idf
        query = self._query(feats)
        mass = unit_mass(feats, query.norm)
        scored: list[tuple[float, list[str], str]] = []
        last = self._last_found
        if last is not None and last[0] is feats and LINK_CANDIDATES <= MAX_CANDIDATES:
            # Nothing changed since decide(): its ranking's head is this search's answer.
            found = last[1][:LINK_CANDIDATES]
        else:
            found = self.index.candidates(query.weights, LINK_CANDIDATES)
        for story_id in found:
            story = self.stories[story_id]
            if not self._allowed(feats, story_id) or self._too_far(feats.published, story):
                continue
            if story_figures_conflict(feats.numbers, story):
                continue
            link, top = story_link(mass, 1, story, idf)
            link *= proximity(feats.published, story.newest)
            link -= days_apart(feats.published, story.newest) * self.config.day_penalty
            if link >= self.config.link_threshold:
                scored.append((link, top, story_id))
        if not scored:
            return decision
        # The closest story whose telling terms agree with the entry's (see anchors_agree).
        scored.sort(key=lambda item: item[0], reverse=True)
        ranked = query_terms(mass, idf)
        best = next((s for s in scored if self._anchored(ranked, mass, self.stories[s[2]])), None)
        if best is None:
            return decision
        link, top, story_id = best
        evidence = {**decision.evidence, "rule": "average_link", "link": round(link, 4)}
        return Decision(story_id, link, {**evidence, "link_terms": top})

    def _agglomerate(self, story: StoryState) -> None:
        """Fold ``story`` and its most similar neighbour together when they are alike enough."""
        idf = self.index.idf
        scored: list[tuple[float, list[str], StoryState]] = []
        mass = story.mass_dict()
        ranked = self._cache.top_terms(story, mass)
        query = {t: len(ranked) - i for i, t in enumerate(ranked)}
        for other_id in self.index.candidates(query, LINK_CANDIDATES + 1):
            other = self.stories[other_id]
            if other is story or not self._may_merge(story, other):
                continue
            link, top = story_link(mass, story.size, other, idf)
            link *= proximity(story.newest, other.newest)
            link -= days_apart(story.newest, other.newest) * self.config.day_penalty
            if link >= self.config.link_threshold or self._alike(story, other, link):
                scored.append((link, top, other))
        scored.sort(key=lambda item: item[0], reverse=True)
        best = next((s for s in scored if self._anchored(ranked, mass, s[2])), None)
        if best is None:
            return
        link, top, other = best
        older, younger = (story, other) if story.born < other.born else (other, story)
        evidence = {"rule": "average_link", "link": round(link, 4), "link_terms": top}
        evidence["sizes"] = [older.size, younger.size]
        self._merges.append(StoryMerge(older.story_id, younger.story_id, link, evidence))
        self.merge(older.story_id, younger.story_id)

    def _anchored(self, ranked: list[str], mass: dict[str, float], story: StoryState) -> bool:
        """:func:`~aggregator.match.link.anchors_agree` with each side's ranked terms."""
        return anchors_held(ranked, story) and anchors_present(self._cache.top_terms(story), mass)

    def _alike(self, a: StoryState, b: StoryState, link: float) -> bool:
        """Two established stories about as close to each other as their own members are."""
        config = self.config
        if min(a.size, b.size) < RELATIVE_MIN_SIZE or link < config.relative_floor:
            return False
        return link >= config.relative_link * min(self._cache.cohesion(a), self._cache.cohesion(b))

    def _vector(self, feats: Features) -> Vector | None:
        """The entry's meaning vector when the signal is on (before ``shared_terms`` drops the
        text it reads)."""
        if self.semantic is None:
            return None
        primed = self._primed.pop(feats.key, None)
        return primed if primed is not None else self.semantic.vector(feats.meaning or feats.title)

    def _may_merge(self, a: StoryState, b: StoryState) -> bool:
        if a.newest is None or b.newest is None:
            return False
        if abs(a.newest - b.newest) > self.window:
            return False
        mine = a.figures()
        if mine is not None and story_figures_conflict(mine[0], b):
            return False
        if not self._forbidden:
            return True
        return not any((key, b.story_id) in self._forbidden for key in a.members) and not any(
            (key, a.story_id) in self._forbidden for key in b.members
        )

    def _too_far(self, published: datetime, story: StoryState) -> bool:
        return story.newest is not None and published - story.newest > self.window

    def _allowed(self, feats: Features, story_id: str) -> bool:
        story = self.stories.get(story_id)
        if story is None or feats.key in story.members:
            return False
        return not self._forbidden or (feats.key, story_id) not in self._forbidden

    def _pair(self, fa: Features, fb: Features) -> Signals:
        story = StoryState("pair")
        story.add(fb)
        idf = self.index.idf
        norm = story_norm(story, idf)
        return score(fa, prepare(fa, idf), story, norm, self.index.df_of, self.config)

    def _resolve(self, story_id: str) -> str:
        while story_id in self._alias:
            story_id = self._alias[story_id]
        return story_id

    def _add(
        self,
        feats: Features,
        story_id: str,
        norm: float | None = None,
        observe: bool = True,
        vector: Vector | None = None,
    ) -> None:
        """Index ``feats`` under ``story_id``; ``norm`` (of its term weights when it joined
        first) and ``observe`` off when moving it; ``vector``: its meaning vector, if the signal
        is on."""
        story = self.stories.get(story_id)
        if story is None:
            self._born += 1
            story = self.stories[story_id] = StoryState(story_id, born=self._born)
        # Every map below holds the story's own copy of its id: an entry loaded from storage
        # brings a copy of its own (1,000 feedgen feeds: 37,500 more of 65 bytes), and the
        # postings find it by identity (index._find).
        story_id = story.story_id
        if norm is None:
            # The IDF has not moved since decide() prepared this entry: reuse its weights.
            norm = self._query(feats).norm
        row = -1
        if vector is not None and self.semantic is not None:
            row = self.semantic.add(story_id, vector, story.rows or ())
        self.index.link(story_id, story.add(feats, norm, row))
        if observe:
            self.index.observe(feats.all_terms)
        self._entry_story[feats.key] = story_id
        if feats.url_key is not None:
            self._urls[feats.url_key] = story_id
        if feats.wire_key is not None:
            self._wires[feats.wire_key] = story_id
        if story.newest == feats.published:
            self._push_newest(feats.published, story_id)

    def _drop_story(self, story_id: str) -> None:
        """Take a whole story out of the index (it expired or made room). What ``_remove``
        does member by member, at once: the story's own sums are not kept up to date on the
        way out, only the index's (about half the cost of removing its members one by one)."""
        story = self.stories.pop(story_id)
        self.index.unlink(story.story_id, story.slots)
        entry_story, urls, wires = self._entry_story, self._urls, self._wires
        forget = self.index.forget
        for key, feats in story.members.items():
            forget(feats.all_terms)
            if entry_story.get(key) == story_id:
                del entry_story[key]
            if feats.url_key is not None and urls.get(feats.url_key) == story_id:
                del urls[feats.url_key]
            if feats.wire_key is not None and wires.get(feats.wire_key) == story_id:
                del wires[feats.wire_key]
        if self.semantic is not None and story.rows is not None:
            for row in story.rows:
                self.semantic.remove(story_id, row)

    def _remove(self, key: EntryKey, story_id: str, forget: bool = True) -> None:
        """Take an entry out of its story; ``forget`` off when it moves to another story."""
        story = self.stories[story_id]
        feats = story.members[key]
        newest = story.newest
        row = story.row_of(key)
        self.index.unlink(story.story_id, story.remove(key))
        if forget:
            self.index.forget(feats.all_terms)
        if self._entry_story.get(key) == story_id:
            del self._entry_story[key]
        if self.semantic is not None:
            self.semantic.remove(story_id, row, story.rows or ())
        if (
            feats.url_key is not None
            and self._urls.get(feats.url_key) == story_id
            and not story.holds(url_key=feats.url_key)
        ):
            del self._urls[feats.url_key]
        if (
            feats.wire_key is not None
            and self._wires.get(feats.wire_key) == story_id
            and not story.holds(wire_key=feats.wire_key)
        ):
            del self._wires[feats.wire_key]
        if not story.members:
            del self.stories[story_id]
            return
        if story.newest is not None and story.newest != newest:
            self._push_newest(story.newest, story_id)

    def _push_newest(self, newest: datetime, story_id: str) -> None:
        """Queue ``story_id`` for expiry at ``newest``, dropping the stale pairs first when
        they have piled up (HEAP_PAIRS_PER_STORY). Which stories expire, and in which order,
        is the same: the live pairs are kept, and they order alone."""
        queue = self._by_newest
        if len(queue) > max(HEAP_COMPACT_MIN, HEAP_PAIRS_PER_STORY * len(self.stories)):
            stories = self.stories
            # In the queue's order, each once: the same heap in every run.
            live = dict.fromkeys(
                pair
                for pair in queue
                if (story := stories.get(pair[1])) is not None and story.newest == pair[0]
            )
            queue[:] = live
            heapq.heapify(queue)
        heapq.heappush(queue, (newest, story_id))


def shared_terms(feats: Features, index: TermIndex) -> Features:
    """``feats`` as the index keeps it: its terms the copies ``index`` holds
    (``TermIndex.shared``), its names and its feed's URL interned, without the texts only
    embedding reads (``title`` and ``meaning``: the vector is made before the entry is indexed;
    about 100 bytes an entry). Entries loaded from storage each carry their own copy of the
    feed's URL (one per row read), where a parse worker's share one per feed."""
    intern = sys.intern
    feed_url, entry_id = feats.key
    # Built directly: dataclasses.replace costs ~3x as much (it inspects the fields each call).
    return Features(
        key=(intern(feed_url), entry_id),
        title="",
        fuzzy_text=feats.fuzzy_text,
        terms=index.shared(feats.terms),
        title_count=feats.title_count,
        entities=tuple(map(intern, feats.entities)),
        numbers=feats.numbers,
        url_key=feats.url_key,
        wire_key=feats.wire_key,
        published=feats.published,
    )
