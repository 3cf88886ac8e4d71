"""Read queries: each takes an open ``Connection`` and returns typed records.

Feeds, entries, story links and corrections are read here; stories with their sources in
``listing``. No query here is issued per row: ids are looked up with one ``IN`` query per chunk.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, RowMapping, and_, func, literal, select, tuple_

from aggregator.exceptions import StorageError
from aggregator.storage.records import Correction, CorrectionKind
from aggregator.storage.schema import corrections, entries, feeds, story_entries
from aggregator.types import Entry, FeedState, StoredEntry

# Ids per IN (...) list: SQLite before 3.32 allowed only 999 bound parameters per statement, and
# PostgreSQL plans long IN lists no better than a few shorter ones.
IN_CHUNK = 500

T = TypeVar("T")


def chunks(items: Sequence[T], size: int = IN_CHUNK) -> Iterator[Sequence[T]]:
    """``items`` cut into consecutive slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def feed_state(row: RowMapping) -> FeedState:
    """A ``feeds`` row as a ``FeedState``."""
    return FeedState(
        url=row["url"],
        name=row["name"],
        tags=tuple(row["tags"] or ()),
        priority=int(row["priority"]),
        interval=timedelta(seconds=int(row["interval_seconds"])),
        active=bool(row["active"]),
        title=row["title"],
        etag=row["etag"],
        last_modified=row["last_modified"],
        body_hash=row["body_hash"],
        last_polled=row["last_polled"],
        next_due=row["next_due"],
        status=row["status"],
        error=row["error"],
        failures=int(row["failures"]),
        moved_to=row["moved_to"],
        gone=bool(row["gone"]),
        poll_interval=(
            timedelta(seconds=int(row["poll_interval_seconds"]))
            if row["poll_interval_seconds"] is not None
            else None
        ),
        retained_since=row["retained_since"],
    )


def list_feeds(conn: Connection, *, include_inactive: bool) -> list[FeedState]:
    """Feeds ordered by URL."""
    stmt = select(feeds).order_by(feeds.c.url)
    if not include_inactive:
        stmt = stmt.where(feeds.c.active.is_(True))
    return [feed_state(row) for row in conn.execute(stmt).mappings()]


def get_feed(conn: Connection, url: str) -> FeedState | None:
    """One feed or None."""
    row = conn.execute(select(feeds).where(feeds.c.url == url)).mappings().first()
    return feed_state(row) if row is not None else None


def due_feeds(conn: Connection, now: datetime) -> list[FeedState]:
    """Active feeds due at ``now``: never-polled first, then the longest overdue."""
    stmt = (
        select(feeds)
        .where(feeds.c.active.is_(True))
        .where(feeds.c.gone.is_not(True))
        .where(feeds.c.next_due.is_(None) | (feeds.c.next_due <= now))
        .order_by(feeds.c.next_due.asc().nulls_first(), feeds.c.url)
    )
    return [feed_state(row) for row in conn.execute(stmt).mappings()]


def entry_hashes(conn: Connection, feed_url: str, entry_ids: Collection[str]) -> dict[str, str]:
    """``{entry_id: content_hash}`` of the given ids stored for this feed."""
    found: dict[str, str] = {}
    for part in chunks(sorted(set(entry_ids))):
        stmt = select(entries.c.entry_id, entries.c.content_hash).where(
            entries.c.feed_url == feed_url, entries.c.entry_id.in_(part)
        )
        found.update({str(eid): str(h) for eid, h in conn.execute(stmt)})
    return found


def story_links(conn: Connection, feed_url: str, entry_ids: Collection[str]) -> dict[str, str]:
    """``{entry_id: story_id}`` of the given ids of this feed that are linked to a story."""
    found: dict[str, str] = {}
    for part in chunks(sorted(set(entry_ids))):
        stmt = select(story_entries.c.entry_id, story_entries.c.story_id).where(
            story_entries.c.feed_url == feed_url, story_entries.c.entry_id.in_(part)
        )
        found.update({str(eid): str(sid) for eid, sid in conn.execute(stmt)})
    return found


def entry_from_row(row: RowMapping) -> Entry:
    """An ``entries`` row (columns under their own names) as an ``Entry``."""
    return Entry(
        feed_url=row["feed_url"],
        entry_id=row["entry_id"],
        title=row["title"],
        summary=row["summary"],
        url=row["url"],
        link=row["link"],
        published=row["published"],
        updated=row["updated"],
        first_seen=row["first_seen"],
        content_hash=row["content_hash"],
        author=row["author"],
    )


def feed_display_name(row: RowMapping) -> str:
    return str(row["feed_name"] or row["feed_title"] or row["feed_url"])


# Story links joined with their entries, and with their feeds too.
LINKED_ENTRIES = story_entries.join(
    entries,
    and_(
        entries.c.feed_url == story_entries.c.feed_url,
        entries.c.entry_id == story_entries.c.entry_id,
    ),
)
LINKED = LINKED_ENTRIES.join(feeds, feeds.c.url == story_entries.c.feed_url)

FEED_COLUMNS = (
    feeds.c.name.label("feed_name"),
    feeds.c.title.label("feed_title"),
    feeds.c.priority.label("feed_priority"),
)


def entries_since(conn: Connection, since: datetime) -> list[StoredEntry]:
    """Linked entries published at or after ``since``, oldest first."""
    return _stored_entries(conn, entries.c.published >= since, entries.c.published)


def window_start(conn: Connection, since: datetime, max_entries: int) -> datetime:
    """``since``, or later when more than ``max_entries`` linked entries were published since
    then: the publication time of the ``max_entries``-th newest."""
    stmt = (
        select(entries.c.published)
        .select_from(LINKED_ENTRIES)
        .where(entries.c.published >= since)
        .order_by(entries.c.published.desc())
        .offset(max_entries - 1)
        .limit(1)
    )
    start: datetime | None = conn.execute(stmt).scalar()
    return since if start is None else start


def row_value(columns: Sequence[Any], values: Sequence[Any]) -> Any:
    """``values`` as an SQL row value, each bound with its column's type, to compare a key
    of ``columns`` (``tuple_(*columns) > row_value(columns, values)``) on both backends."""
    return tuple_(
        *(literal(value, column.type) for value, column in zip(values, columns, strict=True))
    )


def window_page(
    conn: Connection, since: datetime, after: tuple[datetime, str, str] | None, limit: int
) -> list[tuple[Entry, str]]:
    """Up to ``limit`` linked entries published at or after ``since`` and after the entry
    ``after`` (published, feed URL, entry id), oldest first, each with its story id: the
    story that survives the merges of the one it is linked to (a link written while a merge
    by hand moved that story's entries may still name the merged one)."""
    key = (entries.c.published, entries.c.feed_url, entries.c.entry_id)
    where = entries.c.published >= since
    if after is not None:
        where = and_(where, tuple_(*key) > row_value(key, after))
    stmt = (
        select(entries, story_entries.c.story_id)
        .select_from(LINKED_ENTRIES)
        .where(where)
        .order_by(*key)
        .limit(limit)
    )
    rows = [(entry_from_row(row), str(row["story_id"])) for row in conn.execute(stmt).mappings()]
    survivors = merge_targets(conn, {story_id for _, story_id in rows})
    return [(entry, survivors.get(story_id, story_id)) for entry, story_id in rows]


# The store sequence column is a 32-bit INTEGER on PostgreSQL: a larger bound must not reach
# the comparison, where it fails with "integer out of range".
_SEQ_MAX = 2**31 - 1


def entries_after_seq(conn: Connection, seq: int) -> tuple[list[StoredEntry], int]:
    """Linked entries written after store sequence ``seq``, and the highest sequence stored.

    A ``seq`` beyond every stored one finds nothing and gets the real newest number back, so
    the caller's next call sees what is written from then on.
    """
    found = _stored_entries(conn, entries.c.seq > min(seq, _SEQ_MAX), entries.c.seq)
    return found, newest_seq(conn)


def newest_correction_id(conn: Connection) -> int:
    """The id of the newest correction (0 before any)."""
    return int(conn.execute(select(func.max(corrections.c.id))).scalar() or 0)


def newest_seq(conn: Connection) -> int:
    """The highest store sequence number written (0 before any)."""
    return int(conn.execute(select(func.max(entries.c.seq))).scalar() or 0)


def _stored_entries(conn: Connection, where: Any, order: Any) -> list[StoredEntry]:
    stmt = (
        select(
            entries,
            story_entries.c.story_id,
            story_entries.c.score,
            story_entries.c.evidence,
            *FEED_COLUMNS,
        )
        .select_from(LINKED)
        .where(where)
        .order_by(order, entries.c.feed_url, entries.c.entry_id)
    )
    return [
        StoredEntry(
            entry=entry_from_row(row),
            story_id=row["story_id"],
            score=float(row["score"]),
            evidence=row["evidence"],
            feed_name=feed_display_name(row),
            feed_priority=int(row["feed_priority"]),
        )
        for row in conn.execute(stmt).mappings()
    ]


def merge_targets(conn: Connection, story_ids: Collection[str]) -> dict[str, str]:
    """``{story_id: surviving story}`` for ids retired by merges (chains followed to the end).

    Merges never form a cycle (``record_merge`` refuses a retired story on either side), so
    following ``story -> target`` terminates.
    """
    direct: dict[str, str] = {}
    pending = sorted(set(story_ids))
    while pending:
        found: dict[str, str] = {}
        for part in chunks(pending):
            stmt = select(corrections.c.story_id, corrections.c.target_story_id).where(
                corrections.c.kind == "merge", corrections.c.story_id.in_(part)
            )
            found.update({str(a): str(b) for a, b in conn.execute(stmt)})
        direct.update(found)
        pending = sorted(set(found.values()) - set(direct))
    resolved: dict[str, str] = {}
    for story_id in story_ids:
        target = story_id
        while target in direct:
            target = direct[target]
        if target != story_id:
            resolved[story_id] = target
    return resolved


def list_corrections(
    conn: Connection, after: int = 0, kind: CorrectionKind | None = None
) -> list[Correction]:
    """The corrections whose id is above ``after`` (of ``kind`` only, if given), oldest
    first."""
    where = corrections.c.id > after
    if kind is not None:
        where = and_(where, corrections.c.kind == kind)
    stmt = select(corrections).where(where).order_by(corrections.c.id)
    rows = conn.execute(stmt).mappings()
    return [_correction(row) for row in rows]


def _correction(row: RowMapping) -> Correction:
    if row["kind"] not in ("split", "merge"):
        raise StorageError(f"correction {row['id']} has unknown kind {row['kind']!r}")
    kind: CorrectionKind = "split" if row["kind"] == "split" else "merge"
    return Correction(
        id=int(row["id"]),
        kind=kind,
        story_id=row["story_id"],
        target_story_id=row["target_story_id"],
        created=row["created"],
        feed_url=row["feed_url"],
        entry_id=row["entry_id"],
    )


def find_entries(conn: Connection, ident: str) -> list[tuple[str, str]]:
    """(feed URL, entry id) of entries whose id, canonical URL or link is ``ident``."""
    stmt = (
        select(entries.c.feed_url, entries.c.entry_id)
        .where((entries.c.entry_id == ident) | (entries.c.url == ident) | (entries.c.link == ident))
        .order_by(entries.c.feed_url, entries.c.entry_id)
    )
    return [(str(feed), str(entry)) for feed, entry in conn.execute(stmt)]
