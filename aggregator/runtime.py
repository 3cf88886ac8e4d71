"""Wiring: build the storage, fetcher, matcher and updater that a configuration describes."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

from aggregator.config import Config
from aggregator.fetch import Fetcher
from aggregator.match.embedding import check_available
from aggregator.match.prior import check_table
from aggregator.publish import FeedMeta, write_outputs
from aggregator.refresh.index import LocalStoryIndex, StoryIndex
from aggregator.refresh.index_elastic import ElasticStoryIndex
from aggregator.refresh.index_process import StoryIndexProcess
from aggregator.refresh.parse_pool import ParsePool
from aggregator.refresh.processes import tune_collector, tune_malloc
from aggregator.refresh.store import Clock, choose_store
from aggregator.refresh.updater import PollPolicy, Updater, utcnow
from aggregator.refresh.workers import describe, index_comes_back, index_in_own_process
from aggregator.refresh.writer import StorageWriter
from aggregator.storage import open_storage, shared_between_processes
from aggregator.storage.base import Storage
from aggregator.storage.polling_lock import lock_path, polling_lock
from aggregator.types import DEFAULT_SEMANTIC, SemanticSignal

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
    # settings.workers as applied, in words (refresh/workers.py).
    processes: str = ""
    # Whether the match index runs in a process of its own (decided at start).
    index_own_process: bool = False

    def index_placement_changed(self, config: Config) -> bool:
        """Whether ``config`` would place the match index elsewhere than it runs now (the
        feed list crossed ``INDEX_PROCESS_MIN_FEEDS``): that takes a restart."""
        wanted = index_in_own_process(
            config.settings.workers,
            len(config.feeds),
            shareable=shared_between_processes(self.storage.url),
        )
        return wanted != self.index_own_process

    def publish(self) -> int:
        """Write the merged Atom, RSS and JSON Feed files for the newest stories; return how
        many stories they hold.

        The feeds' own updated time is that of their newest story, so an unchanged set of
        stories gives byte-identical files that are not rewritten (stable mtime and ETag for
        readers).
        """
        s = self.config.settings
        stories = self.storage.recent_stories(s.max_stories)
        # Absolute links (settings.site_url): the files are read from disk, mirrors and caches.
        paths = write_outputs(stories, s.output, FeedMeta(s.site_url))
        log.debug("published %s", ", ".join(str(p) for p in paths))
        return len(stories)

    def publish_unless_busy(self, before: Callable[[], None]) -> int | None:
        """:meth:`publish`, unless another worker is publishing right now (None then): it
        publishes the same stories. ``before`` runs once this worker may publish."""
        with self.storage.publish_lock() as mine:
            if not mine:
                return None
            before()
            return self.publish()


@asynccontextmanager
async def open_runtime(
    config: Config, *, clock: Clock = utcnow, locked: Callable[[], None] | None = None
) -> AsyncIterator[Runtime]:
    """Open storage (applying migrations), sync the configured feeds and load the match index.

    With SQLite, only one process at a time may do this for a database (``polling_lock``):
    :class:`~aggregator.storage.polling_lock.StorageInUse` says which process holds it.
    ``locked`` runs once the lock is held, before anything is loaded (``aggregator run`` binds
    its port there: a second service on the same database is told who polls it, not that the
    port is taken).
    """
    with polling_lock(config.settings.storage_url):
        if locked is not None:
            locked()
        async with _open_runtime(config, clock) as runtime:
            yield runtime


@asynccontextmanager
async def _open_runtime(config: Config, clock: Clock) -> AsyncIterator[Runtime]:
    storage = open_storage(config.settings.storage_url)
    try:
        s = config.settings
        if lock_path(s.storage_url) is not None:
            # We hold the polling lock of this SQLite file, so every claim in it belongs to a
            # process that ended (SIGKILL, a refused store) before recording its poll: without
            # this its feeds would wait out the whole lease.
            released = storage.release_claims()
            if released:
                log.warning(
                    "released %d feed claims left by a polling process that ended", released
                )
        storage.sync_feeds(config.feeds, clock())
        policy = PollPolicy(min_interval=s.min_interval, max_interval=s.max_interval)
        tune_collector()
        tune_malloc()
        own_process = index_in_own_process(
            s.workers, len(config.feeds), shareable=shared_between_processes(storage.url)
        )
        index = open_index(
            storage,
            s.match_window,
            clock,
            s.match_max_entries,
            s.semantic,
            own_process,
            elastic=index_comes_back(s.workers),
        )
        try:
            # How a feed is matched and stored depends on the database: decided here, once.
            store = choose_store(storage, index, StorageWriter(storage), clock)
            async with make_fetcher(config) as fetcher, ParsePool(s.workers) as parse_pool:
                updater = Updater(
                    storage,
                    fetcher,
                    match_window=s.match_window,
                    policy=policy,
                    parse_pool=parse_pool,
                    index=index,
                    clock=clock,
                    store=store,
                )
                # What was loaded lives long: keep full collections from walking it again
                # and again. It holds no reference cycles, so reference counting frees it.
                gc.freeze()
                processes = describe(s.workers, index_own_process=own_process)
                yield Runtime(config, storage, updater, clock, processes, own_process)
        finally:
            await asyncio.to_thread(index.close)
    finally:
        storage.close()


def open_index(
    storage: Storage,
    window: timedelta,
    clock: Clock,
    max_entries: int | None = None,
    semantic: SemanticSignal = DEFAULT_SEMANTIC,
    own_process: bool | None = None,
    *,
    elastic: bool = False,
) -> StoryIndex:
    """The match index in a process of its own, on a second core, when ``own_process`` (by
    default: whenever another process can open the database), else in this process; see
    ``refresh/workers.py`` for the rule ``settings.workers`` follows; ``elastic``: that process
    lasts only while there is matching to do (``refresh/index_elastic.py``). Either way the
    ``Matcher`` is built by ``LocalStoryIndex._load`` (``refresh/index.py``).

    Raises ``SemanticUnavailable`` naming the setting when ``semantic`` needs an extra that is
    not installed, and ``PriorTableUnavailable`` when the install lacks the word-frequency table
    (checked here, before a child process would fail on it)."""
    check_available(semantic)
    check_table()
    if own_process is None:
        own_process = shared_between_processes(storage.url)
    if not own_process:
        return LocalStoryIndex(storage, window, clock(), max_entries, semantic)
    child = StoryIndexProcess(storage, window, clock, max_entries, semantic)
    if not elastic:
        return child
    return ElasticStoryIndex(
        child, lambda: LocalStoryIndex(storage, window, clock(), max_entries, semantic), clock
    )
