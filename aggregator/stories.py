"""Pure rules that turn a story's sources into the story readers see.

Representative headline rule (documented, deterministic, so it never flip-flops between polls):
the source whose feed has the highest ``priority`` in feeds.yml wins; among equals, the earliest
reported; among those, the smallest (feed URL, entry id). A new source changes the headline only
when it outranks the current one under this rule.

"Reported" is the later of the date an entry claims and when we first saw it: a feed can claim
any date, so an entry backdated by a day and seen only now reports now, and cannot take the
headline (and the story's link) from the outlets that reported the story first (issue #19).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from aggregator.types import Story, StorySource


def reported(source: StorySource) -> datetime:
    """When the source reported the story: its claimed date, unless we saw it only later."""
    if source.first_seen is None:
        return source.published
    return max(source.published, source.first_seen)


def representative_key(source: StorySource) -> tuple[int, datetime, str, str]:
    """Sort key: the smallest key is the representative source."""
    return (-source.priority, reported(source), source.feed_url, source.entry_id)


def build_story(story_id: str, sources: Iterable[StorySource], updated: datetime) -> Story:
    """Assemble a Story from its sources; sources are listed earliest first."""
    ordered = tuple(sorted(sources, key=lambda s: (s.published, s.feed_url, s.entry_id)))
    if not ordered:
        raise ValueError(f"story {story_id} has no sources")
    headline = min(ordered, key=representative_key)
    return Story(
        id=story_id,
        title=headline.title,
        first_published=ordered[0].published,
        updated=max(updated, ordered[-1].published),
        sources=ordered,
    )
