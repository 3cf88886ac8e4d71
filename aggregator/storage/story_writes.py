"""Writes that change which entries a story holds, and what follows from them: the story's
``updated`` time, its stored front-page ``rank`` and the evidence of each moved entry.

Each function takes a ``Connection`` inside the caller's open write transaction.

Rank. ``stories.rank`` is ``aggregator.stories.story_rank(first, outlets)``: ``first`` is the
earliest over the story's entries of min(published, first_seen), ``outlets`` the number of
distinct feeds among them. Every write that changes a story's members or an entry's dates calls
``update_ranks`` for just the stories it touched: the aggregates are computed in SQL, the float
in Python with ``story_rank``, so the one rule lives in ``aggregator.stories``. A story emptied by
a merge keeps its last rank; it is never listed.

Evidence of a regrouping. A moved entry keeps its score; its evidence becomes
``{"rule": <why>, <"split_from" | "merged_from">: <old story id>, "matched": <previous>}`` with
``rule`` ``"manual_split"`` (``record_split``), ``"manual_merge"`` (``record_merge`` run by hand,
the ``aggregator stories merge`` command) or ``"story_merge"`` (the matcher's own merge during a
refresh, ``apply_story_merge``), so a story page can say what happened.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, bindparam, case, func, select, update

from aggregator.storage.queries import LINKED_ENTRIES, chunks, merge_targets, story_links
from aggregator.storage.schema import corrections, entries, stories, story_entries
from aggregator.stories import story_rank

MergeRule = Literal["manual_merge", "story_merge"]


def touch_stories(conn: Connection, story_ids: Sequence[str], when: datetime) -> None:
    """Move the stories' ``updated`` forward to ``when`` (never backward: a late writer of an
    older poll must not make a story look older than it is)."""
    newer = case((stories.c.updated < when, when), else_=stories.c.updated)
    for part in chunks(story_ids):
        conn.execute(update(stories).where(stories.c.id.in_(part)).values(updated=newer))


def update_ranks(conn: Connection, story_ids: Collection[str]) -> None:
    """Recompute the stored rank of the given stories from their current entries."""
    ranks: list[dict[str, Any]] = []
    for part in chunks(sorted(set(story_ids))):
        stmt = (
            select(
                story_entries.c.story_id,
                func.min(entries.c.published),
                func.min(entries.c.first_seen),
                func.count(story_entries.c.feed_url.distinct()),
            )
            .select_from(LINKED_ENTRIES)
            .where(story_entries.c.story_id.in_(part))
            .group_by(story_entries.c.story_id)
        )
        ranks += [
            # min over entries of min(published, first_seen) is the min of the two minima.
            {"key_id": story_id, "rank": story_rank(min(published, seen), int(outlets))}
            for story_id, published, seen, outlets in conn.execute(stmt)
        ]
    if ranks:
        write = update(stories).where(stories.c.id == bindparam("key_id"))
        conn.execute(write.values(rank=bindparam("rank")), ranks)


def regrouped(rule: str, key: str, old_story: str, evidence: Mapping[str, Any]) -> dict[str, Any]:
    """The evidence of an entry moved out of ``old_story`` (see the module docstring)."""
    return {"rule": rule, key: old_story, "matched": dict(evidence)}


def record_split(
    conn: Connection, feed_url: str, entry_id: str, new_story_id: str, now: datetime
) -> None:
    """Move one entry into a new story and remember it must not rejoin its old one."""
    old = story_links(conn, feed_url, [entry_id]).get(entry_id)
    if old is None:
        raise LookupError(f"no stored entry {entry_id!r} of {feed_url}")
    if conn.execute(select(stories.c.id).where(stories.c.id == new_story_id)).first():
        raise ValueError(f"story id {new_story_id!r} is already in use")
    conn.execute(stories.insert().values(id=new_story_id, created=now, updated=now))
    link = (story_entries.c.feed_url == feed_url, story_entries.c.entry_id == entry_id)
    evidence = conn.execute(select(story_entries.c.evidence).where(*link)).scalar_one()
    conn.execute(
        update(story_entries)
        .where(*link)
        .values(
            story_id=new_story_id, evidence=regrouped("manual_split", "split_from", old, evidence)
        )
    )
    touch_stories(conn, [old], now)
    update_ranks(conn, [old, new_story_id])
    conn.execute(
        corrections.insert().values(
            kind="split",
            feed_url=feed_url,
            entry_id=entry_id,
            story_id=old,
            target_story_id=new_story_id,
            created=now,
        )
    )


def record_merge(
    conn: Connection,
    story_a: str,
    story_b: str,
    now: datetime,
    rule: MergeRule = "manual_merge",
) -> None:
    """Move every entry of ``story_b`` into ``story_a`` and remember ``b -> a``; ``rule`` says
    who merged them in the moved entries' evidence."""
    if story_a == story_b:
        raise ValueError(f"cannot merge story {story_a!r} into itself")
    known = {
        str(sid)
        for (sid,) in conn.execute(select(stories.c.id).where(stories.c.id.in_([story_a, story_b])))
    }
    missing = [sid for sid in (story_a, story_b) if sid not in known]
    if missing:
        raise LookupError(f"no stored story {missing[0]!r}")
    retired = merge_targets(conn, [story_a, story_b])
    if retired:
        sid, into = next(iter(retired.items()))
        # Refusing retired stories on either side keeps merge chains free of cycles.
        raise ValueError(f"story {sid!r} was already merged into {into!r}")
    moved = conn.execute(
        select(story_entries.c.feed_url, story_entries.c.entry_id, story_entries.c.evidence).where(
            story_entries.c.story_id == story_b
        )
    )
    rows = [
        {
            "key_feed": feed_url,
            "key_entry": entry_id,
            "story_id": story_a,
            "evidence": regrouped(rule, "merged_from", story_b, evidence),
        }
        for feed_url, entry_id, evidence in moved
    ]
    if rows:
        stmt = (
            update(story_entries)
            .where(story_entries.c.feed_url == bindparam("key_feed"))
            .where(story_entries.c.entry_id == bindparam("key_entry"))
            .values(story_id=bindparam("story_id"), evidence=bindparam("evidence"))
        )
        conn.execute(stmt, rows)
    touch_stories(conn, [story_a], now)
    update_ranks(conn, [story_a])
    conn.execute(
        corrections.insert().values(
            kind="merge", story_id=story_b, target_story_id=story_a, created=now
        )
    )


def apply_story_merge(conn: Connection, into: str, other: str, now: datetime) -> None:
    """A merge the matcher made: like ``record_merge`` (rule ``"story_merge"``), but following
    earlier merges of either story and doing nothing when it is already in place, so a replayed
    refresh is harmless."""
    redirect = merge_targets(conn, [into, other])
    into, other = redirect.get(into, into), redirect.get(other, other)
    present = conn.execute(select(stories.c.id).where(stories.c.id.in_([into, other])))
    if into != other and len(list(present)) == 2:
        record_merge(conn, into, other, now, rule="story_merge")
