"""Stories with their sources: the lists readers see and single stories.

No query here is issued per story: sources of many stories are fetched with one ``IN`` query per
chunk of ids, and the story list itself is one query whose correlated counts use the index on
``story_entries.story_id``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, RowMapping, exists, func, select

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

# The most sources loaded for one story. A real story has tens of sources; a hostile feed once
# made one story with 190,000, and every page and published file loaded them all. The rest are
# counted, not loaded (``Story.more_sources``).
MAX_SOURCES_LOADED = 200


@dataclass(frozen=True, slots=True)
class LoadedSources:
    """A story's sources as loaded: the earliest ``MAX_SOURCES_LOADED`` and how many more."""

    sources: list[StorySource]
    left_out: int


def load_sources(conn: Connection, story_ids: Sequence[str]) -> dict[str, LoadedSources]:
    """The earliest ``MAX_SOURCES_LOADED`` sources of each given story, by (published, feed
    URL, entry id), with the number left out; one query per ``IN_CHUNK`` ids.

    The bound is applied in SQL (``ROW_NUMBER()`` per story), so a flooded story costs the
    database a count, not the transfer and assembly of every source.
    """
    order = (entries.c.published, entries.c.feed_url, entries.c.entry_id)
    per_story = (story_entries.c.story_id,)
    sources: dict[str, list[StorySource]] = defaultdict(list)
    totals: dict[str, int] = {}
    for part in chunks(story_ids):
        ranked = (
            select(
                story_entries.c.story_id,
                story_entries.c.score,
                story_entries.c.evidence,
                entries.c.feed_url,
                entries.c.entry_id,
                entries.c.title,
                entries.c.summary,
                entries.c.url,
                entries.c.link,
                entries.c.published,
                entries.c.first_seen,
                *FEED_COLUMNS,
                func.row_number().over(partition_by=per_story, order_by=order).label("nth"),
                func.count().over(partition_by=per_story).label("total"),
            )
            .select_from(LINKED)
            .where(story_entries.c.story_id.in_(part))
            .subquery()
        )
        stmt = select(ranked).where(ranked.c.nth <= MAX_SOURCES_LOADED)
        for row in conn.execute(stmt).mappings():
            sources[row["story_id"]].append(_source(row))
            totals[row["story_id"]] = int(row["total"])
    return {
        story_id: LoadedSources(found, totals[story_id] - len(found))
        for story_id, found in sources.items()
    }


def _source(row: RowMapping) -> StorySource:
    return StorySource(
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
        summary=row["summary"],
    )


def _assemble(conn: Connection, heads: Iterable[tuple[str, datetime]]) -> list[Story]:
    heads = list(heads)
    loaded = load_sources(conn, [story_id for story_id, _ in heads])
    return [
        build_story(
            story_id,
            loaded[story_id].sources,
            updated,
            more_sources=loaded[story_id].left_out,
        )
        for story_id, updated in heads
        if story_id in loaded
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
