"""The match index kept in step with storage, in this process or in a process of its own.

The ``Matcher`` (``match/``) is pure: it knows nothing of the database. A ``StoryIndex`` owns
one and keeps it equal to what storage holds: it loads the stories of the match window at
start, applies recorded corrections (manual splits and merges, merges by other workers),
catches up with entries other workers stored, and rebuilds itself from storage when storage
refused what the index had already taken in.

Two implementations, one contract (``tests/test_story_index.py`` runs against both):

- ``LocalStoryIndex``: the matcher in this process. Used with an in-memory database (which
  no other process can open) and by tests.
- ``StoryIndexProcess``: the same ``LocalStoryIndex`` in a child process that opens the
  database itself, answering over a pipe. Matching is most of the CPU of a first poll
  (``Matcher.assign`` took 73% of the service's one busy core at 10,000 feeds); in a process
  of its own it gets the second core, and the service matches one feed while it stores the
  previous one (``Updater``). Only features go out and only assignments come back.

Every operation is atomic: calls from several threads are served one at a time. ``generation``
counts rebuilds: a match made in an earlier generation was made against an index that no
longer exists, and the caller must match again before storing it.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, Protocol

from aggregator.exceptions import AggregatorError, StorageError
from aggregator.match import Matcher
from aggregator.match.text import Features
from aggregator.storage.base import Storage
from aggregator.types import Assignment

__all__ = ["IndexDied", "LocalStoryIndex", "Matched", "StoryIndex", "StoryIndexProcess"]

log = logging.getLogger("aggregator.index")

# Entries read per query when loading the window: the whole window at once (a list of every
# entry, 100,000 of them at 2,000 feeds) took more memory than the index it builds.
LOAD_PAGE = 5_000

# Spawned, not forked: the service holds an event loop, threads and database connections.
_CONTEXT = multiprocessing.get_context("spawn")

# How long to wait for a child to exit when closing, before killing it.
_CLOSE_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Matched:
    """One feed's matching: an assignment per new entry (in order), the story merges to
    record (older story, younger story), and the generation the index was in."""

    assignments: tuple[Assignment, ...]
    merges: tuple[tuple[str, str], ...]
    generation: int


class StoryIndex(Protocol):
    """What the updater needs of the match index; see the module docstring."""

    @property
    def generation(self) -> int: ...

    def match(self, new: Sequence[Features], changed: Sequence[Features]) -> Matched:
        """Assign each of ``new`` to a story, replace the features of ``changed``."""

    def submit_match(self, new: Sequence[Features], changed: Sequence[Features]) -> Future[Matched]:
        """:meth:`match`, answered later (in submission order); may fail with ``IndexDied``."""

    def expire(self, now: datetime) -> None:
        """Drop the stories that left the match window."""

    def apply_corrections(self, now: datetime) -> bool:
        """Apply corrections recorded since the last look; True when any was new."""

    def catch_up(self) -> None:
        """Take in the entries other processes stored since the last look."""

    def mark_caught_up(self, seq: int) -> None:
        """Count the entries stored up to store sequence ``seq`` as seen: the newest one, read
        by the worker under the matching lock right after it stored what this index matched.
        The index holds those entries already; the next ``catch_up`` must not read them back
        (it would re-add each one, at the cost of matching it again, and move it to the end
        of its story). The index cannot read ``seq`` itself: it reads through a connection of
        its own, which sees the worker's writes only once the matching lock's transaction
        commits, and by then another worker may have stored more."""

    def rebuild(self, now: datetime) -> None:
        """Load the index again from storage (a new generation)."""

    def close(self) -> None:
        """Release what the index holds (its process, if any)."""


class LocalStoryIndex:
    """The matcher in this process, loaded from ``storage``."""

    def __init__(
        self,
        storage: Storage,
        window: timedelta,
        now: datetime,
        max_entries: int | None = None,
    ) -> None:
        """``max_entries``: the most entries held (see ``Matcher``); None for no bound."""
        self.storage = storage
        self.window = window
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._generation = 0
        self._load(now)

    @property
    def generation(self) -> int:
        return self._generation

    def _load(self, now: datetime) -> None:
        """The stories of the match window, read from storage, with every correction applied."""
        storage = self.storage
        # Read the sequence first: anything stored meanwhile is caught up later (and
        # deduplicated).
        seq = storage.newest_seq()
        corrections = storage.corrections()
        matcher = Matcher(window=self.window, max_entries=self.max_entries)
        for correction in corrections:
            if correction.kind == "merge":
                matcher.merge(correction.target_story_id, correction.story_id)
        since, after = now - self.window, None
        if self.max_entries is not None:
            since = storage.window_start(since, self.max_entries)
        while page := storage.window_page(since, after, LOAD_PAGE):
            for entry, story_id in page:
                matcher.add_known(entry, story_id)
            last = page[-1][0]
            after = (last.published, last.feed_url, last.entry_id)
        for correction in corrections:
            if correction.kind == "split" and correction.feed_url and correction.entry_id:
                matcher.forbid((correction.feed_url, correction.entry_id), correction.story_id)
        matcher.take_merges()  # replaying stored stories merges nothing new worth storing
        self._matcher = matcher
        self._seq = seq
        self._correction_id = max((c.id for c in corrections), default=0)

    def match(self, new: Sequence[Features], changed: Sequence[Features]) -> Matched:
        with self._lock:
            matcher = self._matcher
            assignments = tuple(matcher.assign_features(feats) for feats in new)
            for feats in changed:
                matcher.replace(feats)
            merges = tuple((m.into, m.other) for m in matcher.take_merges())
            return Matched(assignments, merges, self._generation)

    def submit_match(self, new: Sequence[Features], changed: Sequence[Features]) -> Future[Matched]:
        future: Future[Matched] = Future()
        future.set_result(self.match(new, changed))
        return future

    def expire(self, now: datetime) -> None:
        with self._lock:
            self._matcher.expire(now)

    def apply_corrections(self, now: datetime) -> bool:
        with self._lock:
            new = [c for c in self.storage.corrections() if c.id > self._correction_id]
            if not new:
                return False
            if any(c.kind == "split" for c in new):
                # A split moves one stored entry to a new story: rebuilding is simplest, and rare.
                self._rebuild(now)
                log.info("manual split recorded; match index rebuilt")
            else:
                for correction in new:
                    self._matcher.merge(correction.target_story_id, correction.story_id)
                self._correction_id = max(c.id for c in new)
            return True

    def catch_up(self) -> None:
        with self._lock:
            stored, self._seq = self.storage.entries_after(self._seq)
            matcher = self._matcher
            for item in stored:
                if matcher.story_of(item.entry.key) is None:
                    matcher.add_known(item.entry, item.story_id)
                else:
                    matcher.update_entry(item.entry)

    def mark_caught_up(self, seq: int) -> None:
        with self._lock:
            self._seq = max(self._seq, seq)

    def rebuild(self, now: datetime) -> None:
        with self._lock:
            self._rebuild(now)

    def _rebuild(self, now: datetime) -> None:
        self._load(now)
        self._generation += 1

    def close(self) -> None:
        pass


class IndexDied(AggregatorError):
    """The index process died with this call pending (the next call starts a fresh one), or
    while loading the index."""


class StoryIndexProcess:
    """A ``LocalStoryIndex`` in a child process that opens ``storage_url`` itself.

    Calls are queued on the pipe in order and answered in order by a reader thread, so a caller
    may submit the next feed's matching before the answer for the previous one arrives
    (``submit_match``): the child never waits for the service between two feeds.

    The child dies with this process (like the parse workers). If it dies on its own (killed,
    out of memory), the pending calls fail with ``IndexDied``; the next blocking call starts a
    fresh child, which loads the index from storage again (a new generation), and is retried
    once.
    """

    def __init__(
        self,
        storage_url: str,
        window: timedelta,
        clock: Callable[[], datetime],
        max_entries: int | None = None,
    ) -> None:
        self.storage_url = storage_url
        self.window = window
        self.max_entries = max_entries
        self.clock = clock
        self._send_lock = threading.Lock()  # one message on the pipe at a time, in order
        self._restart_lock = threading.Lock()
        self._pending: deque[Future[Any]] = deque()
        # generation = the generations of the children before this one + this child's own.
        self._earlier = 0
        self._child_generation = 0
        self._conn: Connection | None = None
        self._process: BaseProcess | None = None
        self._reader: threading.Thread | None = None
        self._start()

    @property
    def generation(self) -> int:
        return self._earlier + self._child_generation

    @property
    def pid(self) -> int | None:
        """The child's process id (for tests and diagnostics)."""
        return None if self._process is None else self._process.pid

    def _start(self) -> None:
        ours, theirs = _CONTEXT.Pipe()
        process = _CONTEXT.Process(
            target=_serve,
            args=(
                theirs,
                self.storage_url,
                self.window,
                self.max_entries,
                self.clock(),
                os.getpid(),
            ),
            name="aggregator-index",
            daemon=True,
        )
        process.start()
        theirs.close()
        self._process = process
        self._child_generation = 0
        try:
            try:
                _unpack(ours.recv())  # "ready" once the index is loaded, or what stopped it
            except EOFError:
                process.join()
                raise IndexDied(
                    "the match index process exited while loading the index"
                    f" (exit code {process.exitcode}; see its error above)"
                ) from None
        except BaseException:
            ours.close()
            self._process = None
            process.kill()
            process.join()
            raise
        self._conn = ours
        self._reader = threading.Thread(
            target=self._read, args=(ours,), name="aggregator-index-reader", daemon=True
        )
        self._reader.start()

    def _read(self, conn: Connection) -> None:
        """Resolve the pending calls in order as their answers arrive."""
        while True:
            try:
                answer = conn.recv()
            except (EOFError, OSError):
                break
            future = self._pending.popleft()
            self._child_generation = answer[2]
            try:
                future.set_result(_unpack(answer))
            except BaseException as exc:
                future.set_exception(exc)
        with self._send_lock:
            if self._conn is conn:
                self._conn = None
                conn.close()
            while self._pending:
                self._pending.popleft().set_exception(IndexDied("the match index process died"))

    def submit(self, method: str, *args: Any) -> Future[Any]:
        """Queue a call; its future fails with ``IndexDied`` if the child dies first."""
        future: Future[Any] = Future()
        with self._send_lock:
            if self._conn is None:
                future.set_exception(IndexDied("the match index process is not running"))
                return future
            self._pending.append(future)
            # If the pipe is broken, the reader sees it closed and fails every pending call.
            with contextlib.suppress(OSError):
                self._conn.send((method, args))
        return future

    def _call(self, method: str, *args: Any) -> Any:
        return self._answered(lambda: self.submit(method, *args), method)

    def _answered(self, submit: Callable[[], Future[Any]], method: str) -> Any:
        """Wait for ``submit()``'s answer; if the child died first, start a fresh one and
        submit once more."""
        for attempt in (1, 2):
            try:
                return submit().result()
            except IndexDied as exc:
                if attempt == 2:
                    raise StorageError(
                        f"the match index process died twice during {method}"
                    ) from exc
                self._restart(exc)
        raise AssertionError("unreachable")

    def _restart(self, cause: Exception) -> None:
        with self._restart_lock:
            if self._conn is not None:
                return  # another caller restarted it already
            log.warning("match index process died (%s); loading it again", cause)
            self._stop(kill=True)
            self._earlier += self._child_generation + 1
            self._start()

    def submit_match(self, new: Sequence[Features], changed: Sequence[Features]) -> Future[Matched]:
        """:meth:`match` without waiting: answers come back in the order of submission."""
        earlier = self._earlier
        answer = self.submit("match", tuple(new), tuple(changed))
        result: Future[Matched] = Future()

        def done(answer: Future[Any]) -> None:
            exc = answer.exception()
            if exc is not None:
                result.set_exception(exc)
                return
            matched: Matched = answer.result()
            # The child counts its own generations; ours adds those of the children before.
            result.set_result(replace(matched, generation=earlier + matched.generation))

        answer.add_done_callback(done)
        return result

    def match(self, new: Sequence[Features], changed: Sequence[Features]) -> Matched:
        matched: Matched = self._answered(lambda: self.submit_match(new, changed), "match")
        return matched

    def expire(self, now: datetime) -> None:
        self._call("expire", now)

    def apply_corrections(self, now: datetime) -> bool:
        new: bool = self._call("apply_corrections", now)
        return new

    def catch_up(self) -> None:
        self._call("catch_up")

    def mark_caught_up(self, seq: int) -> None:
        self._call("mark_caught_up", seq)

    def rebuild(self, now: datetime) -> None:
        self._call("rebuild", now)

    def close(self) -> None:
        with self._restart_lock:
            self._stop(kill=False)

    def _stop(self, *, kill: bool) -> None:
        with self._send_lock:
            conn, process, reader = self._conn, self._process, self._reader
            self._conn = self._process = self._reader = None
            if conn is not None and not kill:
                with contextlib.suppress(OSError):  # it died already
                    conn.send(("stop", ()))
        if process is not None:
            if kill:
                process.kill()
            process.join(_CLOSE_TIMEOUT_S)
            if process.is_alive():
                process.kill()
                process.join()
        if reader is not None:
            reader.join()  # the child is gone: the reader saw the pipe close
        if conn is not None:
            conn.close()


def _unpack(answer: tuple[str, Any, int]) -> Any:
    """The value of an answer from the child, or the error it reports, raised."""
    kind, value, _generation = answer
    if kind == "storage_error":
        raise StorageError(value)
    if kind == "error":
        raise RuntimeError(f"match index process: {value}")
    return value


def _serve(
    conn: Connection,
    storage_url: str,
    window: timedelta,
    max_entries: int | None,
    now: datetime,
    parent: int,
) -> None:
    """The child's loop: load the index, then answer calls until told to stop.

    Each answer is ``(kind, value, generation)``: "ok", "storage_error" (raised again as
    ``StorageError`` by the caller) or "error" (a bug, raised as ``RuntimeError``).
    """
    from aggregator.parallel import exit_with_parent
    from aggregator.runtime import tune_collector
    from aggregator.storage import open_storage

    exit_with_parent(parent)
    tune_collector()
    storage: Storage | None = None
    try:
        storage = open_storage(storage_url)
        index = LocalStoryIndex(storage, window, now, max_entries)
    except StorageError as exc:
        conn.send(("storage_error", str(exc), 0))
        if storage is not None:
            storage.close()
        return
    try:
        gc.freeze()  # the loaded index lives long: keep full collections from walking it
        conn.send(("ready", None, 0))
        while True:
            try:
                method, args = conn.recv()
            except EOFError:  # the service closed its end
                return
            if method == "stop":
                return
            try:
                result = getattr(index, method)(*args)
            except StorageError as exc:
                conn.send(("storage_error", str(exc), index.generation))
            except Exception as exc:  # a bug: reported to the caller, who raises it
                log.exception("match index process: %s failed", method)
                conn.send(("error", f"{method}: {exc!r}", index.generation))
            else:
                conn.send(("ok", result, index.generation))
    finally:
        storage.close()
