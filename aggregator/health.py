"""A feed's health in words, shared by ``aggregator feeds`` and the /feeds page."""

from __future__ import annotations

from aggregator.config import format_duration
from aggregator.types import FeedState


def feed_notes(feed: FeedState) -> list[str]:
    """What a reader of the feed list should know about one feed, most important first."""
    notes = []
    if feed.gone:
        notes.append("gone: the server says this feed was removed for good; no longer polled")
    if feed.moved_to:
        notes.append(f"moved permanently to {feed.moved_to}; update feeds.yml")
    if feed.error:
        notes.append(feed.error)
    if not feed.active:
        notes.append("no longer in feeds.yml")
    if feed.poll_interval is not None and feed.poll_interval != feed.interval:
        notes.append(
            f"polled every {format_duration(feed.poll_interval)} (adapted to its posting rate;"
            f" configured {format_duration(feed.interval)})"
        )
    return notes
