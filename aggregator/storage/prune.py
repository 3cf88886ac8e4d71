"""Pruning: what bounds a feed's growth in storage (``Storage.prune``).

Two bounds, both from feeds.yml: an entry first seen longer ago than ``retention`` goes, and a
feed keeps only its newest ``max_entries_per_feed`` entries, newest by (published, first_seen,
entry_id). Each function takes a ``Connection`` inside the caller's open transaction.

What goes with an entry. Its story link, by the foreign key's ``ON DELETE CASCADE`` (SQLite
enforces it because ``engine.configure_sqlite`` switches ``foreign_keys`` on for every
connection); its full-text index row, by the triggers of migration 5 on SQLite and by the
expression index itself on PostgreSQL. Each story that lost entries has its stored rank
recomputed (``story_writes.update_ranks``); a story left with no entries is deleted, unless a
correction names it on either side, so merge chains and splits keep resolving.

Horizon. An entry pruned by the count bound is usually still in the feed's document and would
come back as new at the next poll, again and again. So each batch moves the feed's
``retained_since`` forward (never back) to the newest publication time among the entries it
removed, and ``refresh.decide`` skips new entries published at or before it. Normalisation
clamps a date more than ``normalise.FUTURE_TOLERANCE`` ahead to the time first seen, so the
horizon never runs ahead of the clock by more than that tolerance.

Batches. ``SqlStorage.prune`` finds the feeds over a bound in one read, then removes each
feed's doomed entries ``PRUNE_BATCH`` at a time, one write transaction per batch, so the write
lock (SQLite) is held for one batch, not for the whole pruning. Pruning is idempotent: a second
run right after the first finds nothing more to remove, so several workers sharing a PostgreSQL
database may each prune.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    and_,
    case,
    delete,
    exists,
    func,
    literal,
    or_,
    select,
    tuple_,
    update,
)

from aggregator.storage.queries import chunks, row_value
from aggregator.storage.records import PruneResult
from aggregator.storage.schema import corrections, entries, feeds, stories, story_entries
from aggregator.storage.story_writes import update_ranks

# Entries removed per write transaction: with their links, index rows and the rank updates of
# their stories, a thousand take tens of milliseconds (SQLite, one feed's 45,000 surplus
# entries, each its own story: 32 ms a batch in the median, 78 ms at most, 2 s in all), so a
# refresh waiting for the write lock waits no longer than that, and a flood of millions is
# still cut down in a few thousand short transactions.
PRUNE_BATCH = 1000

# A feed's entries from newest to oldest: the order the count bound keeps the first of.
NEWEST_FIRST = (entries.c.published, entries.c.first_seen, entries.c.entry_id)

Key = tuple[datetime, datetime, str]


def feeds_to_prune(conn: Connection, cutoff: datetime, max_entries: int) -> list[str]:
    """URLs of the feeds holding an entry first seen before ``cutoff`` or more than
    ``max_entries`` entries, in URL order (one pass over the entries)."""
    over = or_(func.count() > max_entries, func.min(entries.c.first_seen) < cutoff)
    stmt = (
        select(entries.c.feed_url)
        .group_by(entries.c.feed_url)
        .having(over)
        .order_by(entries.c.feed_url)
    )
    return [str(url) for url in conn.execute(stmt).scalars()]


def oldest_kept(conn: Connection, feed_url: str, max_entries: int) -> Key | None:
    """The key of the feed's ``max_entries``-th newest entry, the oldest the count bound
    keeps; None when the feed has no more entries than that."""
    stmt = (
        select(*NEWEST_FIRST)
        .where(entries.c.feed_url == feed_url)
        .order_by(*(column.desc() for column in NEWEST_FIRST))
        .offset(max_entries - 1)
        .limit(1)
    )
    row = conn.execute(stmt).first()
    return None if row is None else (row[0], row[1], str(row[2]))


def prune_batch(
    conn: Connection, feed_url: str, cutoff: datetime, kept_from: Key | None, limit: int
) -> PruneResult:
    """Remove up to ``limit`` of the feed's entries first seen before ``cutoff`` or older than
    ``kept_from`` (see ``oldest_kept``), with what goes with them (see the module docstring)."""
    doomed: Any = entries.c.first_seen < cutoff
    if kept_from is not None:
        doomed = or_(doomed, tuple_(*NEWEST_FIRST) < row_value(NEWEST_FIRST, kept_from))
    linked = and_(
        story_entries.c.feed_url == entries.c.feed_url,
        story_entries.c.entry_id == entries.c.entry_id,
    )
    stmt = (
        select(entries.c.entry_id, entries.c.published, story_entries.c.story_id)
        .select_from(entries.outerjoin(story_entries, linked))
        .where(entries.c.feed_url == feed_url, doomed)
        .limit(limit)
    )
    rows = conn.execute(stmt).all()
    if not rows:
        return PruneResult()
    removed = 0
    for part in chunks([str(entry_id) for entry_id, _, _ in rows]):
        gone = delete(entries).where(entries.c.feed_url == feed_url, entries.c.entry_id.in_(part))
        removed += int(conn.execute(gone).rowcount or 0)
    _advance_horizon(conn, feed_url, max(published for _, published, _ in rows))
    touched = {str(story_id) for _, _, story_id in rows if story_id is not None}
    update_ranks(conn, touched)
    return PruneResult(entries=removed, stories=_drop_empty_stories(conn, touched))


def _advance_horizon(conn: Connection, feed_url: str, published: datetime) -> None:
    """Move the feed's ``retained_since`` forward to ``published``, never back."""
    current = feeds.c.retained_since
    bound = literal(published, current.type)
    later = case((current.is_(None) | (current < bound), bound), else_=current)
    conn.execute(update(feeds).where(feeds.c.url == feed_url).values(retained_since=later))


def _drop_empty_stories(conn: Connection, story_ids: Collection[str]) -> int:
    """Delete those of ``story_ids`` left with no entry and named by no correction."""
    has_entries = exists().where(story_entries.c.story_id == stories.c.id)
    corrected = exists().where(
        or_(corrections.c.story_id == stories.c.id, corrections.c.target_story_id == stories.c.id)
    )
    dropped = 0
    for part in chunks(sorted(story_ids)):
        stmt = delete(stories).where(stories.c.id.in_(part), ~has_entries, ~corrected)
        dropped += int(conn.execute(stmt).rowcount or 0)
    return dropped
