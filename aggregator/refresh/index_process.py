"""The match index in a process of its own, on a second core: ``StoryIndexProcess``.

The child loads a ``LocalStoryIndex`` (``index``), takes features and answers with assignments
over a pipe, and dies with the service (``processes``). It never opens the database: the few
reads the index makes are asked of the service over the same pipe (``index_reads``), so the
child does not import the storage layer.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from datetime import datetime, timedelta
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from aggregator.exceptions import StorageError
from aggregator.match.text import Features
from aggregator.refresh.index import IndexDied, LocalStoryIndex, Matched, shifted
from aggregator.refresh.index_reads import READ, IndexReads, PipeReads, serve_read
from aggregator.refresh.processes import (
    SPAWN,
    detach_from_resource_tracker,
    exit_with_parent,
    mark_detached,
    release_free_memory,
    stop_resource_tracker,
    tune_collector,
    tune_malloc,
)
from aggregator.types import DEFAULT_SEMANTIC, SemanticSignal

__all__ = ["StoryIndexProcess"]

log = logging.getLogger("aggregator.index")

# Seconds without a call after which the child gives its heap's free pages back: the calls
# of one poll come in bursts (``processes.release_free_memory``).
TRIM_IDLE_SECONDS = 5.0
# How long to wait for a child to exit when closing, before killing it.
_CLOSE_TIMEOUT_S = 10.0


class StoryIndexProcess:
    """A ``LocalStoryIndex`` in a child process whose reads of storage this process answers
    from ``storage`` (in the thread that reads the child's answers, and while it loads).

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
        storage: IndexReads,
        window: timedelta,
        clock: Callable[[], datetime],
        max_entries: int | None = None,
        semantic: SemanticSignal = DEFAULT_SEMANTIC,
    ) -> None:
        self.storage = storage
        self.window = window
        self.max_entries = max_entries
        self.semantic = semantic
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
        ours, theirs = SPAWN.Pipe()
        process = SPAWN.Process(
            target=_serve,
            args=(
                theirs,
                self.window,
                self.max_entries,
                self.semantic,
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
                # "ready" once the index is loaded, saying whether the child let go of the
                # resource tracker's pipe; or what stopped it. Its reads come first.
                while (message := ours.recv())[0] == READ:
                    self._answer_read(ours, message)
                detached = _unpack(message)
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
        if detached:
            mark_detached(process)
        self._conn = ours
        self._reader = threading.Thread(
            target=self._read, args=(ours,), name="aggregator-index-reader", daemon=True
        )
        self._reader.start()
        # Spawning the child started multiprocessing's resource tracker (about 12 MB), which
        # a detached child does not need: stopped here, at every start (a child that died is
        # started again), it no longer stays for good on a service whose parse workers never
        # start (a restart with nothing due, for one).
        if stop_resource_tracker():
            log.info("multiprocessing resource tracker stopped: the index process needs none")

    def _read(self, conn: Connection) -> None:
        """Resolve the pending calls in order as their answers arrive."""
        while True:
            try:
                answer = conn.recv()
            except (EOFError, OSError):
                break
            if answer[0] == READ:  # the child reads storage for the call it serves
                self._answer_read(conn, answer)
                continue
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

    def _answer_read(self, conn: Connection, message: tuple[str, str, tuple[Any, ...]]) -> None:
        """Answer the child's read ``(READ, method, args)`` from ``storage``."""
        reply = serve_read(self.storage, message[1], message[2])
        # A broken pipe: the child died, which the next recv says.
        with self._send_lock, contextlib.suppress(OSError):
            conn.send(reply)

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
        # The child counts its own generations; ours adds those of the children before.
        earlier = self._earlier
        return shifted(self.submit("match", tuple(new), tuple(changed)), earlier)

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

    def entries(self) -> int:
        """Entries in the child's match window."""
        entries: int = self._call("entries")
        return entries

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
    window: timedelta,
    max_entries: int | None,
    semantic: SemanticSignal,
    now: datetime,
    parent: int,
) -> None:
    """The child's loop: load the index, then answer calls until told to stop.

    Each answer is ``(kind, value, generation)``: "ok", "storage_error" (raised again as
    ``StorageError`` by the caller) or "error" (a bug, raised as ``RuntimeError``).
    """
    exit_with_parent(parent)
    detached = detach_from_resource_tracker()  # told the parent with "ready"
    tune_collector()
    tune_malloc()
    reads = PipeReads(conn)
    try:
        index = LocalStoryIndex(reads, window, now, max_entries, semantic)
    except StorageError as exc:
        conn.send(("storage_error", str(exc), 0))
        return
    except EOFError:  # the service closed its end while the index loaded
        return
    gc.freeze()  # the loaded index lives long: keep full collections from walking it
    conn.send(("ready", detached, 0))
    trimmed = True
    while True:
        try:
            if not trimmed and not reads.pending(TRIM_IDLE_SECONDS):
                release_free_memory()  # a burst of calls is over
                trimmed = True
                continue
            method, args = reads.next_call()
        except EOFError:  # the service closed its end
            return
        trimmed = False
        if method == "stop":
            return
        try:
            result = getattr(index, method)(*args)
        except EOFError:  # gone while a read waited for its answer
            return
        except StorageError as exc:
            conn.send(("storage_error", str(exc), index.generation))
        except Exception as exc:  # a bug: reported to the caller, who raises it
            log.exception("match index process: %s failed", method)
            conn.send(("error", f"{method}: {exc!r}", index.generation))
        else:
            conn.send(("ok", result, index.generation))
