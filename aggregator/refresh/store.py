"""Match and store one feed's refresh: the strategy for the database at hand, chosen once.

Matching and storing run one feed at a time, in submission order, so the index never holds an
assignment the database lacks. How they are ordered depends on who else writes the database,
and ``choose_store`` decides it once, where the runtime is built:

- ``PipelinedStore``: one process writes a SQLite file, so the index matches the next feed
  while this one is stored.
- ``LockedStore``: match and store together under the database-wide matching lock. With
  PostgreSQL (``shared``), first catch the index up with what other workers stored and
  merged (``StoryIndex.catch_up``), so two workers never open two stories for one event; an
  in-memory SQLite database has one connection, which cannot serve matching and storing at
  once.

Either way a match made against an index that was rebuilt since (``StoryIndex.generation``)
is made again before storing.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime

from aggregator.exceptions import StorageError
from aggregator.match.text import Features, features
from aggregator.refresh.decide import EntryChanges, decide_changes
from aggregator.refresh.index import IndexDied, Matched, StoryIndex
from aggregator.refresh.parse_pool import Parsed
from aggregator.refresh.writer import StorageWriter
from aggregator.storage import shared_between_processes
from aggregator.storage.base import Storage
from aggregator.types import Entry, FeedRefresh, FeedState, FeedStateUpdate

__all__ = ["LockedStore", "MatchAndStore", "PipelinedStore", "choose_store"]

log = logging.getLogger("aggregator.refresh")

Clock = Callable[[], datetime]  # what the updater passes: aware UTC now


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A feed's refresh, matched and ready to store, and the index generation it was matched
    in; with what it was made from, to match it again if that generation is gone."""

    feed: FeedState
    parsed: Parsed
    state: FeedStateUpdate
    changes: EntryChanges
    refresh: FeedRefresh | None  # None: not matched (the index process died meanwhile)
    generation: int


def _prepared(
    feed: FeedState,
    parsed: Parsed,
    state: FeedStateUpdate,
    changes: EntryChanges,
    matched: Matched,
) -> _Prepared:
    refresh = FeedRefresh(
        feed.url,
        state,
        tuple(zip(changes.new, matched.assignments, strict=True)),
        changes.changed,
        matched.merges,
    )
    return _Prepared(feed, parsed, state, changes, refresh, matched.generation)


def _features(entries: Sequence[Entry]) -> list[Features]:
    return [features(entry) for entry in entries]


class MatchAndStore(ABC):
    """What both strategies share: deciding what changed, matching it, and storing it.

    Calling the strategy matches and stores one feed's entries, off the event loop, and
    answers what changed.
    """

    def __init__(
        self, storage: Storage, index: StoryIndex, writer: StorageWriter, clock: Clock
    ) -> None:
        self.storage = storage
        self.index = index
        self.writer = writer
        self.clock = clock

    @abstractmethod
    async def __call__(
        self, feed: FeedState, parsed: Parsed, state: FeedStateUpdate
    ) -> EntryChanges: ...

    def _changes(
        self, feed: FeedState, parsed: Parsed
    ) -> tuple[EntryChanges, list[Features], list[Features]]:
        """Which entries are new or changed, and the features of each: from the parse worker
        when it extracted them, else extracted here for those entries only (the entries
        already stored, most of a changed document, are never matched)."""
        known = self.storage.entry_hashes(feed.url, [e.entry_id for e in parsed.entries])
        changes = decide_changes(parsed.entries, known, self._horizon(feed))
        if parsed.features is None:
            return changes, _features(changes.new), _features(changes.changed)
        feats = {f.key: f for f in parsed.features}
        return changes, [feats[e.key] for e in changes.new], [feats[e.key] for e in changes.changed]

    def _horizon(self, feed: FeedState) -> datetime | None:
        """The feed's retention horizon, read after the stored hashes: the one claimed with
        the feed may predate a prune that removed some of them since, which would come back
        as new. Pruning moves the horizon in the transaction that removes the entries, so
        entries missing from the hashes are always at or before the horizon read after."""
        current = self.storage.get_feed(feed.url)
        return current.retained_since if current is not None else feed.retained_since

    def _match(self, feed: FeedState, parsed: Parsed, state: FeedStateUpdate) -> _Prepared:
        """Decide which entries are new or changed and match them (in a worker thread)."""
        changes, new, changed = self._changes(feed, parsed)
        return _prepared(feed, parsed, state, changes, self.index.match(new, changed))

    def _store(self, prepared: _Prepared) -> _Prepared:
        """Store a matched refresh (in a worker thread, one at a time, in matching order)."""
        index = self.index
        if prepared.refresh is None or prepared.generation != index.generation:
            # The index was rebuilt after this match (storage refused an earlier feed, a split
            # was recorded, the index process restarted): what it matched against is gone.
            prepared = self._match(prepared.feed, prepared.parsed, prepared.state)
        refresh = prepared.refresh
        assert refresh is not None  # _match always matches
        try:
            self.storage.store_refresh(refresh)
        except StorageError:
            if not refresh.state_only:
                # The index holds assignments the database refused; rebuild it from what
                # was really committed so the two cannot drift apart.
                log.warning("storage refused %s; rebuilding the match index", refresh.feed_url)
                index.rebuild(self.clock())
            raise
        if prepared.generation != index.generation:
            # Rebuilt while this was being stored: the new index may have been read before
            # the commit. Take in what it missed.
            index.catch_up()
        return prepared


class PipelinedStore(MatchAndStore):
    """One writer of a SQLite file: the index matches the next feed while this one is stored.

    Submitting to the index runs in a thread, one call at a time; storing runs as an exclusive
    write once the answer is in, in the order the calls were submitted. The next call's
    submission does not wait for this one's answer or store, so the index always has the next
    feed queued. Shielded like every write (``StorageWriter.shielded``).
    """

    def __init__(
        self, storage: Storage, index: StoryIndex, writer: StorageWriter, clock: Clock
    ) -> None:
        super().__init__(storage, index, writer, clock)
        self._submitting = asyncio.Lock()
        self._last_stored: asyncio.Future[None] | None = None  # set once that call is done

    async def __call__(
        self, feed: FeedState, parsed: Parsed, state: FeedStateUpdate
    ) -> EntryChanges:
        loop = asyncio.get_running_loop()

        async def staged() -> EntryChanges:
            async with self._submitting:
                answer = await asyncio.to_thread(self._submit, feed, parsed, state)
                previous, mine = self._last_stored, loop.create_future()
                self._last_stored = mine
            try:
                prepared = await asyncio.wrap_future(answer)
                if previous is not None:
                    await previous  # set whatever happened to the previous call
                return (await self.writer.exclusive(self._store, prepared)).changes
            finally:
                mine.set_result(None)

        return await self.writer.shielded(staged())

    def _submit(self, feed: FeedState, parsed: Parsed, state: FeedStateUpdate) -> Future[_Prepared]:
        """:meth:`_match`, answered later: the index may still be matching earlier feeds."""
        changes, new, changed = self._changes(feed, parsed)
        answer = self.index.submit_match(new, changed)
        result: Future[_Prepared] = Future()

        def done(answer: Future[Matched]) -> None:
            exc = answer.exception()
            if isinstance(exc, IndexDied):
                # Not matched: ``_store`` matches it again, starting a fresh index.
                result.set_result(_Prepared(feed, parsed, state, changes, None, -1))
            elif exc is not None:
                result.set_exception(exc)
            else:
                matched = answer.result()
                result.set_result(_prepared(feed, parsed, state, changes, matched))

        answer.add_done_callback(done)
        return result


class LockedStore(MatchAndStore):
    """Match and store together, under the database-wide matching lock.

    ``shared``: other workers write the same database (PostgreSQL), so first catch up with
    what they stored and merged, and afterwards count this worker's own writes as seen.
    """

    def __init__(
        self,
        storage: Storage,
        index: StoryIndex,
        writer: StorageWriter,
        clock: Clock,
        *,
        shared: bool,
    ) -> None:
        super().__init__(storage, index, writer, clock)
        self.shared = shared

    async def __call__(
        self, feed: FeedState, parsed: Parsed, state: FeedStateUpdate
    ) -> EntryChanges:
        return await self.writer.exclusive(self._locked, feed, parsed, state)

    def _locked(self, feed: FeedState, parsed: Parsed, state: FeedStateUpdate) -> EntryChanges:
        with self.storage.matching_lock():
            if self.shared:
                self.index.catch_up()
                self.index.apply_corrections(self.clock())
            changes = self._store(self._match(feed, parsed, state)).changes
            if self.shared:
                # What was just stored is in the index already. Read through the lock's own
                # transaction, the newest sequence number is that of this worker's last write.
                self.index.mark_caught_up(self.storage.newest_seq())
            return changes


def choose_store(
    storage: Storage, index: StoryIndex, writer: StorageWriter, clock: Clock
) -> MatchAndStore:
    """The strategy for ``storage``: see the module docstring."""
    if storage.dialect != "sqlite":
        return LockedStore(storage, index, writer, clock, shared=True)
    if shared_between_processes(storage.url):
        return PipelinedStore(storage, index, writer, clock)
    # In memory: the one connection cannot match and store at once.
    return LockedStore(storage, index, writer, clock, shared=False)
