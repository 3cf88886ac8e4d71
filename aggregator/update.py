"""The update pipeline: one refresh per due feed, then publish.

::

    due feeds | fetch (parallel, bounded) | parse | normalise
              | decide new/changed (pure) | match (story_index) | store (one transaction per feed)
    after a cycle: recent stories | render Atom, RSS, JSON Feed | atomic write

A feed's failure is that feed's result: it is recorded in storage (status, error in words,
consecutive failures, backed-off next poll), logged, and never stops the other feeds.
A 304, or a 200 whose body is byte-identical to the last one, is neither parsed nor matched:
only the feed's poll time and next due time are written.

Politeness lives in the next due time (``schedule``): the interval adapted to the feed's
posting rate, jitter, exponential back-off after failures, and the server's own hints
(Retry-After, Cache-Control/Expires, RSS ``<ttl>``) as a floor. A 301/308 moves the feed
(later polls go to the new URL); a 410 marks it gone and it is no longer polled.

With SQLite, one process writes: the next feed is matched while this one is stored. Several
workers may share one PostgreSQL database: match-and-store then runs under the database-wide
matching lock, after catching the index up with what other workers stored
(``StoryIndex.catch_up``), so two workers never open two stories for one event.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from aggregator.decide import EntryChanges, decide_changes
from aggregator.exceptions import FetchError, ParseError, StorageError
from aggregator.fetch import Fetcher, HTTPStatusError, cache_floor
from aggregator.match.text import Features
from aggregator.normalise import TITLE_MAX_CHARS, plain_text, truncate
from aggregator.parallel import Parsed, ParsePool, parse_and_normalise
from aggregator.publish import FeedMeta, write_outputs
from aggregator.schedule import adaptive_interval, next_poll, server_floor
from aggregator.storage import shared_between_processes
from aggregator.storage.base import Storage
from aggregator.story_index import IndexDied, LocalStoryIndex, Matched, StoryIndex
from aggregator.types import (
    FeedRefresh,
    FeedState,
    FeedStateUpdate,
    FetchResult,
)
from aggregator.writer import STATE_BATCH_MAX, StorageWriter

log = logging.getLogger("aggregator.update")

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class RefreshResult:
    """The outcome of refreshing one feed, for logs, progress bars, metrics and tests."""

    feed_url: str
    name: str
    status: int | None
    new: int
    changed: int
    error: str | None
    seconds: float
    unchanged_body: bool = False

    def log_line(self) -> str:
        status = self.status if self.status is not None else "-"
        if self.error:
            return f"{self.name}: status={status} error={self.error!r} in {self.seconds:.2f}s"
        note = " (not modified)" if self.unchanged_body else ""
        return (
            f"{self.name}: status={status} new={self.new} updated={self.changed}"
            f" in {self.seconds:.2f}s{note}"
        )


@dataclass(frozen=True, slots=True)
class PollPolicy:
    """The bounds within which a feed's interval adapts to its posting rate."""

    min_interval: timedelta = timedelta(minutes=5)
    max_interval: timedelta = timedelta(hours=24)


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


def body_hash(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


class Updater:
    """Refreshes feeds into storage and keeps the match index in step with it.

    Fetching and parsing run concurrently. Matching and storing run one feed at a time, in
    submission order, off the event loop (``StorageWriter``): with the embedded SQLite
    database, the index matches the next feed while this one is stored (``pipelined``); with
    PostgreSQL, both happen under the database-wide matching lock. Either way the index and
    the database never disagree about which story an entry joined: a match made against an
    index that was rebuilt since (``StoryIndex.generation``) is made again before storing.
    """

    def __init__(
        self,
        storage: Storage,
        fetcher: Fetcher,
        *,
        match_window: timedelta,
        policy: PollPolicy | None = None,
        parse_pool: ParsePool | None = None,
        index: StoryIndex | None = None,
        clock: Clock = utcnow,
    ) -> None:
        """``index``: where matching runs (a ``StoryIndexProcess``); by default a
        ``LocalStoryIndex`` in this process, loaded from ``storage`` now."""
        self.storage = storage
        self.fetcher = fetcher
        self.parse_pool = parse_pool
        self.match_window = match_window
        self.policy = policy or PollPolicy()
        self.clock = clock
        self.index = index or LocalStoryIndex(storage, match_window, clock())
        self.writer = StorageWriter(storage)
        # One process writes an SQLite database, so the next feed may be matched while this
        # one is stored; not an in-memory one, whose single connection can't serve both.
        self._pipelined = storage.dialect == "sqlite" and shared_between_processes(storage.url)
        # Changed feeds between fetch and store (parsed documents waiting for the index): one
        # per fetch slot, so memory stays flat however many feeds are refreshed at once.
        self._processing = asyncio.Semaphore(fetcher.concurrency)

    async def expire(self, now: datetime) -> None:
        """Drop stories that left the match window."""
        await self.writer.exclusive(self.index.expire, now)

    async def reload_corrections(self) -> bool:
        """Apply corrections recorded since we looked (``aggregator split`` / ``merge`` run
        while the service runs, or merges made by other workers). True when any was new."""
        return await self.writer.exclusive(self.index.apply_corrections, self.clock())

    async def drain(self) -> None:
        """Write what is pending and wait for writes still running after their refreshes
        were cancelled."""
        await self.writer.drain()

    async def refresh(self, feed: FeedState) -> RefreshResult:
        """Fetch, parse, match and store one feed. Never raises for a feed's own failure."""
        started = time.monotonic()
        now = self.clock()
        try:
            result = await self.fetcher.fetch(
                feed.fetch_url, etag=feed.etag, last_modified=feed.last_modified
            )
        except FetchError as exc:
            return await self._record_error(feed, exc, now, started)

        if result.not_modified or (
            result.content is not None and body_hash(result.content) == feed.body_hash
        ):
            state = self._success_state(feed, result, now, None)
            await self.writer.store_state(FeedRefresh(feed.url, state))
            return RefreshResult(
                feed.url, feed.display_name, result.status, 0, 0, None, _since(started), True
            )

        async with self._processing:
            try:
                parsed = await self._parse(result, feed.url, now)
            except ParseError as exc:
                return await self._record_error(feed, exc, now, started, status=result.status)
            state = self._success_state(feed, result, now, parsed)
            changes = await self._match_and_store(feed, parsed, state)
        return RefreshResult(
            feed.url,
            feed.display_name,
            result.status,
            len(changes.new),
            len(changes.changed),
            None,
            _since(started),
        )

    async def _parse(self, result: FetchResult, feed_url: str, now: datetime) -> Parsed:
        """Parse and normalise in the process pool when there is one (feedparser is pure
        Python: in a thread it would hold the GIL and stall every other feed)."""
        args = (result.content or b"", result.headers, result.final_url, feed_url, now)
        if self.parse_pool is None:
            return await asyncio.to_thread(parse_and_normalise, *args)
        return await self.parse_pool.parse(*args)

    def _success_state(
        self, feed: FeedState, result: FetchResult, now: datetime, parsed: Parsed | None
    ) -> FeedStateUpdate:
        interval = None
        ttl_floor = None
        if parsed is not None:
            interval = adaptive_interval(
                parsed.dated, now, feed.interval, self.policy.min_interval, self.policy.max_interval
            )
            if parsed.ttl is not None:
                ttl_floor = now + parsed.ttl
        hint = server_floor(cache_floor(result.headers, now), ttl_floor)
        unchanged = parsed is None
        return FeedStateUpdate(
            last_polled=now,
            next_due=next_poll(now, interval or feed.effective_interval, not_before=hint),
            status=result.status,
            error=None,
            etag=result.etag or (feed.etag if unchanged else None),
            last_modified=result.last_modified or (feed.last_modified if unchanged else None),
            body_hash=feed.body_hash if unchanged else body_hash(result.content or b""),
            title=None if parsed is None else _feed_title(parsed.title),
            moved_to=result.permanent_redirect or feed.moved_to,
            poll_interval=interval,
        )

    async def _match_and_store(
        self, feed: FeedState, parsed: Parsed, state: FeedStateUpdate
    ) -> EntryChanges:
        if self._pipelined:
            prepared = await self.writer.pipelined(
                lambda: self._submit(feed, parsed, state), self._store
            )
            return prepared.changes
        return await self.writer.exclusive(self._match_and_store_locked, feed, parsed, state)

    def _match_and_store_locked(
        self, feed: FeedState, parsed: Parsed, state: FeedStateUpdate
    ) -> EntryChanges:
        """Match and store under the database-wide matching lock. With PostgreSQL, first
        catch up with what other workers stored and merged, so two workers never open two
        stories for one event."""
        shared = self.storage.dialect != "sqlite"
        with self.storage.matching_lock():
            if shared:
                self.index.catch_up()
                self.index.apply_corrections(self.clock())
            changes = self._store(self._match(feed, parsed, state)).changes
            if shared:
                # What was just stored is in the index already. Read through the lock's own
                # transaction, the newest sequence number is that of this worker's last write.
                self.index.mark_caught_up(self.storage.newest_seq())
            return changes

    def _match(self, feed: FeedState, parsed: Parsed, state: FeedStateUpdate) -> _Prepared:
        """Decide which entries are new or changed and match them (in a worker thread)."""
        changes, new, changed = self._changes(feed, parsed)
        return _prepared(feed, parsed, state, changes, self.index.match(new, changed))

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

    def _changes(
        self, feed: FeedState, parsed: Parsed
    ) -> tuple[EntryChanges, list[Features], list[Features]]:
        """Which entries are new or changed, and the features of each (from the parse worker)."""
        known = self.storage.entry_hashes(feed.url, [e.entry_id for e in parsed.entries])
        changes = decide_changes(parsed.entries, known)
        feats = {f.key: f for f in parsed.features}
        return changes, [feats[e.key] for e in changes.new], [feats[e.key] for e in changes.changed]

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

    async def _record_error(
        self,
        feed: FeedState,
        exc: FetchError | ParseError,
        now: datetime,
        started: float,
        *,
        status: int | None = None,
    ) -> RefreshResult:
        if isinstance(exc, FetchError) and exc.status is not None:
            status = exc.status
        retry_after = exc.retry_after if isinstance(exc, HTTPStatusError) else None
        gone = status == 410
        message = exc.message
        if gone:
            message = f"{message}: the publisher removed this feed; it is no longer polled"
        state = FeedStateUpdate(
            last_polled=now,
            next_due=next_poll(
                now, feed.effective_interval, failures=feed.failures + 1, not_before=retry_after
            ),
            status=status,
            error=message,
            etag=feed.etag,
            last_modified=feed.last_modified,
            body_hash=feed.body_hash,
            moved_to=feed.moved_to,
            gone=gone,
        )
        await self.writer.store_state(FeedRefresh(feed.url, state))
        return RefreshResult(feed.url, feed.display_name, status, 0, 0, message, _since(started))

    async def refresh_many(
        self,
        feeds: Iterable[FeedState],
        on_done: Callable[[RefreshResult], None] | None = None,
    ) -> list[RefreshResult]:
        """Refresh feeds concurrently; results in the order given.

        Up to ``STATE_BATCH_MAX`` feeds are in flight, so unchanged feeds fill whole batches
        of state writes; the fetcher bounds the requests, and ``refresh`` the changed feeds
        being parsed, matched and stored (one per fetch slot), so memory stays flat however
        many feeds are given. Feeds are taken round-robin over their hosts, so the feeds of
        one host, which wait for that host's own fetch slots, do not hold every worker.

        Feeds marked gone (HTTP 410) are skipped: the publisher asked us to stop, so not
        even a one-off ``aggregator poll`` of every feed asks again.
        """
        todo = [f for f in feeds if not f.gone]
        results: list[RefreshResult | None] = [None] * len(todo)
        queue = iter(_round_robin_by_host(todo))

        async def worker() -> None:
            for position, feed in queue:
                try:
                    outcome = await self.refresh(feed)
                except StorageError as exc:
                    outcome = RefreshResult(feed.url, feed.display_name, None, 0, 0, str(exc), 0.0)
                    log.error("%s: storage error: %s", feed.display_name, exc)
                if on_done is not None:
                    on_done(outcome)
                results[position] = outcome

        workers = min(STATE_BATCH_MAX, len(todo))
        await asyncio.gather(*(worker() for _ in range(workers)))
        return [r for r in results if r is not None]


def _round_robin_by_host(feeds: Sequence[FeedState]) -> list[tuple[int, FeedState]]:
    """``feeds`` with their positions, reordered to take one feed of each host in turn."""
    by_host: dict[str, list[tuple[int, FeedState]]] = {}
    for position, feed in enumerate(feeds):
        host = urlsplit(feed.fetch_url).hostname or ""
        by_host.setdefault(host, []).append((position, feed))
    rounds = itertools.zip_longest(*by_host.values())
    return [item for round_ in rounds for item in round_ if item is not None]


def _feed_title(title: str | None) -> str | None:
    """The feed's own title as plain text, like every entry field: it names the outlet in
    published files and pages when feeds.yml gives no name."""
    text = truncate(plain_text(title), TITLE_MAX_CHARS)
    return text or None


def _since(started: float) -> float:
    return time.monotonic() - started


def publish(storage: Storage, output: Path, max_stories: int) -> tuple[int, list[Path]]:
    """Write the merged Atom, RSS and JSON Feed files for the newest stories; return how many
    stories they hold and the files rewritten.

    The feeds' own updated time is that of their newest story, so an unchanged set of stories
    gives byte-identical files that are not rewritten (stable mtime and ETag for readers).
    """
    stories = storage.recent_stories(max_stories)
    return len(stories), write_outputs(stories, output, FeedMeta())


def summarise(results: Sequence[RefreshResult]) -> str:
    errors = sum(1 for r in results if r.error)
    new = sum(r.new for r in results)
    changed = sum(r.changed for r in results)
    return f"{len(results)} feeds polled: {new} new entries, {changed} updated, {errors} errors"
