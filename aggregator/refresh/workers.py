"""How many processes the service runs: the rule behind ``settings.workers``, pure.

Every extra Python process costs its own copy of the libraries (about 60-70 MB here), so a
home server polling a few dozen feeds should run one process, and a first poll of thousands
of feeds should use every core. The rule:

- **Parsing.** ``workers: auto`` (the default) parses a document in the service process, in a
  thread, when it is small (``INLINE_MAX_BYTES``), no other document is being parsed there
  (``INLINE_AT_ONCE``) and the workers are not running; a second document arriving meanwhile
  is a backlog, and it goes to the parse worker pool, which starts then (one worker per core),
  takes every document while it runs, and stops after ``POOL_IDLE_SECONDS`` without work.
  ``workers: 0`` parses every document in the service process; ``workers: N`` keeps N parse
  workers from the first document on.
- **Matching.** The match index runs in a process of its own (a second core for the matcher,
  which is most of a first poll's CPU) when ``workers`` is N, or when it is ``auto`` and the
  configuration lists at least ``INDEX_PROCESS_MIN_FEEDS`` feeds; otherwise in the service
  process. An in-memory database always keeps it in the service process (no other process
  can open it). The choice is made at start: restart after growing the feed list past it.
  With ``auto`` the process lasts only as long as the backlog: once nothing has been matched
  for a minute the index comes back into the service process (``index_elastic``), unless its
  window is too large to load twice.

A document parsed in the service process is under a CPU bound too (``parse.budget`` watches the
parsing thread's CPU clock): with ``auto`` a short one, ``INLINE_CPU_SECONDS``, past which the
document goes to a worker, which parses it under the full bound (and the worker's hard limit);
with ``workers: 0`` the full bound, past which it is the feed's parse error.
"""

from __future__ import annotations

# A news feed of 50 entries with summaries is 30-150 KB; 256 KiB parses in about 0.1 s, which
# a thread of the service process absorbs without the web pages or the poller noticing.
# Larger documents (and anything hostile that is large) go to a worker under the CPU bound.
INLINE_MAX_BYTES = 256 * 1024
# CPU seconds a document may take in the service process (auto) before it is handed to a
# worker instead. Ordinary feeds under INLINE_MAX_BYTES take 0.01-0.1 s; a hostile one of that
# size (nested unclosed tags through feedparser's loose parser) took 6 s, all of it holding
# the GIL the poller and the web pages need.
INLINE_CPU_SECONDS = 1.0
# Documents parsed in the service process at once: one. Parsing holds the GIL, so a second
# in-process parse would only wait; a second document is a backlog for the workers.
INLINE_AT_ONCE = 1
# Seconds without a document before the parse workers stop. Feeds are polled every few
# minutes at most, so idle workers would sit for minutes holding ~70 MB each; a minute covers
# the stragglers of one poll cycle, and restarting costs about a second per worker.
POOL_IDLE_SECONDS = 60.0
# Feeds from which ``auto`` runs the match index in its own process. Measured back to back
# with ``python -m benchmarks.footprint --feeds 1000`` (synthetic feeds of 50 entries, 2 cores):
# the first poll of 1,000 feeds took 99 s with the index in the service process and 72 s in
# its own, for 544 against 643 MB once settled. 200 feeds took 18-26 s in one process, against
# 33 s before this rule (index process and parse workers resident from the start). 500 lies
# between the measured counts: below it the second process's ~100 MB buys a few seconds once.
INDEX_PROCESS_MIN_FEEDS = 500


def parse_inline(
    workers: int | None, size: int, parsing_inline: int, *, pool_running: bool = False
) -> bool:
    """Whether a document of ``size`` bytes is parsed in the service process, with
    ``parsing_inline`` documents already being parsed there and the workers started or not
    (``workers`` None is auto). Started workers take every document: a parse in the service
    process holds the GIL that fetching and storing need (the steady update of
    ``benchmarks.peer --feeds 1000`` took 3.05 s when half its documents were parsed here
    while the workers idled, 2.02 s with every one in a worker)."""
    if workers == 0:
        return True
    if workers is not None or pool_running:
        return False
    return size <= INLINE_MAX_BYTES and parsing_inline < INLINE_AT_ONCE


def stop_pool_when_idle(workers: int | None) -> bool:
    """Whether the parse workers stop after ``POOL_IDLE_SECONDS`` without a document."""
    return workers is None


def index_in_own_process(workers: int | None, feeds: int, *, shareable: bool) -> bool:
    """Whether the match index runs in a process of its own (see the module docstring);
    ``shareable``: another process can open the database."""
    if not shareable or workers == 0:
        return False
    if workers is not None:
        return True
    return feeds >= INDEX_PROCESS_MIN_FEEDS


def index_comes_back(workers: int | None) -> bool:
    """Whether an index started in its own process comes back into the service process once
    idle (``index_elastic``): with ``auto``; ``workers: N`` keeps it in its process."""
    return workers is None


def describe(workers: int | None, *, index_own_process: bool) -> str:
    """The process model in words, for the service's start line."""
    where = "the service process"
    if index_own_process:
        where = "its own process" + (" for a backlog" if index_comes_back(workers) else "")
    if workers is None:
        parsing = "small documents parsed in the service process, workers for a backlog"
    elif workers == 0:
        parsing = "every document parsed in the service process"
    else:
        parsing = f"{workers} parse worker{'s' if workers != 1 else ''}"
    return f"workers {'auto' if workers is None else workers}: match index in {where}, {parsing}"
