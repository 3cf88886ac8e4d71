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
from typing import Any

from sqlalchemy import ColumnElement, Connection, RowMapping, exists, func, select

from aggregator.storage import search
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


def _story_filters(
    conn: Connection, *, min_sources: int, tag: str | None, query: str | None
) -> list[ColumnElement[bool]] | None:
    """WHERE conditions on ``stories`` for the listing filters; None when nothing can match
    (no feed carries ``tag``).

    A story is listed only with at least one entry, so one emptied by a merge never is;
    ``min_sources`` counts distinct feeds (outlets), not entries; ``query`` is searched as
    ``search.query_words`` says.
    """
    links = story_entries.c.story_id == stories.c.id
    if min_sources > 1:
        outlets = select(func.count(story_entries.c.feed_url.distinct())).where(links)
        where = [outlets.correlate(stories).scalar_subquery() >= min_sources]
    else:
        where = [exists().where(links)]
    if tag is not None:
        tagged = tagged_feed_urls(conn, tag)
        if not tagged:
            return None
        where.append(exists().where(links).where(story_entries.c.feed_url.in_(tagged)))
    words = search.query_words(query)
    if words:
        where.append(stories.c.id.in_(search.matching_story_ids(conn, words)))
    return where


def _page(
    conn: Connection,
    where: list[ColumnElement[bool]] | None,
    order: tuple[Any, ...],
    limit: int,
    offset: int = 0,
) -> list[Story]:
    """The stories meeting ``where`` in ``order``, ``offset`` skipped, ``limit`` at most."""
    if limit <= 0 or where is None:
        return []
    stmt = select(stories.c.id, stories.c.updated).where(*where).order_by(*order)
    stmt = stmt.limit(limit).offset(max(offset, 0))
    return _assemble(conn, [(str(sid), updated) for sid, updated in conn.execute(stmt)])


def recent_stories(
    conn: Connection, limit: int, *, min_sources: int, tag: str | None
) -> list[Story]:
    """The most recently updated stories with their sources, newest first."""
    where = _story_filters(conn, min_sources=min_sources, tag=tag, query=None)
    return _page(conn, where, (stories.c.updated.desc(), stories.c.id.desc()), limit)


def front_page(
    conn: Connection,
    limit: int,
    *,
    offset: int,
    min_sources: int,
    tag: str | None,
    query: str | None,
) -> list[Story]:
    """Stories by stored rank, highest first (then id, descending), ``offset`` skipped."""
    where = _story_filters(conn, min_sources=min_sources, tag=tag, query=query)
    return _page(conn, where, (stories.c.rank.desc(), stories.c.id.desc()), limit, offset)


def count_stories(conn: Connection, *, min_sources: int, tag: str | None, query: str | None) -> int:
    """How many stories ``front_page`` lists in all, with the same filters."""
    where = _story_filters(conn, min_sources=min_sources, tag=tag, query=query)
    if where is None:
        return 0
    stmt = select(func.count()).select_from(stories).where(*where)
    return int(conn.execute(stmt).scalar_one())


def get_story(conn: Connection, story_id: str) -> Story | None:
    """One story with its sources; an id retired by a merge leads to the surviving story."""
    story_id = merge_targets(conn, [story_id]).get(story_id, story_id)
    row = conn.execute(select(stories.c.updated).where(stories.c.id == story_id)).first()
    if row is None:
        return None
    found = _assemble(conn, [(story_id, row[0])])
    return found[0] if found else None
