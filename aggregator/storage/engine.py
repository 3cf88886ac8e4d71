"""Engine plumbing shared by every storage call: SQLite connection settings and the
translation of SQLAlchemy and driver errors into ``StorageError``.

On SQLite the driver's own implicit transaction handling is switched off and SQLAlchemy emits
``BEGIN`` itself (see ``aggregator.storage.sql``): ``BEGIN IMMEDIATE`` for a connection marked
with the ``IMMEDIATE`` execution option, plain ``BEGIN`` otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, event
from sqlalchemy.exc import DBAPIError, SQLAlchemyError, StatementError

from aggregator.exceptions import StorageError

# How long a SQLite writer waits for another process's write lock before failing. A refresh
# commits in milliseconds; 30 s covers a long migration or a slow disk without hanging forever.
SQLITE_BUSY_TIMEOUT_MS = 30_000
# SQLite connections the pool keeps open between uses (SQLAlchemy's default is 5; more are
# opened when needed and closed after use). Each keeps its own page cache of up to 2 MB, and
# the default pool filled several with copies of the same hot pages. Measured one after the
# other: `python -m benchmarks.footprint` after 200 feeds 179-180 MB steady with 2 (178-179
# with 1), and `python -m benchmarks.poll --feeds 1000` first cycle 36.4 s, steady 1.05 s with
# 2 (37.4 s and 1.14 s with 1). A smaller page cache instead (256 KiB, 5 connections) cost the
# service 15 % more CPU in a first poll.
SQLITE_POOL_SIZE = 2

# Execution option that makes the SQLite ``begin`` hook emit ``BEGIN IMMEDIATE``.
IMMEDIATE = "aggregator_begin_immediate"


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
        immediate = conn.get_execution_options().get(IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
