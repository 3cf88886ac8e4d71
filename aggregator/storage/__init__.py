"""Storage backends behind one interface (see ``base.Storage``).

``open_storage(url)`` picks the backend from the database URL, applies pending migrations and
returns a ready ``SqlStorage``:

- ``sqlite:///path/to/aggregator.db`` (the embedded default; parent folders are created);
- ``postgresql://user@host/dbname`` (driven by psycopg 3).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, make_url
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

from aggregator.exceptions import StorageError
from aggregator.storage.base import Storage
from aggregator.storage.engine import SQLITE_POOL_SIZE, configure_sqlite, translate_errors
from aggregator.storage.records import Correction, CorrectionKind, PruneResult
from aggregator.storage.sql import SqlStorage

__all__ = [
    "Correction",
    "CorrectionKind",
    "PruneResult",
    "SqlStorage",
    "Storage",
    "database_url",
    "open_storage",
    "shared_between_processes",
]

# Schemes accepted for PostgreSQL and mapped onto the psycopg 3 driver.
_POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")


def database_url(url: str) -> URL:
    """Parse ``url`` and pin the driver we ship (psycopg 3 for PostgreSQL)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StorageError(f"invalid database URL {url!r}: {exc}") from exc
    if parsed.drivername in _POSTGRES_SCHEMES:
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        return parsed
    raise StorageError(
        f"unsupported database URL scheme {parsed.drivername!r} (sqlite, postgresql)"
    )


def _is_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:")


def shared_between_processes(url: str) -> bool:
    """Whether another process opening ``url`` sees the same database (an in-memory SQLite
    database lives inside the process that opened it)."""
    parsed = database_url(url)
    if parsed.get_backend_name() != "sqlite":
        return True
    return not _is_memory(parsed) and parsed.query.get("mode") != "memory"


def open_storage(url: str) -> SqlStorage:
    """Open the database at ``url``, bring its schema up to date and return the storage."""
    parsed = database_url(url)
    with translate_errors(f"open {parsed.render_as_string(hide_password=True)}"):
        if parsed.get_backend_name() == "sqlite":
            if _is_memory(parsed):
                # One shared connection, so every thread sees the same in-memory database.
                engine = create_engine(parsed, poolclass=StaticPool)
            else:
                if not parsed.query.get("uri"):  # a file: URI names its own path
                    path = Path(str(parsed.database)).expanduser()
                    path.parent.mkdir(parents=True, exist_ok=True)
                engine = create_engine(parsed, pool_size=SQLITE_POOL_SIZE)
            configure_sqlite(engine)
        else:
            # pre_ping: a long-running service outlives server restarts and idle timeouts.
            engine = create_engine(parsed, pool_pre_ping=True)
    storage = SqlStorage(engine)
    try:
        storage.migrate()
    except BaseException:
        storage.close()
        raise
    return storage
