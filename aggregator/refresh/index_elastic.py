"""The match index in a process of its own only while there is a backlog: ``ElasticStoryIndex``.

A first poll of hundreds of feeds is mostly matching, and the index process gives it a second
core (``index_process``). Once that backlog is matched, a steady cycle brings a few entries a
feed, which one core matches in milliseconds, and the second process only costs memory: its
own interpreter, libraries and meaning model, about 60 MB after 1,000 feeds
(``python -m benchmarks.footprint``). So with ``workers: auto`` the index comes back into the
service process once no match has been asked for ``INDEX_IDLE_SECONDS``: a ``LocalStoryIndex``
loads the window from storage beside the child (as at a restart), takes over, catches up with
what the child matched meanwhile, and the child stops.

The takeover is a new generation (``index.StoryIndex``): a match the child made that is not
stored yet is matched again by the new index before it is stored, as after a rebuild. A window
of more than ``HANDBACK_MAX_ENTRIES`` stays in the child: loading it beside the child would
hold both at once.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import replace
from datetime import datetime

from aggregator.exceptions import AggregatorError
from aggregator.match.text import Features
from aggregator.refresh.index import LocalStoryIndex, Matched, StoryIndex, shifted
from aggregator.refresh.index_process import StoryIndexProcess
from aggregator.refresh.processes import release_free_memory
from aggregator.refresh.workers import POOL_IDLE_SECONDS

__all__ = ["HANDBACK_MAX_ENTRIES", "INDEX_IDLE_SECONDS", "ElasticStoryIndex"]

log = logging.getLogger("aggregator.index")

# Seconds without a match before the index comes back into the service process: the parse
# workers' idle time, so that both go once a poll's stragglers are in.
INDEX_IDLE_SECONDS = POOL_IDLE_SECONDS
# Most entries in the window for the index to come back: the service loads it while the child
# still holds it, so for a while both take memory (about 2.5 KB an entry of feedgen's with the
# meaning signal, 100,000 entries 250 MB). A larger window is a service polling thousands of
# feeds, where the second process is a small share of the whole.
HANDBACK_MAX_ENTRIES = 100_000
# How often the idle time is looked at.
CHECK_SECONDS = 1.0
# A generation of this index: the takeovers so far times this, plus the current index's own
# (which counts its rebuilds). An answer carries the generation of the index that gave it.
_EPOCH = 1 << 32


class ElasticStoryIndex:
    """A ``StoryIndexProcess`` until it has been idle, then a ``LocalStoryIndex`` made by
    ``load_local`` (see the module docstring). Every call goes to the current one."""

    def __init__(
        self,
        child: StoryIndexProcess,
        load_local: Callable[[], LocalStoryIndex],
        clock: Callable[[], datetime],
        *,
        idle_seconds: float = INDEX_IDLE_SECONDS,
        max_entries: int = HANDBACK_MAX_ENTRIES,
    ) -> None:
        self._load_local = load_local
        self._clock = clock
        self._idle_seconds = idle_seconds
        self._max_entries = max_entries
        # Held while a call is handed to the current index, and while the takeover swaps it.
        self._lock = threading.Lock()
        self._current: StoryIndex = child
        self._child: StoryIndexProcess | None = child
        self._epoch = 0
        self._last_match = time.monotonic()
        self._closed = threading.Event()
        self._watcher = threading.Thread(
            target=self._watch, name="aggregator-index-handback", daemon=True
        )
        self._watcher.start()

    @property
    def in_own_process(self) -> bool:
        """Whether the index is still in its process (for tests and benchmarks)."""
        return self._child is not None

    @property
    def pid(self) -> int | None:
        """The index process's id while the index is in it (for benchmarks and diagnostics)."""
        child = self._child
        return None if child is None else child.pid

    @property
    def generation(self) -> int:
        with self._lock:
            return self._earlier() + self._current.generation

    def _earlier(self) -> int:
        """What the current index's generations count from (see ``_EPOCH``); under the lock."""
        return self._epoch * _EPOCH

    def submit_match(self, new: Sequence[Features], changed: Sequence[Features]) -> Future[Matched]:
        with self._lock:
            self._last_match = time.monotonic()
            return shifted(self._current.submit_match(new, changed), self._earlier())

    def match(self, new: Sequence[Features], changed: Sequence[Features]) -> Matched:
        # Held throughout: a child that died is started again by its own ``match``, which
        # must not happen to a child the takeover has just stopped.
        with self._lock:
            self._last_match = time.monotonic()
            matched = self._current.match(new, changed)
            return replace(matched, generation=self._earlier() + matched.generation)

    def expire(self, now: datetime) -> None:
        with self._lock:
            self._current.expire(now)

    def apply_corrections(self, now: datetime) -> bool:
        with self._lock:
            return self._current.apply_corrections(now)

    def catch_up(self) -> None:
        with self._lock:
            self._current.catch_up()

    def mark_caught_up(self, seq: int) -> None:
        with self._lock:
            self._current.mark_caught_up(seq)

    def rebuild(self, now: datetime) -> None:
        with self._lock:
            self._current.rebuild(now)

    def close(self) -> None:
        """Stop the current index; a load in progress is waited for (and then dropped)."""
        self._closed.set()
        if self._watcher is not threading.current_thread():
            self._watcher.join()
        with self._lock:
            self._current.close()

    def _watch(self) -> None:
        """Hand the index back once it has been idle (in its own thread)."""
        next_look = 0.0
        while not self._closed.wait(CHECK_SECONDS):
            child = self._child
            if child is None:
                return
            now = time.monotonic()
            if now - self._last_match < self._idle_seconds or now < next_look:
                continue
            try:
                if child.entries() > self._max_entries:
                    next_look = now + self._idle_seconds  # the window shrinks slowly
                    continue
                self._hand_back(child)
            except AggregatorError as exc:  # storage unreadable, the child died: later
                log.warning("the match index stays in its process for now: %s", exc)
                next_look = now + self._idle_seconds

    def _hand_back(self, child: StoryIndexProcess) -> None:
        """Load the index here, swap it in and stop the child, unless a match came meanwhile."""
        began = time.monotonic()
        local = self._load_local()  # beside the child, which goes on matching meanwhile
        with self._lock:
            if self._closed.is_set() or self._last_match > began:
                local.close()  # a backlog again, or the service stops: the child stays
                return
            try:
                # What the child matched and the service stored while this index loaded.
                local.catch_up()
                local.apply_corrections(self._clock())
            except BaseException:
                local.close()  # the child stays, and is asked again after the next idle time
                raise
            self._epoch += 1
            self._current = local
            self._child = None
        gc.freeze()  # the loaded index lives long: keep full collections from walking it
        child.close()
        release_free_memory()  # what the load's pages of rows, features and vectors took
        log.info(
            "match index back in the service process (loaded in %.1f s); its process stopped",
            time.monotonic() - began,
        )
