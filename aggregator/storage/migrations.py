"""Named, numbered schema migrations, applied once each and recorded in ``schema_migrations``.

The same migrations run on SQLite and PostgreSQL. Each one is history: once released it never
changes, so migration 1 builds its tables from its own frozen definitions rather than from
``schema.py`` (which describes the latest shape). A new release appends ``Migration(N + 1, ...)``
to ``MIGRATIONS``; nothing else changes.

All pending migrations run in one transaction together with their ``schema_migrations`` rows
(both backends have transactional DDL), so a failure leaves the database at its old version.
Two processes opening the same database at once are serialised: PostgreSQL by an advisory
transaction lock, SQLite by the write lock its ``BEGIN IMMEDIATE`` takes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Connection,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.schema import CreateColumn

from aggregator.exceptions import StorageError
from aggregator.storage.schema import UTCDateTime, json_type, schema_migrations
from aggregator.storage.search import require_fts5
from aggregator.stories import story_rank

# Arbitrary constant naming "schema migration" among PostgreSQL advisory locks of this database
# (the other keys live in sql.py); any 64-bit value unused elsewhere would do.
MIGRATION_LOCK_KEY = 0x6167_6772_0000_0001


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema change: ``apply`` runs inside the migration transaction."""

    version: int
    name: str
    apply: Callable[[Connection], None]


def _v1_initial_tables(conn: Connection) -> None:
    """Version 1: feeds, entries, stories, story links and manual corrections."""
    md = MetaData()
    feeds = Table(
        "feeds",
        md,
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
    )
    Index("ix_feeds_due", feeds.c.active, feeds.c.next_due)
    entries = Table(
        "entries",
        md,
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
    )
    Index("ix_entries_published", entries.c.published)
    Index("ix_entries_url", entries.c.url)
    stories = Table(
        "stories",
        md,
        Column("id", String, primary_key=True),
        Column("created", UTCDateTime, nullable=False),
        Column("updated", UTCDateTime, nullable=False),
    )
    Index("ix_stories_updated", stories.c.updated, stories.c.id)
    story_entries = Table(
        "story_entries",
        md,
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
        md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("kind", String, nullable=False),
        Column("feed_url", String),
        Column("entry_id", String),
        Column("story_id", String, nullable=False),
        Column("target_story_id", String, nullable=False),
        Column("created", UTCDateTime, nullable=False),
        CheckConstraint("kind IN ('split', 'merge')", name="ck_corrections_kind"),
    )
    Index("ix_corrections_story", corrections.c.story_id)
    md.create_all(conn)


def add_column(conn: Connection, table: str, column: Column[object]) -> None:
    """``ALTER TABLE ... ADD COLUMN`` with the column's type compiled for this backend."""
    spec = CreateColumn(column).compile(dialect=conn.dialect)
    conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {spec}"))


def _v2_feed_claims(conn: Connection) -> None:
    """Version 2: a feed can be claimed by one polling worker until its lease expires."""
    add_column(conn, "feeds", Column("claimed_by", String))
    add_column(conn, "feeds", Column("claim_expires", UTCDateTime))


def _v3_feed_gone_and_adaptive_interval(conn: Connection) -> None:
    """Version 3: feeds answered 410 Gone; the interval adapted to a feed's posting rate; a
    store sequence on entries so each worker can catch its match index up with the others'."""
    add_column(conn, "feeds", Column("gone", Boolean))
    add_column(conn, "feeds", Column("poll_interval_seconds", Integer))
    add_column(conn, "entries", Column("seq", Integer))
    Index("ix_entries_seq", Table("entries", MetaData(), Column("seq")).c.seq).create(conn)


def _v4_story_rank(conn: Connection) -> None:
    """Version 4: each story's front-page rank (``aggregator.stories.story_rank`` of its
    earliest report and its number of outlets), backfilled, and the index pages read it by."""
    add_column(conn, "stories", Column("rank", Float, nullable=False, server_default=text("0")))
    md = MetaData()
    stories = Table("stories", md, Column("id", String), Column("rank", Float))
    Index("ix_stories_rank", stories.c.rank, stories.c.id).create(conn)
    links = Table("story_entries", md, Column("feed_url"), Column("entry_id"), Column("story_id"))
    entries = Table(
        "entries",
        md,
        Column("feed_url"),
        Column("entry_id"),
        Column("published", UTCDateTime),
        Column("first_seen", UTCDateTime),
    )
    linked = links.join(
        entries,
        (entries.c.feed_url == links.c.feed_url) & (entries.c.entry_id == links.c.entry_id),
    )
    stmt = select(
        links.c.story_id,
        func.min(entries.c.published),
        func.min(entries.c.first_seen),
        func.count(links.c.feed_url.distinct()),
    ).select_from(linked)
    rows = conn.execute(stmt.group_by(links.c.story_id))
    ranks = [
        {"key_id": story_id, "rank": story_rank(min(published, seen), int(outlets))}
        for story_id, published, seen, outlets in rows
    ]
    if ranks:
        write = update(stories).where(stories.c.id == bindparam("key_id"))
        conn.execute(write.values(rank=bindparam("rank")), ranks)


# Migration 5 on SQLite: an FTS5 index of entries' title and summary (external content: the
# text stays in ``entries``), kept in step by triggers, then filled from the existing rows.
_V5_SQLITE = (
    "CREATE VIRTUAL TABLE entries_fts USING fts5(title, summary, content='entries',"
    " tokenize='unicode61 remove_diacritics 0')",
    "CREATE TRIGGER entries_fts_insert AFTER INSERT ON entries BEGIN"
    " INSERT INTO entries_fts(rowid, title, summary) VALUES (new.rowid, new.title, new.summary);"
    " END",
    "CREATE TRIGGER entries_fts_delete AFTER DELETE ON entries BEGIN"
    " INSERT INTO entries_fts(entries_fts, rowid, title, summary)"
    " VALUES ('delete', old.rowid, old.title, old.summary);"
    " END",
    "CREATE TRIGGER entries_fts_update AFTER UPDATE OF title, summary ON entries BEGIN"
    " INSERT INTO entries_fts(entries_fts, rowid, title, summary)"
    " VALUES ('delete', old.rowid, old.title, old.summary);"
    " INSERT INTO entries_fts(rowid, title, summary) VALUES (new.rowid, new.title, new.summary);"
    " END",
    "INSERT INTO entries_fts(entries_fts) VALUES ('rebuild')",
)
# Migration 5 on PostgreSQL: a GIN index of the 'simple' text-search vector of title and summary,
# ASCII punctuation read as spaces (see ``search.py``); built over the existing rows at once.
_V5_POSTGRESQL = (
    "CREATE INDEX ix_entries_search ON entries USING gin (to_tsvector('simple',"
    " regexp_replace(title || ' ' || summary, '[[:punct:]]', ' ', 'g')))",
)


def _v5_full_text_search(conn: Connection) -> None:
    """Version 5: full-text search over entries' title and summary (``search.py``)."""
    statements = _V5_POSTGRESQL if conn.dialect.name == "postgresql" else _V5_SQLITE
    for statement in statements:
        conn.exec_driver_sql(statement)


def _v6_retention_horizon(conn: Connection) -> None:
    """Version 6: each feed's retention horizon, the newest publication time among its
    entries pruned so far (``prune.py``), NULL until something of the feed is pruned; and an
    index of the stories corrections lead to, which pruning looks up to keep them."""
    add_column(conn, "feeds", Column("retained_since", UTCDateTime))
    targets = Table("corrections", MetaData(), Column("target_story_id", String))
    Index("ix_corrections_target", targets.c.target_story_id).create(conn)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial tables", _v1_initial_tables),
    Migration(2, "feed claims", _v2_feed_claims),
    Migration(
        3, "feed gone, adaptive interval, entry sequence", _v3_feed_gone_and_adaptive_interval
    ),
    Migration(4, "story rank", _v4_story_rank),
    Migration(5, "full-text search", _v5_full_text_search),
    Migration(6, "retention horizon", _v6_retention_horizon),
)


def latest_version() -> int:
    """The version the code expects the database to be at."""
    return MIGRATIONS[-1].version


def applied_versions(conn: Connection) -> dict[int, str]:
    """``{version: name}`` of the migrations recorded in this database."""
    rows = conn.execute(select(schema_migrations.c.version, schema_migrations.c.name))
    return {int(version): str(name) for version, name in rows}


def migrate(conn: Connection, now: datetime | None = None) -> list[Migration]:
    """Apply every pending migration inside the caller's open write transaction.

    Returns the migrations applied by this call (empty when the database was current). Raises
    ``StorageError`` when the database was written by a newer release than this code knows,
    or (SQLite) when this SQLite library lacks the FTS5 module search needs.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(MIGRATION_LOCK_KEY)))
    else:
        require_fts5(conn)  # every open: a database made elsewhere may meet a build without it
    schema_migrations.create(conn, checkfirst=True)
    applied = applied_versions(conn)
    newest = max(applied, default=0)
    if newest > latest_version():
        raise StorageError(
            f"database schema version {newest} is newer than this program's {latest_version()}"
        )
    done: list[Migration] = []
    for migration in MIGRATIONS:
        if migration.version in applied:
            continue
        migration.apply(conn)
        conn.execute(
            insert(schema_migrations).values(
                version=migration.version,
                name=migration.name,
                applied_at=now or datetime.now(UTC),
            )
        )
        done.append(migration)
    return done


def _check_numbering() -> None:
    versions = [m.version for m in MIGRATIONS]
    if versions != list(range(1, len(versions) + 1)):
        raise RuntimeError(f"migrations must be numbered 1..N without gaps: {versions}")


_check_numbering()
