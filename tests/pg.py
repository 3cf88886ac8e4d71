"""A throwaway PostgreSQL database for tests.

``throwaway_database()`` creates a uniquely named database on the server at 127.0.0.1:5432
(user ``postgres``, trust authentication), yields its URL and drops it afterwards. When no
server answers there, the calling test (or fixture) is skipped with a message saying so.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from psycopg import sql

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USER = "postgres"
# Seconds to wait for the server before concluding there is none: a local server answers in
# milliseconds, and a missing one is refused at once, so this only bounds a hung host.
PG_CONNECT_TIMEOUT_S = 5


def server_url(database: str) -> str:
    """The URL of ``database`` on the test server."""
    return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"


@contextmanager
def throwaway_database(prefix: str = "aggregator_test") -> Iterator[str]:
    """Create a fresh database, yield its ``postgresql://`` URL, drop it on exit."""
    try:
        admin = psycopg.connect(
            server_url("postgres"), autocommit=True, connect_timeout=PG_CONNECT_TIMEOUT_S
        )
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server reachable at {PG_HOST}:{PG_PORT}: {exc}".strip())
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield server_url(name)
        finally:
            # FORCE ends connections a failed test may have left open (PostgreSQL 13+).
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def reset_schema(url: str) -> None:
    """Drop every table of the database at ``url`` (a clean slate between tests)."""
    with psycopg.connect(url, autocommit=True, connect_timeout=PG_CONNECT_TIMEOUT_S) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
