"""``SqlStorage``: the ``Storage`` contract on SQLAlchemy Core, for SQLite and PostgreSQL.

Transactions. Every public method runs in its own transaction and wraps SQLAlchemy and driver
errors in ``StorageError`` (cause chained). On SQLite the driver's own implicit transaction
handling is switched off and SQLAlchemy emits ``BEGIN`` itself: ``BEGIN IMMEDIATE`` for writes,
so a writer takes the write lock up front and waits (busy timeout) instead of failing midway
when another process writes too; plain ``BEGIN`` for reads, which WAL lets run beside a writer.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, event, select
from sqlalchemy.exc import DBAPIError, SQLAlchemyError, StatementError

from aggregator.exceptions import StorageError
from aggregator.storage import queries, writes
from aggregator.storage.migrations import migrate
from aggregator.storage.records import Correction
from aggregator.storage.schema import schema_migrations
from aggregator.types import FeedRefresh, FeedSpec, FeedState, StoredEntry, Story

# How long a SQLite writer waits for another process's write lock before failing. A refresh
# commits in milliseconds; 30 s covers a long migration or a slow disk without hanging forever.
SQLITE_BUSY_TIMEOUT_MS = 30_000

# Execution option that makes the SQLite ``begin`` hook emit ``BEGIN IMMEDIATE``.
_IMMEDIATE = "aggregator_begin_immediate"


@contextmanager
def translate_errors(action: str) -> Iterator[None]:
    """Re-raise SQLAlchemy and driver errors as ``StorageError`` with the cause chained.

    A ``ValueError``/``TypeError`` raised while binding parameters (a naive datetime, say) is
    a bug in the caller and is re-raised as itself, not disguised as a storage failure.
    """
    try:
        yield
    except DBAPIError as exc:
        raise StorageError(f"{action}: {exc.orig}") from exc
    except StatementError as exc:
        if isinstance(exc.orig, ValueError | TypeError):
            raise exc.orig from exc
        raise StorageError(f"{action}: {exc}") from exc
    except SQLAlchemyError as exc:
        raise StorageError(f"{action}: {exc}") from exc


def configure_sqlite(engine: Engine) -> None:
    """Connection settings for SQLite, applied to every new connection of the pool."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN (see the module docstring), then set per-connection pragmas.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            # NORMAL is durable across application crashes in WAL mode; only an OS crash or
            # power loss may lose the last commits, never corrupt the file.
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class SqlStorage:
    """Storage in one SQL database; see ``aggregator.storage.base.Storage`` for the contract."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._closed = False
        self._local = threading.local()

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for tests and maintenance commands)."""
        return self._engine

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._engine.dialect.name

    # -- transactions -----------------------------------------------------------------------

    def _ambient(self) -> Connection | None:
        conn: Connection | None = getattr(self._local, "conn", None)
        return conn

    @contextmanager
    def _tx(self, action: str, *, write: bool) -> Iterator[Connection]:
        """A connection inside a transaction, committed on success, rolled back on error.

        Inside ``matching_lock`` on PostgreSQL the lock's transaction is joined: reads run in
        it and each write runs in a savepoint, so a failed write undoes only itself.
        """
        with translate_errors(action):
            ambient = self._ambient()
            if ambient is not None:
                if write:
                    with ambient.begin_nested():
                        yield ambient
                else:
                    yield ambient
                return
            with self._engine.connect() as conn:
                if write:
                    conn.execution_options(**{_IMMEDIATE: True})
                with conn.begin():
                    yield conn

    def migrate(self, now: datetime | None = None) -> list[int]:
        """Apply pending migrations; returns the versions applied by this call."""
        with self._tx("migrate", write=True) as conn:
            return [m.version for m in migrate(conn, now)]

    # -- the Storage protocol ---------------------------------------------------------------

    def close(self) -> None:
        """Release connections. Safe to call twice."""
        if not self._closed:
            self._closed = True
            self._engine.dispose()

    def schema_version(self) -> int:
        """The highest applied migration version."""
        with self._tx("schema_version", write=False) as conn:
            versions = conn.execute(select(schema_migrations.c.version)).scalars().all()
            return max(versions, default=0)

    def sync_feeds(self, feeds: Sequence[FeedSpec], now: datetime) -> None:
        """Make the stored feed list match the configuration (see the protocol)."""
        with self._tx("sync_feeds", write=True) as conn:
            writes.sync_feeds(conn, feeds, now)

    def list_feeds(self, *, include_inactive: bool = False) -> list[FeedState]:
        """Every (active) feed, ordered by URL."""
        with self._tx("list_feeds", write=False) as conn:
            return queries.list_feeds(conn, include_inactive=include_inactive)

    def get_feed(self, url: str) -> FeedState | None:
        """One feed by its configured URL, or None."""
        with self._tx("get_feed", write=False) as conn:
            return queries.get_feed(conn, url)

    def due_feeds(self, now: datetime) -> list[FeedState]:
        """Active feeds due at ``now`` (or never polled), never-polled first."""
        with self._tx("due_feeds", write=False) as conn:
            return queries.due_feeds(conn, now)

    def entry_hashes(self, feed_url: str, entry_ids: Collection[str]) -> dict[str, str]:
        """``{entry_id: content_hash}`` for the given ids already stored for this feed."""
        with self._tx("entry_hashes", write=False) as conn:
            return queries.entry_hashes(conn, feed_url, entry_ids)

    def entries_since(self, since: datetime) -> list[StoredEntry]:
        """Entries published at or after ``since`` with their story links, oldest first."""
        with self._tx("entries_since", write=False) as conn:
            return queries.entries_since(conn, since)

    def store_refresh(self, refresh: FeedRefresh) -> None:
        """Write one feed refresh in a single transaction (rules in ``writes.store_refresh``)."""
        with self._tx(f"store_refresh {refresh.feed_url}", write=True) as conn:
            writes.store_refresh(conn, refresh)

    def recent_stories(
        self, limit: int, *, min_sources: int = 1, tag: str | None = None
    ) -> list[Story]:
        """The ``limit`` most recently updated stories, newest first, with all their sources."""
        with self._tx("recent_stories", write=False) as conn:
            return queries.recent_stories(conn, limit, min_sources=min_sources, tag=tag)

    def get_story(self, story_id: str) -> Story | None:
        """One story with every source; an id retired by a merge gives the surviving story."""
        with self._tx("get_story", write=False) as conn:
            return queries.get_story(conn, story_id)

    # -- manual corrections -----------------------------------------------------------------

    def record_split(self, feed_url: str, entry_id: str, new_story_id: str, now: datetime) -> None:
        """Move one entry into the new story ``new_story_id`` and remember that it must not
        rejoin the story it left. ``LookupError`` for an unknown entry, ``ValueError`` when
        ``new_story_id`` is already taken."""
        with self._tx("record_split", write=True) as conn:
            writes.record_split(conn, feed_url, entry_id, new_story_id, now)

    def record_merge(self, story_a: str, story_b: str, now: datetime) -> None:
        """Move every entry of ``story_b`` into ``story_a`` (which keeps its id) and remember
        ``b -> a``: later assignments to ``b`` go to ``a`` and ``get_story(b)`` returns ``a``.
        ``LookupError`` for an unknown story, ``ValueError`` for ``a == b`` or a story already
        merged away."""
        with self._tx("record_merge", write=True) as conn:
            writes.record_merge(conn, story_a, story_b, now)

    def corrections(self) -> list[Correction]:
        """Every manual correction, oldest first, for the matcher to respect."""
        with self._tx("corrections", write=False) as conn:
            return queries.list_corrections(conn)
