"""Helpers every renderer shares: text cleaning, dates, ids and item order."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import format_datetime
from urllib.parse import quote

from aggregator.publish.links import safe_url
from aggregator.stories import representative_key
from aggregator.types import Story, StorySource

# Characters XML 1.0 forbids outright (§2.2); ElementTree would write them and produce a document
# no parser accepts, so they are removed from every string that came from a feed.
_XML_FORBIDDEN = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def clean_text(text: str) -> str:
    """``text`` without the characters XML cannot carry."""
    return _XML_FORBIDDEN.sub("", text)


def _utc(moment: datetime) -> datetime:
    if moment.utcoffset() is None:
        # Records carry aware UTC datetimes; a naive one is a bug upstream, not data to guess at.
        raise ValueError(f"naive datetime {moment!r} reached the publisher")
    return moment.astimezone(UTC)


def rfc3339(moment: datetime) -> str:
    """``2024-05-01T12:00:00Z``: RFC 3339, UTC, whole seconds (Atom and JSON Feed dates)."""
    return _utc(moment).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def rfc822(moment: datetime) -> str:
    """``Wed, 01 May 2024 12:00:00 GMT``: the RFC 822 form RSS 2.0 requires."""
    return format_datetime(_utc(moment).replace(microsecond=0), usegmt=True)


def story_urn(story: Story) -> str:
    """The item's stable id: ``urn:aggregator:story:<id>``."""
    return "urn:aggregator:story:" + quote(story.id, safe="")


def representative(story: Story) -> StorySource | None:
    """The source whose headline the story shows (same rule as ``aggregator.stories``)."""
    return min(story.sources, key=representative_key) if story.sources else None


def primary_url(story: Story) -> str | None:
    """The representative article's URL; if it is not linkable, the next source's that is."""
    for source in sorted(story.sources, key=representative_key):
        url = safe_url(source.url)
        if url:
            return url
    return None


def ordered(stories: Sequence[Story]) -> list[Story]:
    """Most recently updated first; ties by id so the output bytes never depend on input order."""
    return sorted(stories, key=lambda s: (_utc(s.updated), s.id), reverse=True)


def feed_updated(stories: Sequence[Story], explicit: datetime | None) -> datetime:
    """The feed's own update time: ``explicit``, else the newest story, else the Unix epoch."""
    if explicit is not None:
        return explicit
    if stories:
        return max(_utc(s.updated) for s in stories)
    return datetime(1970, 1, 1, tzinfo=UTC)
