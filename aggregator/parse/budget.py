"""A CPU-time budget for parsing one document, so no document can hold a parser for long.

``cpu_budget`` arms a profiling timer (``ITIMER_PROF``: CPU time of this process, user and
system) around the parse; when it fires, the parse stops with ``ParseError`` naming the
budget, and that becomes the feed's recorded error like any other parse error. Signals reach
only the main thread, so in any other thread (a document the service parses itself, see
``refresh/workers.py``) a watchdog thread reads the parsing thread's own CPU clock every
``WATCH_SECONDS`` and, past the budget, raises the same stop in it
(``PyThreadState_SetAsyncExc``, which interrupts Python code as the signal handler does).

The timer interrupts Python code only; a parse stuck inside one C call (a regular expression,
say) is stopped by the parse worker's hard limit (``refresh/parse_pool.py``), which ends the
worker process itself.
"""

from __future__ import annotations

import ctypes
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from aggregator.exceptions import ParseError

__all__ = ["OVER_BUDGET", "PARSE_CPU_SECONDS", "cpu_budget"]

# CPU seconds one document may cost to parse. A 7.8 MiB RSS feed of 5,000 ordinary entries
# (above what the default 10 MiB max_bytes lets through once compressed text is counted) costs
# 1.9 s in feedparser; a document of nested <a> elements in feedparser's loose parser cost 124 s
# and 3 GB, and 20,000 "<!DOCTYPE " 77 s before that pattern was made linear (issue #19).
# Ten times the large ordinary feed.
PARSE_CPU_SECONDS = 20.0
# How the error of a document over its budget begins.
OVER_BUDGET = "parsing took more than"
# How often the watchdog of a parse in a thread reads that thread's CPU clock: the budget is
# overrun by at most this much, and the watchdog costs nothing measurable at this rate.
WATCH_SECONDS = 0.05


class _OverBudget(BaseException):
    """Raised by the timer's signal handler; a BaseException, so the parsers' own
    ``except Exception`` recovery cannot swallow it."""


def _over_budget(_signum: int, _frame: FrameType | None) -> None:
    raise _OverBudget


@contextmanager
def cpu_budget(url: str, seconds: float | None = PARSE_CPU_SECONDS) -> Iterator[None]:
    """Raise ``ParseError(url, ...)`` when the body uses more than ``seconds`` of CPU time."""
    if seconds is None:
        yield
        return
    if threading.current_thread() is not threading.main_thread():
        with _thread_budget(url, seconds):
            yield
        return
    if not hasattr(signal, "setitimer"):
        yield
        return
    previous = signal.signal(signal.SIGPROF, _over_budget)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)
    except _OverBudget:
        raise ParseError(url, f"{OVER_BUDGET} {seconds:g} s of CPU time") from None
    finally:
        signal.signal(signal.SIGPROF, previous)


@contextmanager
def _thread_budget(url: str, seconds: float) -> Iterator[None]:
    """``cpu_budget`` in a thread other than the main one (see the module docstring)."""
    ident = threading.get_ident()
    try:
        clock = time.pthread_getcpuclockid(ident)
    except (AttributeError, OSError):  # not on this platform: no budget
        yield
        return
    limit = time.clock_gettime(clock) + seconds
    done = threading.Event()
    fired = threading.Event()

    def watch() -> None:
        while not done.wait(WATCH_SECONDS):
            if time.clock_gettime(clock) > limit:
                fired.set()
                _raise_in(ident, _OverBudget)
                return

    watchdog = threading.Thread(target=watch, name="parse budget", daemon=True)
    watchdog.start()
    try:
        try:
            yield
        finally:
            done.set()
            watchdog.join()
            if fired.is_set():
                _raise_in(ident, None)  # withdraw a stop the body finished before receiving
    except _OverBudget:
        raise ParseError(url, f"{OVER_BUDGET} {seconds:g} s of CPU time") from None


def _raise_in(ident: int, exc: type[BaseException] | None) -> None:
    """Make thread ``ident`` raise ``exc`` at its next Python instruction (None withdraws)."""
    value = ctypes.py_object(exc) if exc is not None else ctypes.py_object()
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), value)
