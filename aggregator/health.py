"""A feed's health in words, shared by ``aggregator feeds`` and the /feeds page."""

from __future__ import annotations

from aggregator.config import format_duration
from aggregator.types import FeedState

# How the fetcher's address guard words a refusal (``fetch/_guard.py``).
_REFUSED_ADDRESS = "refused to connect to "


def error_hint(error: str) -> str | None:
    """The setting or command that fixes an error, when there is one to name."""
    if error.startswith(_REFUSED_ADDRESS):
        return (
            "loopback and private addresses are fetched only inside settings.allow_networks "
            "in feeds.yml, e.g. allow_networks: ['127.0.0.0/8']"
        )
    return None


def feed_notes(feed: FeedState) -> list[str]:
    """What a reader of the feed list should know about one feed, most important first."""
    notes = []
    if feed.gone:
        notes.append("gone: the server says this feed was removed for good; no longer polled")
    if feed.moved_to:
        notes.append(f"moved permanently to {feed.moved_to}; update feeds.yml")
    if feed.error:
        notes.append(feed.error)
        hint = error_hint(feed.error)
        if hint:
            notes.append(hint)
    if not feed.active:
        notes.append("no longer in feeds.yml")
    if feed.poll_interval is not None and feed.poll_interval != feed.interval:
        notes.append(
            f"polled every {format_duration(feed.poll_interval)} (adapted to its posting rate;"
            f" configured {format_duration(feed.interval)})"
        )
    return notes
