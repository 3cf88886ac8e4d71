"""The update pipeline: one refresh per due feed, then publish.

::

    due feeds | fetch (parallel, bounded) | parse | normalise
              | decide new/changed (pure) | match (pure index) | store (one transaction per feed)
    after a cycle: recent stories | render Atom, RSS, JSON Feed | atomic write

A feed's failure is that feed's result: it is recorded in storage (status, error in words,
consecutive failures, backed-off next poll), logged, and never stops the other feeds.
A 304, or a 200 whose body is byte-identical to the last one, is neither parsed nor matched:
only the feed's poll time and next due time are written.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aggregator.decide import decide_changes
from aggregator.exceptions import FetchError, ParseError, StorageError
from aggregator.fetch import Fetcher
from aggregator.match import Matcher
from aggregator.normalise import normalise_entry
from aggregator.parse import parse_feed
from aggregator.publish import FeedMeta, write_outputs
from aggregator.schedule import next_poll
from aggregator.storage.base import Storage
from aggregator.types import (
    Assignment,
    Entry,
    FeedRefresh,
    FeedState,
    FeedStateUpdate,
    FetchResult,
    ParsedFeed,
)

log = logging.getLogger("aggregator.update")

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class RefreshResult:
    """The outcome of refreshing one feed, for logs, progress bars and tests."""

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
class _Parsed:
    feed: ParsedFeed
    entries: tuple[Entry, ...]


def body_hash(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _parse_and_normalise(result: FetchResult, feed_url: str, now: datetime) -> _Parsed:
    assert result.content is not None
    parsed = parse_feed(result.content, result.headers, result.final_url)
    entries = tuple(normalise_entry(e, feed_url, now) for e in parsed.entries)
    return _Parsed(parsed, entries)


class Updater:
    """Refreshes feeds into storage and keeps the matcher's index in step with it.

    Matching and storing run one feed at a time (under ``_assign_lock``) so the in-memory index
    and the database never disagree about which story an entry joined; fetching and parsing
    run concurrently.
    """

    def __init__(
        self,
        storage: Storage,
        fetcher: Fetcher,
        matcher: Matcher,
        *,
        match_window: timedelta,
        clock: Clock = utcnow,
    ) -> None:
        self.storage = storage
        self.fetcher = fetcher
        self.matcher = matcher
        self.match_window = match_window
        self.clock = clock
        self._assign_lock = asyncio.Lock()

    async def refresh(self, feed: FeedState) -> RefreshResult:
        """Fetch, parse, match and store one feed. Never raises for a feed's own failure."""
        started = time.monotonic()
        name = feed.display_name
        now = self.clock()
        try:
            result = await self.fetcher.fetch(
                feed.moved_to or feed.url, etag=feed.etag, last_modified=feed.last_modified
            )
        except FetchError as exc:
            return await self._record_error(feed, exc, now, started)

        if result.not_modified or (
            result.content is not None and body_hash(result.content) == feed.body_hash
        ):
            state = FeedStateUpdate(
                last_polled=now,
                next_due=next_poll(now, feed.interval),
                status=result.status,
                error=None,
                etag=result.etag or feed.etag,
                last_modified=result.last_modified or feed.last_modified,
                body_hash=feed.body_hash,
                title=feed.title,
                moved_to=result.permanent_redirect or feed.moved_to,
            )
            await self._store(FeedRefresh(feed.url, state))
            return RefreshResult(
                feed.url, name, result.status, 0, 0, None, time.monotonic() - started, True
            )

        try:
            parsed = await asyncio.to_thread(_parse_and_normalise, result, feed.url, now)
        except ParseError as exc:
            return await self._record_error(feed, exc, now, started, status=result.status)

        async with self._assign_lock:
            known = self.storage.entry_hashes(feed.url, [e.entry_id for e in parsed.entries])
            changes = decide_changes(parsed.entries, known)
            assignments: list[tuple[Entry, Assignment]] = [
                (entry, self.matcher.assign(entry)) for entry in changes.new
            ]
            for entry in changes.changed:
                self.matcher.update_entry(entry)
            state = FeedStateUpdate(
                last_polled=now,
                next_due=next_poll(now, feed.interval),
                status=result.status,
                error=None,
                etag=result.etag,
                last_modified=result.last_modified,
                body_hash=body_hash(result.content or b""),
                title=parsed.feed.title,
                moved_to=result.permanent_redirect or feed.moved_to,
            )
            await self._store(
                FeedRefresh(feed.url, state, tuple(assignments), changes.changed),
                matcher_touched=bool(assignments or changes.changed),
            )
        return RefreshResult(
            feed.url,
            name,
            result.status,
            len(changes.new),
            len(changes.changed),
            None,
            time.monotonic() - started,
        )

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
        retry_after = getattr(exc, "retry_after", None)
        state = FeedStateUpdate(
            last_polled=now,
            next_due=next_poll(
                now,
                feed.interval,
                failures=feed.failures + 1,
                not_before=retry_after if isinstance(retry_after, datetime) else None,
            ),
            status=status,
            error=exc.message,
            etag=feed.etag,
            last_modified=feed.last_modified,
            body_hash=feed.body_hash,
            title=feed.title,
            moved_to=feed.moved_to,
        )
        await self._store(FeedRefresh(feed.url, state))
        return RefreshResult(
            feed.url, feed.display_name, status, 0, 0, exc.message, time.monotonic() - started
        )

    async def _store(self, refresh: FeedRefresh, *, matcher_touched: bool = False) -> None:
        try:
            self.storage.store_refresh(refresh)
        except StorageError:
            if matcher_touched:
                # The index already holds assignments the database refused; rebuild it from
                # what was really committed so the two cannot drift apart.
                log.warning("storage refused %s; rebuilding the match index", refresh.feed_url)
                self.matcher = build_matcher(self.storage, self.match_window, self.clock())
            raise

    async def refresh_many(
        self,
        feeds: Iterable[FeedState],
        on_done: Callable[[RefreshResult], None] | None = None,
    ) -> list[RefreshResult]:
        """Refresh feeds concurrently (the fetcher bounds the concurrency)."""

        async def one(feed: FeedState) -> RefreshResult:
            try:
                outcome = await self.refresh(feed)
            except StorageError as exc:
                outcome = RefreshResult(feed.url, feed.display_name, None, 0, 0, str(exc), 0.0)
                log.error("%s: storage error: %s", feed.display_name, exc)
            if on_done is not None:
                on_done(outcome)
            return outcome

        return list(await asyncio.gather(*(one(f) for f in feeds)))


def build_matcher(storage: Storage, window: timedelta, now: datetime) -> Matcher:
    """A matcher whose index holds the stories of the match window, read from storage."""
    matcher = Matcher(window=window)
    for stored in storage.entries_since(now - window):
        matcher.add_known(stored.entry, stored.story_id)
    return matcher


def publish(storage: Storage, output: Path, max_stories: int) -> list[Path]:
    """Write the merged Atom, RSS and JSON Feed files for the newest stories.

    The feeds' own updated time is that of their newest story, so an unchanged set of stories
    gives byte-identical files that are not rewritten (stable mtime and ETag for readers).
    """
    stories = storage.recent_stories(max_stories)
    return write_outputs(stories, output, FeedMeta())


def summarise(results: Sequence[RefreshResult]) -> str:
    errors = sum(1 for r in results if r.error)
    new = sum(r.new for r in results)
    changed = sum(r.changed for r in results)
    return f"{len(results)} feeds polled: {new} new entries, {changed} updated, {errors} errors"
