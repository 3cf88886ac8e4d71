"""The match index kept in step with storage, in this process or in a process of its own.

The ``Matcher`` (``match/``) is pure: it knows nothing of the database. A ``StoryIndex`` owns
one and keeps it equal to what storage holds: it loads the stories of the match window at
start, applies recorded corrections (manual splits and merges, merges by other workers),
catches up with entries other workers stored, and rebuilds itself from storage when storage
refused what the index had already taken in.

Two implementations, one contract (``tests/test_story_index.py`` runs against both):

- ``LocalStoryIndex`` (here): the matcher in this process, and where the ``Matcher`` is built
  (``_load``). Used with an in-memory database (which no other process can open) and by tests.
- ``StoryIndexProcess`` (``index_process``): the same ``LocalStoryIndex`` in a child process,
  answering over a pipe; the service answers its reads of storage (``index_reads``). Matching
  is most of the CPU of a first poll (``Matcher.assign`` took 73% of the service's one busy
  core at 10,000 feeds); in a process of its own it gets the second core, and the service
  matches one feed while it stores the previous one (``store.PipelinedStore``). Only features
  go out and only assignments come back.

Every operation is atomic: calls from several threads are served one at a time. ``generation``
counts rebuilds: a match made in an earlier generation was made against an index that no
longer exists, and the caller must match again before storing it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from aggregator.exceptions import AggregatorError
from aggregator.match import Matcher
from aggregator.match.embedding import load_embedder
from aggregator.match.text import Features
from aggregator.refresh.index_reads import IndexReads
from aggregator.types import DEFAULT_SEMANTIC, Assignment, SemanticSignal

__all__ = ["IndexDied", "LocalStoryIndex", "Matched", "StoryIndex", "shifted"]

log = logging.getLogger("aggregator.index")

# Entries read per query when loading the window: the whole window at once (a list of every
# entry, 100,000 of them at 2,000 feeds) took more memory than the index it builds. A page's
# entries, features and vectors are alive together, and what they took stays in the heap as
# holes between the index's objects: loading 50,000 stored feedgen entries grew the process by
# 320 MB with pages of 5,000, 265 with 1,000 and 259 with 500, in 15.0-15.5, 15.0-15.5 and
# 16.0 s of CPU (``docs/architecture.md``, 2026-12-07).
LOAD_PAGE = 1_000


@dataclass(frozen=True, slots=True)
class Matched:
    """One feed's matching: an assignment per new entry (in order), the story merges to
    record (older story, younger story), and the generation the index was in."""

    assignments: tuple[Assignment, ...]
    merges: tuple[tuple[str, str], ...]
    generation: int


def shifted(answer: Future[Matched], offset: int) -> Future[Matched]:
    """``answer`` with ``offset`` added to its generation: an index that holds others counts
    their generations after those of the ones before (the index process's children, the
    elastic index's takeovers)."""
    result: Future[Matched] = Future()

    def done(answer: Future[Matched]) -> None:
        exc = answer.exception()
        if exc is not None:
            result.set_exception(exc)
            return
        matched = answer.result()
        result.set_result(replace(matched, generation=offset + matched.generation))

    answer.add_done_callback(done)
    return result


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
        storage: IndexReads,
        window: timedelta,
        now: datetime,
        max_entries: int | None = None,
        semantic: SemanticSignal = DEFAULT_SEMANTIC,
    ) -> None:
        """``max_entries``: the most entries held (see ``Matcher``); None for no bound.
        ``semantic``: the meaning signal (``settings.semantic``, ``match/embedding.py``)."""
        self.storage = storage
        self.window = window
        self.max_entries = max_entries
        self.embedder = load_embedder(semantic)
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
        # Merges are not replayed: the window's entries come with the stories that survived
        # them, and the splits' stories are resolved below. Every matcher merge is a
        # correction, so replaying them all cost a start time and memory that grew with the
        # database's age (100,000 rows: 0.45 s to read, and an alias each).
        newest_correction = storage.newest_correction_id()
        splits = storage.corrections(kind="split")
        matcher = Matcher(window=self.window, max_entries=self.max_entries, embedder=self.embedder)
        since, after = now - self.window, None
        if self.max_entries is not None:
            since = storage.window_start(since, self.max_entries)
        while page := storage.window_page(since, after, LOAD_PAGE):
            matcher.add_known_many(page)
            last = page[-1][0]
            after = (last.published, last.feed_url, last.entry_id)
        survivors = storage.surviving_stories({c.story_id for c in splits})
        for split in splits:
            if split.feed_url and split.entry_id:
                left = survivors.get(split.story_id, split.story_id)
                matcher.forbid((split.feed_url, split.entry_id), left)
        matcher.take_merges()  # replaying stored stories merges nothing new worth storing
        self._matcher = matcher
        self._seq = seq
        self._correction_id = newest_correction

    def match(self, new: Sequence[Features], changed: Sequence[Features]) -> Matched:
        with self._lock:
            matcher = self._matcher
            matcher.prime([*new, *changed])  # one embedding call for the feed's entries
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
            # Only the rows recorded since: every merge the matcher makes is one, and reading
            # them all on every call (each tick, and for each feed with a shared database)
            # grew with the age of the database.
            new = self.storage.corrections(after=self._correction_id)
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

    def entries(self) -> int:
        """Entries in the match window."""
        with self._lock:
            return self._matcher.entries

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
