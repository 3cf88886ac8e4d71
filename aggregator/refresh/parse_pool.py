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
import math
import os
import resource
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
from aggregator.refresh.processes import SPAWN, exit_with_parent
from aggregator.types import Entry

__all__ = [
    "HARD_LIMIT_FACTOR",
    "PARSER_DIED",
    "ParsePool",
    "Parsed",
    "default_workers",
    "parse_and_normalise",
]

# The error of a document whose parse ended the worker twice (its CPU rlimit or memory).
PARSER_DIED = "the parser process died on this document"
# The worker's CPU rlimit, as a multiple of the parse budget (plus one second, its granularity):
# only a parse the budget's timer could not interrupt gets there, and it ends the worker.
HARD_LIMIT_FACTOR = 2


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
    # Each entry's matching features, in the same order.
    features: tuple[Features, ...]


def parse_and_normalise(
    content: bytes,
    headers: Mapping[str, str],
    final_url: str,
    feed_url: str,
    now: datetime,
    cpu_seconds: float | None = PARSE_CPU_SECONDS,
) -> Parsed:
    """Parse ``content`` (found at ``final_url``) within ``cpu_seconds`` of CPU time, normalise
    its entries for ``feed_url`` and extract their matching features (one per entry, in the
    same order)."""
    parsed = parse_feed(content, headers, final_url, cpu_seconds=cpu_seconds)
    entries = tuple(normalise_entry(e, feed_url, now) for e in parsed.entries)
    dated = tuple(e.published for e in parsed.entries if e.published is not None)
    feats = tuple(features(e) for e in entries)
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
    """A process pool for ``parse_and_normalise``; ``async with ParsePool() as pool``."""

    def __init__(
        self, workers: int | None = None, *, cpu_seconds: float | None = PARSE_CPU_SECONDS
    ) -> None:
        if workers is not None and workers <= 0:
            raise ValueError(f"workers must be positive, not {workers!r}")
        self.workers = workers or default_workers()
        self.cpu_seconds = cpu_seconds
        self._executor: ProcessPoolExecutor | None = None

    def _start(self) -> ProcessPoolExecutor:
        executor = ProcessPoolExecutor(
            self.workers, mp_context=SPAWN, initializer=_warm_up, initargs=(os.getpid(),)
        )
        self._executor = executor
        return executor

    async def __aenter__(self) -> ParsePool:
        self._start()
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
        """``parse_and_normalise`` in a worker process; raises ``ParseError`` like it."""
        if self._executor is None:
            raise RuntimeError("ParsePool must be used as 'async with ParsePool() as pool'")
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
