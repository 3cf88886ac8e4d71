"""What the match index reads from storage, and those reads answered over the index's pipe.

``LocalStoryIndex`` reads storage only to load the window, catch up with other workers and
follow corrections: the seven methods of ``IndexReads``. The index process asks the service for
them over its pipe (``PipeReads``, answered by ``serve_read``) instead of opening the database
itself: importing the storage layer (SQLAlchemy and the schema) cost the index process about
30 MB of its own, held for as long as it runs, for a handful of queries (the index process
once started with an empty window: 57.3 MB with the storage layer, 28.8 MB without).

This module imports nothing from ``aggregator.storage`` at run time, so the index process
never loads it.

Messages on the pipe (``index_process`` carries the rest):

- child to service: ``(READ, method, args)``, a read asked while the child serves a call or
  loads the index;
- service to child: ``(READ, kind, value)``, its answer: ``kind`` "ok" with the value,
  "storage_error" (raised in the child as ``StorageError``) or "error" (a bug, ``RuntimeError``).

Calls from the service are ``(method, args)`` pairs: one that arrives while the child waits for
an answer is kept, in order, and served next (the service queues a feed's match before the
last one is answered).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Collection
from datetime import datetime
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, Protocol

from aggregator.exceptions import StorageError

if TYPE_CHECKING:
    from aggregator.storage.records import Correction, CorrectionKind
    from aggregator.types import Entry, StoredEntry

__all__ = ["READ", "IndexReads", "PipeReads", "serve_read"]

log = logging.getLogger("aggregator.index")

# Tag of a read and of its answer on the index's pipe; not a method of the index.
READ = "read"


class IndexReads(Protocol):
    """The reads of ``Storage`` the match index makes (see ``storage.base.Storage``)."""

    def newest_seq(self) -> int: ...

    def newest_correction_id(self) -> int: ...

    def corrections(
        self, after: int = 0, kind: CorrectionKind | None = None
    ) -> list[Correction]: ...

    def surviving_stories(self, story_ids: Collection[str]) -> dict[str, str]: ...

    def window_start(self, since: datetime, max_entries: int) -> datetime: ...

    def window_page(
        self, since: datetime, after: tuple[datetime, str, str] | None, limit: int
    ) -> list[tuple[Entry, str]]: ...

    def entries_after(self, seq: int) -> tuple[list[StoredEntry], int]: ...


# The methods of IndexReads: the only ones the service answers for the child.
READ_METHODS = frozenset(name for name in vars(IndexReads) if not name.startswith("_"))


def serve_read(storage: IndexReads, method: str, args: tuple[Any, ...]) -> tuple[str, str, Any]:
    """The answer to the child's read ``method(*args)`` on ``storage``, as sent back."""
    if method not in READ_METHODS:
        return (READ, "error", f"{method!r} is not a read of the match index")
    try:
        value = getattr(storage, method)(*args)
    except StorageError as exc:
        return (READ, "storage_error", str(exc))
    except Exception as exc:  # a bug: the child raises it for the call it serves
        log.exception("match index read %s failed", method)
        return (READ, "error", f"{method}: {exc!r}")
    return (READ, "ok", value)


class PipeReads:
    """``IndexReads`` in the index process: each read asked of the service over ``conn``.

    Raises ``EOFError`` when the service has gone (its end of the pipe closed).
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        # Calls that arrived while a read waited for its answer, oldest first.
        self._calls: deque[tuple[str, tuple[Any, ...]]] = deque()

    def pending(self, timeout: float) -> bool:
        """Whether a call is waiting, within ``timeout`` seconds."""
        return bool(self._calls) or self._conn.poll(timeout)

    def next_call(self) -> tuple[str, tuple[Any, ...]]:
        """The next call from the service: a kept one first, else the next on the pipe."""
        if self._calls:
            return self._calls.popleft()
        method, args = self._conn.recv()
        return method, args

    def _read(self, method: str, *args: Any) -> Any:
        self._conn.send((READ, method, args))
        while True:
            message = self._conn.recv()
            if message[0] != READ:
                self._calls.append(message)
                continue
            _, kind, value = message
            if kind == "storage_error":
                raise StorageError(value)
            if kind != "ok":
                raise RuntimeError(f"reading storage for the match index: {value}")
            return value

    def newest_seq(self) -> int:
        seq: int = self._read("newest_seq")
        return seq

    def newest_correction_id(self) -> int:
        newest: int = self._read("newest_correction_id")
        return newest

    def corrections(self, after: int = 0, kind: CorrectionKind | None = None) -> list[Correction]:
        found: list[Correction] = self._read("corrections", after, kind)
        return found

    def surviving_stories(self, story_ids: Collection[str]) -> dict[str, str]:
        survivors: dict[str, str] = self._read("surviving_stories", list(story_ids))
        return survivors

    def window_start(self, since: datetime, max_entries: int) -> datetime:
        start: datetime = self._read("window_start", since, max_entries)
        return start

    def window_page(
        self, since: datetime, after: tuple[datetime, str, str] | None, limit: int
    ) -> list[tuple[Entry, str]]:
        page: list[tuple[Entry, str]] = self._read("window_page", since, after, limit)
        return page

    def entries_after(self, seq: int) -> tuple[list[StoredEntry], int]:
        found: tuple[list[StoredEntry], int] = self._read("entries_after", seq)
        return found
