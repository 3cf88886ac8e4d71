"""What every child process of the service needs: how it is started, that it dies with its
parent, and how its garbage collector is tuned. Used by the parse pool and the match index
process; it imports nothing of the project, so neither has to import upward.
"""

from __future__ import annotations

import ctypes
import gc
import multiprocessing
import os
import signal
import sys

__all__ = ["GC_YOUNG_THRESHOLD", "SPAWN", "exit_with_parent", "tune_collector"]

# Children are started with "spawn", not forked: the service holds an event loop, threads and
# database connections, and forking copies them into the child, which is unsafe.
SPAWN = multiprocessing.get_context("spawn")

# prctl(2) option: the signal the kernel sends this process when its parent dies.
_PR_SET_PDEATHSIG = 1

# The collector looks at the youngest objects every this many net allocations (CPython's
# default is 700). The match index is millions of small long-lived objects, which every
# older-generation pass walks again: in the first cycle of `python -m benchmarks.poll --feeds
# 1000`, collections took 5.7 of 58 CPU seconds at 700 and 1.8 s at 20,000, where one young
# collection takes ~20 ms (far below a poll's latency).
GC_YOUNG_THRESHOLD = 20_000


def exit_with_parent(parent: int) -> None:
    """Make a child die with the service: a SIGKILLed service (or one killed by the OOM
    killer) must not leave parser or index processes, and through them the multiprocessing
    resource tracker, running forever."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def tune_collector() -> None:
    """Collect less often: see GC_YOUNG_THRESHOLD."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)
