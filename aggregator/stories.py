"""Pure rules that turn a story's sources into the story readers see.

Representative headline rule (documented, deterministic, so it never flip-flops between polls):
the source whose feed has the highest ``priority`` in feeds.yml wins; among equals, the earliest
published; among those, the smallest (feed URL, entry id). A new source changes the headline only
when it outranks the current one under this rule.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from aggregator.types import Story, StorySource


def representative_key(source: StorySource) -> tuple[int, datetime, str, str]:
    """Sort key: the smallest key is the representative source."""
    return (-source.priority, source.published, source.feed_url, source.entry_id)


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
