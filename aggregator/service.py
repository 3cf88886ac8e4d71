"""The long-running service: poll due feeds on schedule, publish, stop cleanly.

An APScheduler ``AsyncIOScheduler`` runs one short *tick* job every ``TICK`` seconds. Each tick
claims the feeds that are due (storage leases each feed to one worker, so several ``aggregator
run`` processes can share a PostgreSQL database without fetching a feed twice) and starts a
refresh task for each. When a feed is due already carries its interval, jitter, back-off and
server hints (``schedule``), so "when" lives in one stored time that survives restarts.
After refreshes that added or changed entries, one worker at a time publishes the merged files.
At start and then every ``PRUNE_INTERVAL`` the service prunes storage to ``settings.retention``
and ``settings.max_entries_per_feed`` (``Storage.prune``, in a worker thread). With several
workers on one PostgreSQL database each prunes on its own schedule; that is harmless, since
pruning is idempotent and a second run finds only what became due since.

SIGINT/SIGTERM stop the scheduler and cancel in-flight fetches. Each feed's writes are one
transaction that runs to its end in a worker thread, so storage is never left half-way; an
unfinished claim simply expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import signal
import socket
from datetime import timedelta
from typing import Protocol

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from aggregator.config import Config, format_duration
from aggregator.exceptions import StorageError
from aggregator.health import ServiceHealth
from aggregator.match import build as match_build
from aggregator.parse.budget import OVER_BUDGET
from aggregator.refresh.parse_pool import PARSER_DIED
from aggregator.refresh.updater import RefreshResult
from aggregator.runtime import Runtime
from aggregator.storage import PruneResult
from aggregator.types import FeedState

log = logging.getLogger("aggregator.service")

# How often the service looks for due feeds when no refresh has finished meanwhile (a finished
# refresh claims a replacement at once). Feed intervals are minutes long, so a few seconds of
# lateness is invisible, and one indexed query every 5 s costs nothing.
TICK = timedelta(seconds=5)

# The part of a claim after the fetch: parse, normalise, wait for the matching lock, match and
# store. Each takes milliseconds for a news feed and a few seconds for a max-size document.
POST_FETCH_MARGIN = timedelta(seconds=15)

# After a failed publish (a full disk, a read-only output folder) the next attempt waits this
# long, doubling with each failure in a row up to ``PUBLISH_RETRY_MAX``: the error is logged at
# each attempt, so at every tick it filled the log with the same line every 5 s.
PUBLISH_RETRY_FIRST = TICK
# Ten minutes: a freed disk is picked up soon enough, and the log gets six lines an hour.
PUBLISH_RETRY_MAX = timedelta(minutes=10)


# How often storage is pruned. The bounds are days and thousands of entries, so an hour's
# overshoot is small (at most twelve polls of one feed at the 5-minute floor), and one hour's
# growth is removed in seconds of short batches (45,000 entries in 2 s measured on SQLite,
# ``storage/prune.py``); a failed prune waits this long too.
PRUNE_INTERVAL = timedelta(hours=1)


def publish_retry_delay(failures: int) -> timedelta:
    """How long to wait before publishing again after ``failures`` failures in a row."""
    doublings = min(max(failures - 1, 0), 16)
    return min(PUBLISH_RETRY_FIRST * (1 << doublings), PUBLISH_RETRY_MAX)


def lease_for(*, deadline: timedelta, concurrency: int, per_host: int) -> timedelta:
    """How long a claim lasts: it must outlive the slowest refresh it covers, or a second
    worker could take the feed while the first still works on it; a crashed worker's feeds are
    retaken after this long.

    A worker claims at most one feed per fetch slot (``concurrency``), so no claimed feed
    waits for a slot; at worst they all share one host, whose limit runs them ``per_host`` at
    a time, each round taking up to the fetch deadline.
    """
    rounds = math.ceil(concurrency / max(1, min(per_host, concurrency)))
    return deadline * rounds + POST_FETCH_MARGIN


class PollObserver(Protocol):
    def observe_poll(self, result: RefreshResult) -> None: ...

    def set_inventory(self, *, feeds: int, stories: int) -> None: ...


def worker_name() -> str:
    """Names this process in feed claims: host and pid, unique across machines."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Service:
    """Polls due feeds forever; publishes after changes."""

    def __init__(self, runtime: Runtime, *, observer: PollObserver | None = None) -> None:
        self.runtime = runtime
        self.observer = observer
        self.worker = worker_name()
        self._in_flight: dict[str, asyncio.Task[RefreshResult]] = {}
        self._dirty = False
        self._stopping = asyncio.Event()
        self._claiming = asyncio.Lock()
        self._refill: asyncio.Task[None] | None = None
        self._refill_wanted = False
        self.health = ServiceHealth()
        self._publish_failures = 0
        self._publish_not_before = 0.0  # event-loop time

    @property
    def lease(self) -> timedelta:
        s = self.runtime.config.settings
        return lease_for(deadline=s.deadline, concurrency=s.concurrency, per_host=s.per_host)

    async def run(self) -> None:
        """Run until SIGINT/SIGTERM (or ``stop()``)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop)
        scheduler = AsyncIOScheduler()
        scheduler.add_job(
            self.tick, "interval", seconds=TICK.total_seconds(), max_instances=1, coalesce=True
        )
        scheduler.start()
        log.info(
            "service %s started: %d feeds, storage %s, match index %s, meaning signal %s, %s",
            self.worker,
            len(self.runtime.config.feeds),
            self.runtime.config.settings.storage_url,
            match_build(),
            self.runtime.config.settings.semantic,
            self.runtime.processes,
        )
        pruning = asyncio.create_task(self._prune_every(PRUNE_INTERVAL), name="prune")
        try:
            await self._publish()
            await self.tick()
            await self._stopping.wait()
        finally:
            scheduler.shutdown(wait=False)
            # A prune under way runs to the end of its thread call (batches of milliseconds).
            self._stopping.set()
            await asyncio.gather(pruning, return_exceptions=True)
            if self._refill is not None:
                self._refill.cancel()
                await asyncio.gather(self._refill, return_exceptions=True)
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            await self._cancel_in_flight()
            if self._dirty:
                await self._publish()
            log.info("service stopped")

    def stop(self) -> None:
        log.info("stopping")
        self._stopping.set()

    def apply_config(self, config: Config) -> None:
        """A new valid feeds.yml: added feeds become due now, removed ones stop, changed
        intervals apply from their next poll. Settings other than the feed list need a restart.
        """
        runtime = self.runtime
        old = runtime.config.settings
        runtime.storage.sync_feeds(config.feeds, runtime.clock())
        if config.settings != old:
            log.warning("settings changed in %s; restart to apply them", config.path)
        if runtime.index_placement_changed(config):
            log.warning(
                "%d feeds now: settings.workers would run the match index %s; restart to apply",
                len(config.feeds),
                "in a process of its own" if not runtime.index_own_process else "in this process",
            )
        runtime.config = config
        log.info("reloaded %s: %d feeds", config.path, len(config.feeds))

    async def tick(self) -> None:
        """Claim due feeds and start their refreshes; publish after earlier changes."""
        if self._stopping.is_set():
            return
        runtime = self.runtime
        await self._claim()
        try:
            if await runtime.updater.reload_corrections():
                self._dirty = True
        except StorageError as exc:
            log.error("cannot read manual corrections: %s", exc)
        await runtime.updater.expire(runtime.clock())
        if self._dirty and asyncio.get_running_loop().time() >= self._publish_not_before:
            await self._publish()

    async def _claim(self) -> None:
        """Claim due feeds for the free fetch slots and start their refreshes."""
        async with self._claiming:
            runtime = self.runtime
            free = runtime.config.settings.concurrency - len(self._in_flight)
            if free <= 0 or self._stopping.is_set():
                return
            try:
                due = await asyncio.to_thread(
                    runtime.storage.claim_due_feeds, self.worker, runtime.clock(), self.lease, free
                )
            except StorageError as exc:
                log.error("cannot claim due feeds: %s", exc)
                return
            for feed in due:
                if feed.url not in self._in_flight:
                    self._start(feed)

    def _start(self, feed: FeedState) -> None:
        task = asyncio.create_task(self._refresh(feed), name=f"refresh {feed.url}")
        self._in_flight[feed.url] = task
        task.add_done_callback(lambda _t: self._slot_freed(feed.url))

    def _slot_freed(self, url: str) -> None:
        """A refresh ended: claim a replacement now rather than at the next tick."""
        self._in_flight.pop(url, None)
        if self._stopping.is_set():
            return
        self._refill_wanted = True
        if self._refill is None or self._refill.done():
            self._refill = asyncio.create_task(self._refill_slots(), name="claim freed slots")

    async def _refill_slots(self) -> None:
        # Slots freed while a claim was running are claimed by the next round of the loop.
        while self._refill_wanted and not self._stopping.is_set():
            self._refill_wanted = False
            await self._claim()

    async def _refresh(self, feed: FeedState) -> RefreshResult:
        (result,) = await self.runtime.updater.refresh_many([feed])
        if result.error:
            log.warning("%s", result.log_line())
        else:
            log.info("%s", result.log_line())
        if self.observer is not None:
            self.observer.observe_poll(result)
        self._observe_health(result)
        if result.new or result.changed:
            self._dirty = True
        return result

    def _observe_health(self, result: RefreshResult) -> None:
        if result.storage_failed:
            self.health.failed("storing", f"{result.name}: {result.error}")
            return
        self.health.succeeded("storing")  # the feed's state, at least, was written
        if result.error and result.error.startswith((OVER_BUDGET, PARSER_DIED)):
            self.health.parse_overran(result.name, result.error)

    async def _prune_every(self, interval: timedelta) -> None:
        """Prune now, then every ``interval``, until the service stops."""
        while not self._stopping.is_set():
            await self.prune()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), interval.total_seconds())

    async def prune(self) -> PruneResult | None:
        """Remove what is past ``settings.retention`` and ``settings.max_entries_per_feed``,
        off the event loop; one log line when anything went. A failure is logged and reported
        by ``/healthz`` when it repeats; the next interval tries again. None when it failed."""
        runtime = self.runtime
        s = runtime.config.settings
        try:
            result = await asyncio.to_thread(
                runtime.storage.prune,
                runtime.clock(),
                retention=s.retention,
                max_entries_per_feed=s.max_entries_per_feed,
            )
        except Exception as exc:  # storage refused, or a bug of ours: never the service's end
            failures = self.health.failed("pruning", str(exc))
            log.error(
                "pruning failed (%d in a row; next attempt in %s): %s",
                failures,
                format_duration(PRUNE_INTERVAL),
                exc,
                exc_info=not isinstance(exc, StorageError),
            )
            return None
        self.health.succeeded("pruning")
        if result.entries or result.stories:
            log.info(
                "pruned %d entries and %d stories left empty (retention %s, at most %d entries "
                "per feed)",
                result.entries,
                result.stories,
                format_duration(s.retention),
                s.max_entries_per_feed,
            )
            self._dirty = True  # the published files may list a story that is gone
        return result

    async def _publish(self) -> None:
        try:
            await asyncio.to_thread(self._publish_if_mine)
        except (StorageError, OSError) as exc:
            self._dirty = True  # try again after the back-off
            self._publish_failures = self.health.failed("publishing", str(exc))
            delay = publish_retry_delay(self._publish_failures)
            self._publish_not_before = asyncio.get_running_loop().time() + delay.total_seconds()
            log.error(
                "publishing failed (%d in a row; next attempt in %s): %s",
                self._publish_failures,
                format_duration(delay),
                exc,
            )
            return
        self._publish_failures = 0
        self._publish_not_before = 0.0
        self.health.succeeded("publishing")

    def _publish_if_mine(self) -> None:
        stories = self.runtime.publish_unless_busy(before=self._mark_clean)
        if stories is None:
            return  # another worker is publishing the same stories right now
        if self.observer is not None:
            self.observer.set_inventory(feeds=len(self.runtime.config.feeds), stories=stories)

    def _mark_clean(self) -> None:
        self._dirty = False

    async def _cancel_in_flight(self) -> None:
        tasks = list(self._in_flight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.runtime.updater.drain()
