"""Parse and normalise feeds in worker processes, so every core parses and the loop stays free.

feedparser is pure Python (about 1.5 ms of CPU per entry with sanitising on): in a thread it
holds the GIL and stalls fetching, matching and storing of every other feed. ``ParsePool`` runs
``parse_feed`` + ``normalise_entry`` in a ``ProcessPoolExecutor`` and hands back a ``Parsed``
record of frozen records, so only the bytes go out and only what the updater reads comes back.
The workers also extract each entry's matching features (``match.text.features``, a pure
function of the entry and ~90 us of CPU each), which the matcher would otherwise compute on the
one core it shares with fetching and storing.

    async with ParsePool() as pool:
        parsed = await pool.parse(content, headers, final_url, feed_url, now)

How many workers, and which documents are parsed in the service process instead (in a
thread: small ones while nothing else is parsing, with ``settings.workers: auto``; all with 0),
is the rule of ``refresh/workers.py``. With ``auto`` the workers start for a backlog and stop
after ``POOL_IDLE_SECONDS`` without work.

A ``ParseError`` raised in a worker is raised again here with the same URL and message (the
worker sends the two fields back: ``FeedError`` does not survive pickling as itself).
A worker that dies (killed, out of memory) breaks the executor; the pool then starts a fresh
one and retries that document once, so one poisoned document cannot stop the service.

Each document is parsed within a CPU-time budget (``parse.budget``; over it, the document is a
``ParseError`` for its feed). Should a parse be stuck in C code, where that budget's signal
cannot interrupt it, the worker's CPU rlimit ends the worker at ``HARD_LIMIT_FACTOR`` times the
budget, and the document is reported as one the parser process died on.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import resource
import weakref
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType

from aggregator.exceptions import ParseError
from aggregator.match.text import Features, features
from aggregator.normalise import normalise_entry
from aggregator.parse import PARSE_CPU_SECONDS, parse_feed
from aggregator.parse.budget import OVER_BUDGET
from aggregator.refresh.processes import (
    SPAWN,
    exit_with_parent,
    release_free_memory,
    stop_resource_tracker,
)
from aggregator.refresh.workers import (
    INLINE_CPU_SECONDS,
    POOL_IDLE_SECONDS,
    parse_inline,
    stop_pool_when_idle,
)
from aggregator.types import Entry

__all__ = [
    "HARD_LIMIT_FACTOR",
    "PARSER_DIED",
    "ParsePool",
    "Parsed",
    "default_workers",
    "parse_and_normalise",
]

log = logging.getLogger("aggregator.refresh")

# The error of a document whose parse ended the worker twice (its CPU rlimit or memory).
PARSER_DIED = "the parser process died on this document"
# The worker's CPU rlimit, as a multiple of the parse budget (plus one second, its granularity):
# only a parse the budget's timer could not interrupt gets there, and it ends the worker.
HARD_LIMIT_FACTOR = 2
# After the idle workers are told to stop: how often, and how many times, to look whether they
# are gone, so that the resource tracker can stop too (``_stop_tracker``). Workers exit within
# a second of their shutdown; a minute covers a loaded machine.
TRACKER_CHECK_SECONDS = 5.0
TRACKER_CHECKS = 12


def default_workers() -> int:
    """One worker per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True, slots=True)
class Parsed:
    """A parsed and normalised document: only what the updater reads of it.

    The parser's own entries (HTML content and all, about half of a news feed's size) stay in
    the worker: sending them back cost the service's main process more to receive than
    anything it did with them.
    """

    title: str | None
    ttl: timedelta | None
    # The dates the entries themselves give (undated entries left out): the posting rate.
    dated: tuple[datetime, ...]
    entries: tuple[Entry, ...]
    # Each entry's matching features, in the same order; None when they were not extracted
    # (a document parsed in the service process: the store extracts them for the new and
    # changed entries only).
    features: tuple[Features, ...] | None


def parse_and_normalise(
    content: bytes,
    headers: Mapping[str, str],
    final_url: str,
    feed_url: str,
    now: datetime,
    cpu_seconds: float | None = PARSE_CPU_SECONDS,
    with_features: bool = True,
) -> Parsed:
    """Parse ``content`` (found at ``final_url``) within ``cpu_seconds`` of CPU time, normalise
    its entries for ``feed_url`` and, ``with_features``, extract their matching features (one
    per entry, in the same order): a worker does it for every entry, since it has the core to
    spare and most entries of a backlog are new."""
    parsed = parse_feed(content, headers, final_url, cpu_seconds=cpu_seconds)
    entries = tuple(normalise_entry(e, feed_url, now) for e in parsed.entries)
    dated = tuple(e.published for e in parsed.entries if e.published is not None)
    feats = tuple(features(e) for e in entries) if with_features else None
    return Parsed(parsed.title, parsed.ttl, dated, entries, feats)


_Outcome = Parsed | tuple[str, str]


def _cpu_used() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _job(
    content: bytes,
    headers: Mapping[str, str],
    final_url: str,
    feed_url: str,
    now: datetime,
    cpu_seconds: float | None,
) -> _Outcome:
    soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if cpu_seconds is not None:
        limit = math.ceil(_cpu_used() + cpu_seconds * HARD_LIMIT_FACTOR) + 1
        if hard == resource.RLIM_INFINITY or limit < hard:
            resource.setrlimit(resource.RLIMIT_CPU, (limit, hard))
    try:
        return parse_and_normalise(content, headers, final_url, feed_url, now, cpu_seconds)
    except ParseError as exc:
        return (exc.url, exc.message)
    finally:
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _warm_up(parent: int) -> None:
    """Tie a fresh worker to its parent, then load the parsing and feature stack before the
    first document arrives."""
    exit_with_parent(parent)
    import feedparser  # noqa: F401
    import nh3  # noqa: F401

    from aggregator.match.prior import prior_idf

    prior_idf("news")  # loads the word frequencies that feature extraction ranks terms by


class ParsePool:
    """Parsing for the updater, in worker processes or in this one by ``settings.workers``
    (``refresh/workers.py``: None is auto); ``async with ParsePool(workers) as pool``."""

    def __init__(
        self, workers: int | None = None, *, cpu_seconds: float | None = PARSE_CPU_SECONDS
    ) -> None:
        if workers is not None and workers < 0:
            raise ValueError(f"workers must be 0 or more, not {workers!r}")
        self.setting = workers
        self.workers = workers or default_workers()
        self.cpu_seconds = cpu_seconds
        self._executor: ProcessPoolExecutor | None = None
        self._entered = False
        self._inline = 0  # documents being parsed in this process now
        self._in_pool = 0  # documents sent to the workers and not answered yet
        # The next step of going idle: stopping the workers, then the resource tracker (one
        # pending at a time; work for the workers cancels it).
        self._idle_step: asyncio.TimerHandle | None = None
        self.pool_starts = 0  # how many times the workers were started (for tests and logs)
        # The workers stopped last, until collected (see _stop_tracker).
        self._stopped: weakref.ref[ProcessPoolExecutor] | None = None
        self._tracker_checks = 0

    def _start(self) -> ProcessPoolExecutor:
        executor = ProcessPoolExecutor(
            self.workers, mp_context=SPAWN, initializer=_warm_up, initargs=(os.getpid(),)
        )
        self._executor = executor
        self.pool_starts += 1
        return executor

    @property
    def running(self) -> bool:
        """Whether the worker processes are started."""
        return self._executor is not None

    async def __aenter__(self) -> ParsePool:
        self._entered = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the workers (waiting in a thread, so the event loop keeps running)."""
        self._entered = False
        self._cancel_idle_step()
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)

    async def parse(
        self,
        content: bytes,
        headers: Mapping[str, str],
        final_url: str,
        feed_url: str,
        now: datetime,
    ) -> Parsed:
        """``parse_and_normalise`` here or in a worker process; raises ``ParseError`` like it."""
        if not self._entered:
            raise RuntimeError("ParsePool must be used as 'async with ParsePool() as pool'")
        if parse_inline(self.setting, len(content), self._inline, pool_running=self.running):
            # With workers to fall back on, a short budget here (refresh/workers.py).
            budget = self.cpu_seconds if self.setting == 0 else INLINE_CPU_SECONDS
            self._inline += 1
            try:
                return await asyncio.to_thread(
                    parse_and_normalise,
                    content,
                    dict(headers),
                    final_url,
                    feed_url,
                    now,
                    budget,
                    False,  # features later, for the new and changed entries only
                )
            except ParseError as exc:
                if self.setting == 0 or not exc.message.startswith(OVER_BUDGET):
                    raise
                log.info("%s: over %g s to parse here; parsing it in a worker", feed_url, budget)
            finally:
                self._inline -= 1
        self._cancel_idle_step()
        self._in_pool += 1
        try:
            return await self._in_worker(content, headers, final_url, feed_url, now)
        finally:
            self._in_pool -= 1
            if self._in_pool == 0 and stop_pool_when_idle(self.setting):
                loop = asyncio.get_running_loop()
                self._idle_step = loop.call_later(POOL_IDLE_SECONDS, self._stop_idle)

    def _cancel_idle_step(self) -> None:
        if self._idle_step is not None:
            self._idle_step.cancel()
            self._idle_step = None

    def _stop_idle(self) -> None:
        """Stop the workers after ``POOL_IDLE_SECONDS`` without a document (auto only)."""
        self._idle_step = None
        if self._executor is None or self._in_pool:
            return
        executor, self._executor = self._executor, None
        # Nothing is queued: shutting down only lets the processes exit.
        executor.shutdown(wait=False, cancel_futures=True)
        log.info("parse workers stopped after %.0f s without work", POOL_IDLE_SECONDS)
        release_free_memory()  # the backlog is over: what its results took is free now
        self._stopped = weakref.ref(executor)
        self._tracker_checks = TRACKER_CHECKS
        self._idle_step = asyncio.get_running_loop().call_later(
            TRACKER_CHECK_SECONDS, self._stop_tracker
        )

    def _stop_tracker(self) -> None:
        """Stop the resource tracker once the stopped workers are gone (``processes.py``)."""
        self._idle_step = None
        if self._executor is not None:
            return  # started again meanwhile: the tracker is needed
        # Gone once collected, its queues' semaphores given back with it (reference counting
        # frees it when its threads end; a full collection here would stall the event loop
        # for as long as it takes to walk the match index).
        gone = self._stopped is None or self._stopped() is None
        if gone and stop_resource_tracker():
            log.info("multiprocessing resource tracker stopped: no child process left")
            return
        self._tracker_checks -= 1
        if self._tracker_checks > 0:
            self._idle_step = asyncio.get_running_loop().call_later(
                TRACKER_CHECK_SECONDS, self._stop_tracker
            )

    async def _in_worker(
        self,
        content: bytes,
        headers: Mapping[str, str],
        final_url: str,
        feed_url: str,
        now: datetime,
    ) -> Parsed:
        loop = asyncio.get_running_loop()
        args = (content, dict(headers), final_url, feed_url, now, self.cpu_seconds)
        for attempt in (1, 2):
            executor = self._executor or self._start()
            try:
                outcome = await loop.run_in_executor(executor, _job, *args)
            except BrokenProcessPool as exc:
                if self._executor is executor:
                    self._executor = None
                    executor.shutdown(wait=False, cancel_futures=True)
                if attempt == 2:
                    raise ParseError(final_url, PARSER_DIED) from exc
                continue
            if isinstance(outcome, tuple):
                url, message = outcome
                raise ParseError(url, message)
            return outcome
        raise AssertionError("unreachable")
