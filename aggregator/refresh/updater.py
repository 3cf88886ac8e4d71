"""The updater: one refresh per due feed, from fetch to store (see the package docstring).

A feed's failure is that feed's result: it is recorded in storage (status, error in words,
consecutive failures, backed-off next poll), logged, and never stops the other feeds. So is an
unexpected exception while fetching or parsing (a bug of ours): it is logged with its
traceback, so it still surfaces, and recorded as the feed's error with back-off.
A 304, or a 200 whose body is byte-identical to the last one, is neither parsed nor matched:
only the feed's poll time and next due time are written.

Politeness lives in the next due time (``schedule``): the interval adapted to the feed's
posting rate, jitter, exponential back-off after failures, and the server's own hints
(Retry-After, Cache-Control/Expires, RSS ``<ttl>``) as a floor. A 301/308 moves the feed
(later polls go to the new URL); a 410 marks it gone and it is no longer polled.

How a feed's new entries are matched and stored depends on the database (``store``): the
strategy is chosen once, where the runtime is built, and passed in.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from aggregator.defaults import DEFAULT_MAX_INTERVAL, DEFAULT_MIN_INTERVAL
from aggregator.exceptions import FetchError, ParseError, StorageError
from aggregator.fetch import Fetcher, HTTPStatusError, cache_floor
from aggregator.normalise import TITLE_MAX_CHARS, plain_text, truncate
from aggregator.refresh.decide import EntryChanges
from aggregator.refresh.index import LocalStoryIndex, StoryIndex
from aggregator.refresh.parse_pool import Parsed, ParsePool, parse_and_normalise
from aggregator.refresh.schedule import adaptive_interval, next_poll, server_floor
from aggregator.refresh.store import Clock, MatchAndStore, choose_store
from aggregator.refresh.writer import STATE_BATCH_MAX, StorageWriter
from aggregator.storage.base import Storage
from aggregator.types import FeedRefresh, FeedState, FeedStateUpdate, FetchResult

log = logging.getLogger("aggregator.refresh")


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
    # The refresh could not be stored (the database refused it): the service's health, not
    # only the feed's.
    storage_failed: bool = False

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

    min_interval: timedelta = DEFAULT_MIN_INTERVAL
    max_interval: timedelta = DEFAULT_MAX_INTERVAL


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
        store: MatchAndStore | None = None,
    ) -> None:
        """``index``: where matching runs (a ``StoryIndexProcess``); by default a
        ``LocalStoryIndex`` in this process, loaded from ``storage`` now. ``store``: how a
        feed's entries are matched and stored, built on ``index`` and chosen where the runtime
        is built; by default ``choose_store``'s choice for ``storage``."""
        self.storage = storage
        self.fetcher = fetcher
        self.parse_pool = parse_pool
        self.match_window = match_window
        self.policy = policy or PollPolicy()
        self.clock = clock
        self.index = index or LocalStoryIndex(storage, match_window, clock())
        if store is None:
            store = choose_store(storage, self.index, StorageWriter(storage), clock)
        self.store = store
        self.writer = store.writer
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
        except Exception as exc:  # a bug of ours: still the feed's error, with its traceback
            log.exception("%s: unexpected error while fetching", feed.display_name)
            unexpected = FetchError(feed.fetch_url, f"unexpected error while fetching: {exc!r}")
            return await self._record_error(feed, unexpected, now, started)

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
            except Exception as exc:  # a bug of ours, or the worker's MemoryError
                log.exception("%s: unexpected error while parsing", feed.display_name)
                failed = ParseError(result.final_url, f"unexpected error while parsing: {exc!r}")
                return await self._record_error(feed, failed, now, started, status=result.status)
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
        return await self.store(feed, parsed, state)

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
                    outcome = RefreshResult(
                        feed.url, feed.display_name, None, 0, 0, str(exc), 0.0, storage_failed=True
                    )
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


def summarise(results: Sequence[RefreshResult]) -> str:
    errors = sum(1 for r in results if r.error)
    new = sum(r.new for r in results)
    changed = sum(r.changed for r in results)
    return f"{len(results)} feeds polled: {new} new entries, {changed} updated, {errors} errors"
