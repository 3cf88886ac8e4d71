"""Fixtures shared by the test files: storage on SQLite and on PostgreSQL.

Record builders live in ``factories``; the synthetic news feeds in ``aggregator.testing.feedgen``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pg import throwaway_database

from aggregator.storage import SqlStorage, open_storage


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A PostgreSQL database for the whole session (skipped when no server answers)."""
    with throwaway_database() as url:
        yield url


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[SqlStorage]:
    """A fresh SQLite file, migrated; closed after the test."""
    opened = open_storage(f"sqlite:///{tmp_path / 'aggregator.db'}")
    try:
        yield opened
    finally:
        opened.close()
