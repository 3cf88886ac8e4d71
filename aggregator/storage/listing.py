"""Stories with their sources: the lists readers see and single stories.

No query here is issued per story: sources of many stories are fetched with one ``IN`` query per
chunk of ids, and the story list itself is one query whose correlated counts use the index on
``story_entries.story_id``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import Connection, exists, func, select

from aggregator.storage.queries import (
    FEED_COLUMNS,
    LINKED,
    chunks,
    feed_display_name,
    merge_targets,
)
from aggregator.storage.schema import entries, feeds, stories, story_entries
from aggregator.stories import build_story
from aggregator.types import Story, StorySource


def load_sources(conn: Connection, story_ids: Sequence[str]) -> dict[str, list[StorySource]]:
    """Every source of the given stories, one query per ``IN_CHUNK`` ids."""
    found: dict[str, list[StorySource]] = defaultdict(list)
    for part in chunks(story_ids):
        stmt = (
            select(
                story_entries.c.story_id,
                story_entries.c.score,
                story_entries.c.evidence,
                entries.c.feed_url,
                entries.c.entry_id,
                entries.c.title,
                entries.c.url,
                entries.c.link,
                entries.c.published,
                entries.c.first_seen,
                *FEED_COLUMNS,
            )
            .select_from(LINKED)
            .where(story_entries.c.story_id.in_(part))
        )
        for row in conn.execute(stmt).mappings():
            found[row["story_id"]].append(
                StorySource(
                    feed_url=row["feed_url"],
                    feed_name=feed_display_name(row),
                    entry_id=row["entry_id"],
                    title=row["title"],
                    # The canonical URL when normalisation found one, else the feed's own link.
                    url=row["url"] or row["link"],
                    published=row["published"],
                    score=float(row["score"]),
                    evidence=row["evidence"],
                    priority=int(row["feed_priority"]),
                    first_seen=row["first_seen"],
                )
            )
    return found


def _assemble(conn: Connection, heads: Iterable[tuple[str, datetime]]) -> list[Story]:
    heads = list(heads)
    sources = load_sources(conn, [story_id for story_id, _ in heads])
    return [
        build_story(story_id, sources[story_id], updated)
        for story_id, updated in heads
        if sources.get(story_id)
    ]


def tagged_feed_urls(conn: Connection, tag: str) -> list[str]:
    """URLs of the feeds carrying ``tag`` (the feed list is small: filtered here, portably)."""
    rows = conn.execute(select(feeds.c.url, feeds.c.tags))
    return [str(url) for url, tags in rows if tag in (tags or ())]


def recent_stories(
    conn: Connection, limit: int, *, min_sources: int, tag: str | None
) -> list[Story]:
    """The most recently updated stories with their sources, newest first."""
    if limit <= 0:
        return []
    count = (
        select(func.count())
        .where(story_entries.c.story_id == stories.c.id)
        .correlate(stories)
        .scalar_subquery()
    )
    # At least one source always: a story emptied by a merge is never listed.
    stmt = select(stories.c.id, stories.c.updated).where(count >= max(min_sources, 1))
    if tag is not None:
        tagged = tagged_feed_urls(conn, tag)
        if not tagged:
            return []
        stmt = stmt.where(
            exists()
            .where(story_entries.c.story_id == stories.c.id)
            .where(story_entries.c.feed_url.in_(tagged))
        )
    stmt = stmt.order_by(stories.c.updated.desc(), stories.c.id.desc()).limit(limit)
    heads = [(str(sid), updated) for sid, updated in conn.execute(stmt)]
    return _assemble(conn, heads)


def get_story(conn: Connection, story_id: str) -> Story | None:
    """One story with its sources; an id retired by a merge leads to the surviving story."""
    story_id = merge_targets(conn, [story_id]).get(story_id, story_id)
    row = conn.execute(select(stories.c.updated).where(stories.c.id == story_id)).first()
    if row is None:
        return None
    found = _assemble(conn, [(story_id, row[0])])
    return found[0] if found else None
