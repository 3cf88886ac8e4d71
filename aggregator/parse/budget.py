"""A CPU-time budget for parsing one document, so no document can hold a parser for long.

``cpu_budget`` arms a profiling timer (``ITIMER_PROF``: CPU time of this process, user and
system) around the parse; when it fires, the parse stops with ``ParseError`` naming the
budget, and that becomes the feed's recorded error like any other parse error. A budget needs
signals, so it applies in the main thread of a process: the parse workers, ``inspect`` and
``feeds add``. Elsewhere (a parse in a helper thread) it is a no-op.

The timer interrupts Python code only; a parse stuck inside one C call (a regular expression,
say) is stopped by the parse worker's hard limit (``refresh/parse_pool.py``), which ends the
worker process itself.
"""

from __future__ import annotations

import signal
import threading
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


class _OverBudget(BaseException):
    """Raised by the timer's signal handler; a BaseException, so the parsers' own
    ``except Exception`` recovery cannot swallow it."""


def _over_budget(_signum: int, _frame: FrameType | None) -> None:
    raise _OverBudget


@contextmanager
def cpu_budget(url: str, seconds: float | None = PARSE_CPU_SECONDS) -> Iterator[None]:
    """Raise ``ParseError(url, ...)`` when the body uses more than ``seconds`` of CPU time."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if seconds is None or not usable:
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
