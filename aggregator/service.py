"""The long-running service: poll due feeds on schedule, publish, stop cleanly.

An APScheduler ``AsyncIOScheduler`` runs one short *tick* job every ``TICK`` seconds. Each tick
asks storage which feeds are due (each feed's next due time already carries its interval,
jitter, back-off and server hints, see ``schedule.next_poll``) and starts a refresh task for
every due feed not already in flight. Keeping "when" in storage rather than in one scheduler job
per feed means back-off, Retry-After and restarts all follow from one stored time. After refreshes
that added or changed entries, the merged files are published again.

SIGINT/SIGTERM stop the scheduler and cancel in-flight fetches. Each feed's writes are one
synchronous transaction that a cancellation cannot interrupt, so storage is never left half-way.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from aggregator.exceptions import StorageError
from aggregator.runtime import Runtime
from aggregator.types import FeedState
from aggregator.update import RefreshResult

log = logging.getLogger("aggregator.service")

# How often the service looks for due feeds. Feed intervals are minutes long, so a few seconds
# of lateness is invisible, and one indexed query every 5 s costs nothing.
TICK = timedelta(seconds=5)


class Service:
    """Polls due feeds forever; publishes after changes."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._in_flight: dict[str, asyncio.Task[RefreshResult]] = {}
        self._dirty = False
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        """Run until SIGINT/SIGTERM (or ``stop()``)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop)
        scheduler = AsyncIOScheduler()
        scheduler.add_job(
            self.tick,
            "interval",
            seconds=TICK.total_seconds(),
            max_instances=1,
            coalesce=True,
        )
        scheduler.start()
        log.info(
            "service started: %d feeds, storage %s",
            len(self.runtime.config.feeds),
            self.runtime.config.settings.storage_url,
        )
        try:
            self._safe_publish()
            await self.tick()
            await self._stopping.wait()
        finally:
            scheduler.shutdown(wait=False)
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            await self._cancel_in_flight()
            if self._dirty:
                self._safe_publish()
            log.info("service stopped")

    def stop(self) -> None:
        log.info("stopping")
        self._stopping.set()

    async def tick(self) -> None:
        """Start refreshes for due feeds; publish when earlier refreshes changed something."""
        if self._stopping.is_set():
            return
        runtime = self.runtime
        now = runtime.clock()
        try:
            due = runtime.storage.due_feeds(now)
        except StorageError as exc:
            log.error("cannot read due feeds: %s", exc)
            return
        for feed in due:
            if feed.url not in self._in_flight:
                self._start(feed)
        runtime.updater.matcher.expire(now)
        if self._dirty:
            self._safe_publish()

    def _start(self, feed: FeedState) -> None:
        task = asyncio.create_task(self._refresh(feed), name=f"refresh {feed.url}")
        self._in_flight[feed.url] = task
        task.add_done_callback(lambda _t: self._in_flight.pop(feed.url, None))

    async def _refresh(self, feed: FeedState) -> RefreshResult:
        results = await self.runtime.updater.refresh_many([feed])
        result = results[0]
        if result.error:
            log.warning("%s", result.log_line())
        else:
            log.info("%s", result.log_line())
        if result.new or result.changed:
            self._dirty = True
        return result

    def _safe_publish(self) -> None:
        try:
            self.runtime.publish()
            self._dirty = False
        except (StorageError, OSError) as exc:
            log.error("publishing failed: %s", exc)

    async def _cancel_in_flight(self) -> None:
        tasks = list(self._in_flight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
