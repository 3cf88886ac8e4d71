"""The current table layout, shared by the SQLite and PostgreSQL backends.

These ``Table`` objects are what the queries are written against. The database is brought to
this shape by the numbered migrations in ``migrations.py``; a test compares the migrated database
with this module so the two cannot drift apart.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB


class UTCDateTime(TypeDecorator[datetime]):
    """A datetime that is written as UTC and always read back timezone-aware UTC.

    PostgreSQL stores ``timestamptz`` and returns it in the session's zone; SQLite stores naive
    ISO text. Both are normalised to UTC here. A naive datetime is a bug in the caller (the
    storage contract is aware UTC everywhere), so it is rejected rather than guessed at.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime given to storage: {value!r}")
        utc = value.astimezone(UTC)
        # SQLite's DATETIME text has no offset: store the UTC wall time so text order is time order.
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def json_type() -> Any:
    """JSON on SQLite, JSONB on PostgreSQL (compact, and comparable should we ever index it)."""
    return JSON().with_variant(JSONB(), "postgresql")


metadata = MetaData()

schema_migrations = Table(
    "schema_migrations",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("name", String, nullable=False),
    Column("applied_at", UTCDateTime, nullable=False),
)

feeds = Table(
    "feeds",
    metadata,
    Column("url", String, primary_key=True),
    Column("name", String),
    Column("tags", json_type(), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("interval_seconds", Integer, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("title", String),
    Column("etag", String),
    Column("last_modified", String),
    Column("body_hash", String),
    Column("last_polled", UTCDateTime),
    Column("next_due", UTCDateTime),
    Column("status", Integer),
    Column("error", Text),
    Column("failures", Integer, nullable=False),
    Column("moved_to", String),
    Column("gone", Boolean),
    Column("poll_interval_seconds", Integer),
    # Migration 2: which worker holds the feed and until when (several pollers, one database).
    Column("claimed_by", String),
    Column("claim_expires", UTCDateTime),
    # Migration 6: the newest publication time among the feed's pruned entries (``prune.py``);
    # entries first seen later but published at or before it are not stored again.
    Column("retained_since", UTCDateTime),
)
Index("ix_feeds_due", feeds.c.active, feeds.c.next_due)

entries = Table(
    "entries",
    metadata,
    Column("feed_url", String, ForeignKey("feeds.url"), primary_key=True),
    Column("entry_id", String, primary_key=True),
    Column("title", Text, nullable=False),
    Column("summary", Text, nullable=False),
    Column("url", Text),
    Column("link", Text),
    Column("published", UTCDateTime, nullable=False),
    Column("updated", UTCDateTime),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("content_hash", String, nullable=False),
    Column("author", Text),
    Column("seq", Integer),
)
Index("ix_entries_published", entries.c.published)
Index("ix_entries_url", entries.c.url)

stories = Table(
    "stories",
    metadata,
    Column("id", String, primary_key=True),
    Column("created", UTCDateTime, nullable=False),
    Column("updated", UTCDateTime, nullable=False),
    # Migration 4: the front-page rank (``story_writes.update_ranks``). The default only fills
    # a new row until the same transaction links its entries and computes the rank.
    Column("rank", Float, nullable=False, server_default=text("0")),
)
Index("ix_stories_updated", stories.c.updated, stories.c.id)
Index("ix_stories_rank", stories.c.rank, stories.c.id)

story_entries = Table(
    "story_entries",
    metadata,
    Column("feed_url", String, primary_key=True),
    Column("entry_id", String, primary_key=True),
    Column("story_id", String, ForeignKey("stories.id"), nullable=False),
    Column("score", Float, nullable=False),
    Column("evidence", json_type(), nullable=False),
    ForeignKeyConstraint(
        ["feed_url", "entry_id"], ["entries.feed_url", "entries.entry_id"], ondelete="CASCADE"
    ),
)
Index("ix_story_entries_story", story_entries.c.story_id)

corrections = Table(
    "corrections",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String, nullable=False),
    # split: the entry moved out; merge: both NULL.
    Column("feed_url", String),
    Column("entry_id", String),
    # split: the story the entry left; merge: the story absorbed (b).
    Column("story_id", String, nullable=False),
    # split: the story the entry now belongs to; merge: the story that absorbed it (a).
    Column("target_story_id", String, nullable=False),
    Column("created", UTCDateTime, nullable=False),
    CheckConstraint("kind IN ('split', 'merge')", name="ck_corrections_kind"),
)
Index("ix_corrections_story", corrections.c.story_id)
# Migration 6: pruning keeps every story a correction names, on either side.
Index("ix_corrections_target", corrections.c.target_story_id)
