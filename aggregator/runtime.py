"""Wiring: build the storage, fetcher, matcher and updater that a configuration describes."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

from aggregator.config import Config
from aggregator.fetch import Fetcher
from aggregator.parallel import ParsePool
from aggregator.storage import open_storage, shared_between_processes
from aggregator.storage.base import Storage
from aggregator.storage.polling_lock import polling_lock
from aggregator.story_index import LocalStoryIndex, StoryIndex, StoryIndexProcess
from aggregator.update import Clock, PollPolicy, Updater, publish, utcnow

log = logging.getLogger("aggregator")

# The collector looks at the youngest objects every this many net allocations (CPython's
# default is 700). The match index is millions of small long-lived objects, which every
# older-generation pass walks again: in the first cycle of `python -m benchmarks.poll --feeds
# 1000`, collections took 5.7 of 58 CPU seconds at 700 and 1.8 s at 20,000, where one young
# collection takes ~20 ms (far below a poll's latency).
GC_YOUNG_THRESHOLD = 20_000


def tune_collector() -> None:
    """Collect less often: see GC_YOUNG_THRESHOLD."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def make_fetcher(config: Config) -> Fetcher:
    s = config.settings
    return Fetcher(
        user_agent=s.user_agent,
        timeout=s.timeout.total_seconds(),
        deadline=s.deadline.total_seconds(),
        max_bytes=s.max_bytes,
        concurrency=s.concurrency,
        per_host=s.per_host,
        allow_networks=s.allow_networks,
    )


@dataclass
class Runtime:
    """Everything one process needs to poll, match, store and publish."""

    config: Config
    storage: Storage
    updater: Updater
    clock: Clock

    def publish(self) -> int:
        """Write the merged files; return how many stories they hold."""
        s = self.config.settings
        count, paths = publish(self.storage, s.output, s.max_stories)
        log.debug("published %s", ", ".join(str(p) for p in paths))
        return count


@asynccontextmanager
async def open_runtime(config: Config, *, clock: Clock = utcnow) -> AsyncIterator[Runtime]:
    """Open storage (applying migrations), sync the configured feeds and load the match index.

    With SQLite, only one process at a time may do this for a database (``polling_lock``):
    :class:`~aggregator.storage.polling_lock.StorageInUse` says which process holds it.
    """
    with polling_lock(config.settings.storage_url):
        async with _open_runtime(config, clock) as runtime:
            yield runtime


@asynccontextmanager
async def _open_runtime(config: Config, clock: Clock) -> AsyncIterator[Runtime]:
    storage = open_storage(config.settings.storage_url)
    try:
        s = config.settings
        storage.sync_feeds(config.feeds, clock())
        policy = PollPolicy(min_interval=s.min_interval, max_interval=s.max_interval)
        tune_collector()
        index = open_index(storage, s.match_window, clock, s.match_max_entries)
        try:
            async with make_fetcher(config) as fetcher, ParsePool() as parse_pool:
                updater = Updater(
                    storage,
                    fetcher,
                    match_window=s.match_window,
                    policy=policy,
                    parse_pool=parse_pool,
                    index=index,
                    clock=clock,
                )
                # What was loaded lives long: keep full collections from walking it again
                # and again. It holds no reference cycles, so reference counting frees it.
                gc.freeze()
                yield Runtime(config, storage, updater, clock)
        finally:
            await asyncio.to_thread(index.close)
    finally:
        storage.close()


def open_index(
    storage: Storage, window: timedelta, clock: Clock, max_entries: int | None = None
) -> StoryIndex:
    """The match index in a process of its own, on a second core, unless the database is
    in memory (no other process can open it): then in this process."""
    if shared_between_processes(storage.url):
        return StoryIndexProcess(storage.url, window, clock, max_entries)
    return LocalStoryIndex(storage, window, clock(), max_entries)
