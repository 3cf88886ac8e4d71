"""What every child process of the service needs: how it is started, that it dies with its
parent, and how its garbage collector is tuned. Used by the parse pool and the match index
process; it imports nothing of the project, so neither has to import upward.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import multiprocessing
import os
import signal
import sys
import threading
import weakref
from collections.abc import Iterator
from multiprocessing import resource_tracker
from multiprocessing.context import SpawnContext, SpawnProcess
from typing import Any

__all__ = [
    "GC_YOUNG_THRESHOLD",
    "MALLOC_ARENAS",
    "MALLOC_FIXED_THRESHOLD",
    "SPAWN",
    "detach_from_resource_tracker",
    "exit_with_parent",
    "mark_detached",
    "release_free_memory",
    "stop_resource_tracker",
    "tune_collector",
    "tune_malloc",
]


@contextlib.contextmanager
def _interrupts_ignored() -> Iterator[None]:
    """SIGINT ignored in this process while the block runs (main thread only; elsewhere the
    disposition cannot be changed and the child ignores it itself, in ``exit_with_parent``)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class _QuietProcess(SpawnProcess):
    """A spawned child that never sees Ctrl-C.

    Ctrl-C in a terminal sends SIGINT to the whole foreground process group: every child
    raised KeyboardInterrupt wherever it was and printed its traceback, while the parent, which
    stops its children itself, was already shutting down. An ignored signal stays ignored
    across exec, and Python then installs no KeyboardInterrupt handler, so the child is
    started with SIGINT ignored: it is covered from its first instruction, module imports
    included.
    """

    def start(self) -> None:
        with _interrupts_ignored():
            super().start()


class _QuietSpawnContext(SpawnContext):
    Process = _QuietProcess


# Children are started with "spawn", not forked: the service holds an event loop, threads and
# database connections, and forking copies them into the child, which is unsafe.
SPAWN = _QuietSpawnContext()

# prctl(2) option: the signal the kernel sends this process when its parent dies.
_PR_SET_PDEATHSIG = 1

# The collector looks at the youngest objects every this many net allocations (CPython's
# default is 700). The match index is millions of small long-lived objects, which every
# older-generation pass walks again: in the first cycle of `python -m benchmarks.poll --feeds
# 1000`, collections took 5.7 of 58 CPU seconds at 700 and 1.8 s at 20,000, where one young
# collection takes ~20 ms (far below a poll's latency).
GC_YOUNG_THRESHOLD = 20_000

# glibc gives each thread that allocates its own malloc arena (up to 8 per core), and memory
# freed in one stays with that arena: the threads that parse documents, render pages and run
# the store each kept a few MB after a poll. `python -m benchmarks.footprint --feeds 200`:
# 238 MB steady with glibc's default, 228 MB with two arenas (MALLOC_ARENA_MAX=2), at the same
# poll time (15.2 and 14.7 s).
MALLOC_ARENAS = 2
# Blocks from this size up get a mapping of their own, given back when freed, and the heap is
# trimmed once this much is free at its top. glibc starts at these values but raises both each
# time a mapped block is freed, up to 32 MB: after the large temporaries of a poll (batches
# from the parse workers, pickles, dict tables being resized) the heap then kept what they
# freed. Fixed, after 200 feeds (`python -m benchmarks.footprint`): 188.7 MB steady against
# 192-196 MB in the runs around it; in `benchmarks.poll --feeds 1000` the service process
# spent 21.0 s of CPU on a first poll with them fixed, 20.5 s with them at 32 MB.
MALLOC_FIXED_THRESHOLD = 128 * 1024
# mallopt(3) parameter numbers in glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
# The operator's environment wins over each setting (glibc reads these at start).
_MALLOC_SETTINGS = (
    ("MALLOC_ARENA_MAX", _M_ARENA_MAX, MALLOC_ARENAS),
    ("MALLOC_TRIM_THRESHOLD_", _M_TRIM_THRESHOLD, MALLOC_FIXED_THRESHOLD),
    ("MALLOC_MMAP_THRESHOLD_", _M_MMAP_THRESHOLD, MALLOC_FIXED_THRESHOLD),
)


def exit_with_parent(parent: int) -> None:
    """Make a child die with the service: a SIGKILLed service (or one killed by the OOM
    killer) must not leave parser or index processes, and through them the multiprocessing
    resource tracker, running forever. A child also ignores Ctrl-C: its parent stops it (see
    ``_QuietProcess``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def tune_malloc() -> None:
    """Hold the process to MALLOC_ARENAS malloc arenas and fix glibc's mapping and trimming
    thresholds at MALLOC_FIXED_THRESHOLD (glibc only; elsewhere nothing to do). Called before
    the process starts its threads: an arena made earlier stays."""
    mallopt = _glibc("mallopt")
    if mallopt is None:
        return
    for variable, parameter, value in _MALLOC_SETTINGS:
        if variable not in os.environ:
            mallopt(parameter, value)


def release_free_memory() -> None:
    """Give the heap's free pages back to the system (glibc's malloc_trim; elsewhere nothing
    to do). For the end of a burst of work: a poll's temporaries are freed but their pages stay
    with the process until trimmed. `python -m benchmarks.footprint --feeds 200`, trimming
    every 5 s: 181 -> 178 MB steady. It walks the heap: a few milliseconds."""
    trim = _glibc("malloc_trim")
    if trim is not None:
        trim(0)


def _glibc(name: str) -> Any:
    """The C library's function ``name`` on Linux, where glibc's malloc runs; else None."""
    if not sys.platform.startswith("linux"):
        return None
    return getattr(ctypes.CDLL(None), name, None)


def tune_collector() -> None:
    """Collect less often: see GC_YOUNG_THRESHOLD."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


# Children known to have closed their end of the resource tracker's pipe (see
# ``detach_from_resource_tracker``): they do not keep the tracker running.
_DETACHED: weakref.WeakSet[multiprocessing.process.BaseProcess] = weakref.WeakSet()


def detach_from_resource_tracker() -> bool:
    """In a spawned child that creates no named semaphore or shared memory (the match index
    process): close the tracker pipe it was given, so that the tracker can stop while this
    child lives. The tracker exits once every end of its pipe is closed; the match index
    process held one for as long as it ran, and with it the tracker (about 12 MB) stayed for
    good on a service with 500 feeds or more. ``_fd`` is private; where it is missing, nothing
    changes. Should the child need the tracker after all, multiprocessing starts one anew.
    True when this process holds no end of the pipe any more."""
    tracker = resource_tracker._resource_tracker
    if not hasattr(tracker, "_fd"):
        return False
    fd = tracker._fd
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)
        tracker._fd = None
    return True


def mark_detached(process: multiprocessing.process.BaseProcess) -> None:
    """Record, in the parent, that ``process`` has called ``detach_from_resource_tracker``."""
    _DETACHED.add(process)


def stop_resource_tracker() -> bool:
    """Stop multiprocessing's resource tracker once no child process that holds its pipe is
    left (children detached from it do not count); True if it did.

    Starting a spawned child starts the tracker, a Python process of its own (about 13 MB),
    and nothing stops it when the children are gone: a service whose parse workers stopped
    after a backlog kept it for good. The next child started starts a new one. Call it once
    the stopped children's queues are collected: a semaphore they give back later would
    start a tracker again (memory only). ``_stop`` is private; where it is missing the
    tracker stays.
    """
    # active_children() also reaps the children that have exited.
    if any(child not in _DETACHED for child in multiprocessing.active_children()):
        return False
    tracker = resource_tracker._resource_tracker
    stop = getattr(tracker, "_stop", None)
    if stop is None or getattr(tracker, "_fd", None) is None:
        return False
    stop()
    return True
