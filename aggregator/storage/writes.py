"""Write operations: each takes a ``Connection`` inside the caller's open write transaction.

Rows are written with executemany-style statements (a list of parameter dicts per statement),
so a refresh of a big feed costs a handful of statements, not one round trip per entry.
Upserts use the backend's ``INSERT ... ON CONFLICT``, which SQLite and PostgreSQL spell alike.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Update, and_, bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from aggregator.storage.queries import chunks, feed_state, merge_targets, story_links
from aggregator.storage.schema import entries, feeds, stories, story_entries
from aggregator.storage.story_writes import apply_story_merge, touch_stories, update_ranks
from aggregator.types import (
    Assignment,
    Entry,
    FeedRefresh,
    FeedSpec,
    FeedState,
    FeedStateUpdate,
)


def upsert(conn: Connection, table: Any) -> postgresql.Insert | sqlite.Insert:
    """An ``INSERT`` of this backend that supports ``on_conflict_do_*``."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def sync_feeds(conn: Connection, specs: Sequence[FeedSpec], now: datetime) -> None:
    """Insert new feeds (due at ``now``), update known ones, deactivate the rest."""
    by_url = {spec.url: spec for spec in specs}  # a repeated URL: the last one wins
    if by_url:
        ins = upsert(conn, feeds)
        stmt = ins.on_conflict_do_update(
            index_elements=[feeds.c.url],
            set_={
                "name": ins.excluded.name,
                "tags": ins.excluded.tags,
                "priority": ins.excluded.priority,
                "interval_seconds": ins.excluded.interval_seconds,
                "active": True,
            },
        )
        conn.execute(stmt, [_feed_row(spec, now) for spec in by_url.values()])
    stored = {str(url) for (url,) in conn.execute(select(feeds.c.url))}
    gone = sorted(stored - by_url.keys())
    for part in chunks(gone):
        conn.execute(update(feeds).where(feeds.c.url.in_(part)).values(active=False))


def _feed_row(spec: FeedSpec, due: datetime | None) -> dict[str, Any]:
    return {
        "url": spec.url,
        "name": spec.name,
        "tags": list(spec.tags),
        "priority": spec.priority,
        "interval_seconds": int(spec.interval.total_seconds()),
        "active": True,
        "next_due": due,
        "failures": 0,
    }


def _state_values(state: FeedStateUpdate) -> tuple[dict[str, Any], bool]:
    """Column values for the new polling state, and whether ``failures`` goes up by one (an
    SQL expression, not a value); see ``store_refresh`` for the rules."""
    values: dict[str, Any] = {
        "last_polled": state.last_polled,
        "next_due": state.next_due,
        "status": state.status,
        "error": state.error,
        # The poll is done: whoever claimed the feed releases it.
        "claimed_by": None,
        "claim_expires": None,
        "gone": state.gone,
    }
    if state.poll_interval is not None:
        values["poll_interval_seconds"] = int(state.poll_interval.total_seconds())
    if state.title is not None:  # a 304 or a failed poll says nothing about the title
        values["title"] = state.title
    cache = {
        "etag": state.etag,
        "last_modified": state.last_modified,
        "body_hash": state.body_hash,
        "moved_to": state.moved_to,
    }
    if state.error is None:
        values.update(cache)
        values["failures"] = 0
        return values, False
    # A failed poll keeps the validators of the last good one, so the next poll can still be
    # conditional.
    values.update({key: value for key, value in cache.items() if value is not None})
    return values, True


def write_feed_state(conn: Connection, feed_url: str, state: FeedStateUpdate) -> None:
    """Update the feed's polling state, inserting the feed with default settings if unknown."""
    write_feed_states(conn, [(feed_url, state)])


def write_feed_states(conn: Connection, states: Sequence[tuple[str, FeedStateUpdate]]) -> None:
    """Several distinct feeds' polling states, as ``write_feed_state`` each, in few statements.

    A steady cycle is mostly feeds that answered 304: one statement per feed was a sixth of
    the cycle's CPU (SQLAlchemy builds and caches each statement anew). Feeds whose new state
    sets the same columns share one executemany of a prepared statement; unknown feeds are
    then inserted with default settings.
    """
    by_url = dict(states)
    if len(by_url) != len(states):
        raise ValueError("write_feed_states: a feed is named twice; write its states in order")
    groups: dict[tuple[tuple[str, ...], bool], list[dict[str, Any]]] = {}
    for url, state in states:
        values, increment = _state_values(state)
        groups.setdefault((tuple(values), increment), []).append({"key_url": url, **values})
    for (columns, increment), rows in groups.items():
        result = conn.execute(_state_statement(columns, increment), rows)
        if result.rowcount == len(rows):
            continue
        known = {
            url
            for part in chunks([row["key_url"] for row in rows])
            for url in conn.execute(select(feeds.c.url).where(feeds.c.url.in_(part))).scalars()
        }
        for row in rows:
            if row["key_url"] not in known:
                _insert_feed(conn, row["key_url"], by_url[row["key_url"]])


def _insert_feed(conn: Connection, feed_url: str, state: FeedStateUpdate) -> None:
    """A feed polled but not configured (removed meanwhile): its row, with this state."""
    row = _feed_row(FeedSpec(url=feed_url), None)
    row.update(_state_values(state)[0])
    row["failures"] = 0 if state.error is None else 1
    conn.execute(upsert(conn, feeds).on_conflict_do_nothing(), [row])


@functools.lru_cache(maxsize=64)
def _state_statement(columns: tuple[str, ...], increment: bool) -> Update:
    """``UPDATE feeds SET <columns> WHERE url = :key_url``, built once per set of columns."""
    values: dict[str, Any] = {column: bindparam(column) for column in columns}
    if increment:
        values["failures"] = feeds.c.failures + 1
    return update(feeds).where(feeds.c.url == bindparam("key_url")).values(values)


def _entry_row(entry: Entry) -> dict[str, Any]:
    return {
        "feed_url": entry.feed_url,
        "entry_id": entry.entry_id,
        "title": entry.title,
        "summary": entry.summary,
        "url": entry.url,
        "link": entry.link,
        "published": entry.published,
        "updated": entry.updated,
        "first_seen": entry.first_seen,
        "content_hash": entry.content_hash,
        "author": entry.author,
    }


_CONTENT_COLUMNS = (
    "title",
    "summary",
    "url",
    "link",
    "published",
    "updated",
    "content_hash",
    "author",
)


def store_refresh(conn: Connection, refresh: FeedRefresh) -> None:
    """Write one refresh; the caller's transaction makes it all-or-nothing.

    Rules: the feed state is written first (``failures`` reset or incremented). A new entry
    already stored (a replayed refresh) has its content updated, keeps ``first_seen`` and keeps
    its story: its assignment is ignored, so no empty story is created. Assignments naming a
    story retired by a merge go to the surviving story; one naming a story that pruning
    removed meanwhile (``prune.py``) creates it again. Changed entries are updated in place.
    Every story touched gets ``updated = max(updated, state.last_polled)`` and its rank
    recomputed (``story_writes.update_ranks``).
    """
    feed_url = refresh.feed_url
    new: dict[str, tuple[Entry, Assignment]] = {}
    for entry, assignment in refresh.new_entries:
        new[entry.entry_id] = (entry, assignment)
    changed = {e.entry_id: e for e in refresh.changed_entries if e.entry_id not in new}
    strays = [e.key for e, _ in new.values() if e.feed_url != feed_url]
    strays += [e.key for e in changed.values() if e.feed_url != feed_url]
    if strays:
        raise ValueError(f"refresh of {feed_url} carries entries of other feeds: {strays[:3]}")

    when = refresh.state.last_polled
    write_feed_state(conn, feed_url, refresh.state)
    if refresh.state_only:
        return
    # Every entry written gets the next store sequence number. Writers are serialised (the
    # matching lock on PostgreSQL, the write lock on SQLite), so the numbers grow in commit
    # order and a worker can fetch exactly what others stored since it last looked.
    next_seq = (conn.execute(select(func.max(entries.c.seq))).scalar() or 0) + 1

    linked = story_links(conn, feed_url, [*new, *changed])
    to_link = [(entry, a) for entry, a in new.values() if entry.entry_id not in linked]
    redirect = merge_targets(conn, {a.story_id for _, a in to_link})
    target = {e.entry_id: redirect.get(a.story_id, a.story_id) for e, a in to_link}

    fresh_stories = sorted({target[e.entry_id] for e, a in to_link if a.new_story})
    if to_link:
        # New stories, and any joined story pruned meanwhile (the match index still held it):
        # created if missing, left alone if present.
        stmt = upsert(conn, stories).on_conflict_do_nothing(index_elements=[stories.c.id])
        wanted = sorted(set(target.values()))
        conn.execute(stmt, [{"id": sid, "created": when, "updated": when} for sid in wanted])

    if new:
        ins = upsert(conn, entries)
        stmt = ins.on_conflict_do_update(
            index_elements=[entries.c.feed_url, entries.c.entry_id],
            set_={name: ins.excluded[name] for name in (*_CONTENT_COLUMNS, "seq")},
        )
        new_rows = [_entry_row(entry) for entry, _ in new.values()]
        for offset, row in enumerate(new_rows):
            row["seq"] = next_seq + offset
        next_seq += len(new_rows)
        conn.execute(stmt, new_rows)

    if to_link:
        link_rows = [
            {
                "feed_url": feed_url,
                "entry_id": entry.entry_id,
                "story_id": target[entry.entry_id],
                "score": a.score,
                "evidence": dict(a.evidence),
            }
            for entry, a in to_link
        ]
        stmt = upsert(conn, story_entries).on_conflict_do_nothing()
        conn.execute(stmt, link_rows)

    if changed:
        edit = (
            update(entries)
            .where(entries.c.feed_url == bindparam("key_feed"))
            .where(entries.c.entry_id == bindparam("key_entry"))
            .values({name: bindparam(name) for name in (*_CONTENT_COLUMNS, "seq")})
        )
        rows = []
        for offset, entry in enumerate(changed.values()):
            row = _entry_row(entry)
            rows.append(
                {"key_feed": feed_url, "key_entry": entry.entry_id, "seq": next_seq + offset}
                | {name: row[name] for name in _CONTENT_COLUMNS}
            )
        conn.execute(edit, rows)

    members_changed = set(linked.values()) | set(target.values())
    # Stories created just now already carry ``when``.
    touch_stories(conn, sorted(members_changed - set(fresh_stories)), when)
    # New links, and changed entries whose dates may have moved: their stories' ranks.
    update_ranks(conn, members_changed)
    for into, other in refresh.story_merges:
        apply_story_merge(conn, into, other, when)


def release_claims(conn: Connection) -> int:
    """Clear every feed's claim; return how many feeds were claimed."""
    stmt = (
        update(feeds)
        .where(feeds.c.claimed_by.is_not(None))
        .values(claimed_by=None, claim_expires=None)
    )
    return int(conn.execute(stmt).rowcount or 0)


def claim_due_feeds(
    conn: Connection, worker: str, now: datetime, lease: timedelta, limit: int
) -> list[FeedState]:
    """Claim up to ``limit`` due, unclaimed (or lease-expired) active feeds for ``worker``.

    PostgreSQL locks the candidate rows with ``FOR UPDATE SKIP LOCKED``, so concurrent
    claimers pass over each other's rows instead of waiting, and re-checks the condition on a
    row another claimer just committed. SQLite runs the same single ``UPDATE`` under the
    database write lock (``BEGIN IMMEDIATE``), which serialises claimers.
    """
    if limit <= 0:
        return []
    claimable = and_(
        feeds.c.active.is_(True),
        feeds.c.gone.is_not(True),
        feeds.c.next_due.is_(None) | (feeds.c.next_due <= now),
        feeds.c.claim_expires.is_(None) | (feeds.c.claim_expires <= now),
    )
    candidates = (
        select(feeds.c.url)
        .where(claimable)
        .order_by(feeds.c.next_due.asc().nulls_first(), feeds.c.url)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    stmt = (
        update(feeds)
        .where(feeds.c.url.in_(candidates.scalar_subquery()))
        .where(claimable)
        .values(claimed_by=worker, claim_expires=now + lease)
        .returning(*feeds.c)
    )
    claimed = [feed_state(row) for row in conn.execute(stmt).mappings()]
    # RETURNING gives no order: restore the due order (never polled first).
    return sorted(claimed, key=lambda f: (f.next_due is not None, f.next_due or now, f.url))


def request_polls(conn: Connection, now: datetime) -> int:
    """Make every active feed not known gone due at ``now``; return how many there are."""
    pollable = and_(feeds.c.active.is_(True), feeds.c.gone.is_not(True))
    later = feeds.c.next_due.is_not(None) & (feeds.c.next_due > now)
    conn.execute(update(feeds).where(pollable, later).values(next_due=now))
    return int(conn.execute(select(func.count()).select_from(feeds).where(pollable)).scalar_one())
