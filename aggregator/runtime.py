"""Wiring: build the storage, fetcher, matcher and updater that a configuration describes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aggregator.config import Config
from aggregator.fetch import Fetcher
from aggregator.parallel import ParsePool
from aggregator.storage import open_storage
from aggregator.storage.base import Storage
from aggregator.update import Clock, PollPolicy, Updater, publish, utcnow

log = logging.getLogger("aggregator")


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
    """Open storage (applying migrations), sync the configured feeds and load the match index."""
    storage = open_storage(config.settings.storage_url)
    try:
        s = config.settings
        storage.sync_feeds(config.feeds, clock())
        policy = PollPolicy(min_interval=s.min_interval, max_interval=s.max_interval)
        async with make_fetcher(config) as fetcher, ParsePool() as parse_pool:
            updater = Updater(
                storage,
                fetcher,
                match_window=s.match_window,
                policy=policy,
                parse_pool=parse_pool,
                clock=clock,
            )
            yield Runtime(config, storage, updater, clock)
    finally:
        storage.close()
