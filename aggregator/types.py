"""Typed, immutable records passed from one pipeline stage to the next.

Every datetime here is timezone-aware UTC. No stage passes feedparser dicts or ORM rows onward:
each converts at its boundary into these records.

    config -> FeedSpec
    fetch  -> FetchResult
    parse  -> ParsedFeed(ParsedEntry...)
    normalise -> Entry
    match  -> Assignment
    store  <- FeedRefresh ; -> FeedState, Story(StorySource...)
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

from aggregator.defaults import DEFAULT_INTERVAL

# Which meaning signal story matching uses (``settings.semantic``; ``aggregator.match.embedding``).
SemanticSignal = Literal["static", "minilm", "off"]
# The static model shipped with the package: no extra install, about 15 MB.
DEFAULT_SEMANTIC: SemanticSignal = "static"


@dataclass(frozen=True, slots=True)
class FeedSpec:
    """One feed as configured in feeds.yml (validated)."""

    url: str
    name: str | None = None
    interval: timedelta = DEFAULT_INTERVAL
    tags: tuple[str, ...] = ()
    priority: int = 0


def url_identity(url: str) -> str:
    """The form two feed URLs are compared in: scheme and host are case-insensitive."""
    parts = urlsplit(url)
    return parts._replace(scheme=parts.scheme.lower(), netloc=parts.netloc.lower()).geturl()


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What the fetcher got for one feed.

    ``content`` is None when the server answered 304 Not Modified. ``headers`` has lower-case
    keys. ``permanent_redirect`` is the new URL when every redirect hop was 301/308.
    """

    url: str
    final_url: str
    status: int
    content: bytes | None
    headers: Mapping[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    permanent_redirect: str | None = None
    elapsed: float = 0.0

    @property
    def not_modified(self) -> bool:
        return self.status == 304 or self.content is None


@dataclass(frozen=True, slots=True)
class ParsedEntry:
    """One entry as the feed states it; text fields may still hold HTML."""

    id: str
    title: str | None = None
    link: str | None = None
    summary: str | None = None
    content: str | None = None
    author: str | None = None
    published: datetime | None = None
    updated: datetime | None = None


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """A parsed feed document. ``warning`` holds feedparser's bozo reason when it recovered."""

    title: str | None
    link: str | None
    entries: tuple[ParsedEntry, ...]
    ttl: timedelta | None = None
    warning: str | None = None


@dataclass(frozen=True, slots=True)
class Entry:
    """A normalised entry: plain text (no HTML), UTC datetimes, canonical URL.

    ``content_hash`` changes when the outlet edits the entry's title, link or text.
    """

    feed_url: str
    entry_id: str
    title: str
    summary: str
    url: str | None
    link: str | None
    published: datetime
    updated: datetime | None
    first_seen: datetime
    content_hash: str
    author: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.feed_url, self.entry_id)


def new_story_id() -> str:
    """A short random story id (64 bits): unique across workers without coordination."""
    return secrets.token_hex(8)


@dataclass(frozen=True, slots=True)
class Assignment:
    """The matcher's decision for one new entry.

    ``new_story`` is True when ``story_id`` was just minted for this entry. ``evidence`` is a
    JSON-serialisable mapping explaining the decision (per-signal scores, shared terms).
    """

    story_id: str
    new_story: bool
    score: float
    evidence: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FeedStateUpdate:
    """The new per-feed state written at the end of one refresh.

    ``gone`` marks a feed the server answered 410 Gone: it is no longer polled.
    ``poll_interval`` is the interval adapted to the feed's posting rate (None: keep).
    """

    last_polled: datetime
    next_due: datetime
    status: int | None
    error: str | None
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    title: str | None = None
    moved_to: str | None = None
    gone: bool = False
    poll_interval: timedelta | None = None


@dataclass(frozen=True, slots=True)
class FeedRefresh:
    """Everything one feed refresh writes, committed in one transaction.

    ``story_merges`` are ``(into, other)`` pairs the matcher made while assigning these
    entries (two stories that grew alike): applied after the entries, in order.
    """

    feed_url: str
    state: FeedStateUpdate
    new_entries: tuple[tuple[Entry, Assignment], ...] = ()
    changed_entries: tuple[Entry, ...] = ()
    story_merges: tuple[tuple[str, str], ...] = ()

    @property
    def state_only(self) -> bool:
        """Nothing but the feed's polling state to write (a 304, an identical body, an error)."""
        return not (self.new_entries or self.changed_entries or self.story_merges)


@dataclass(frozen=True, slots=True)
class FeedState:
    """A feed as stored: its configuration and its polling state.

    ``interval`` is the configured one; ``poll_interval`` the one adapted to how often the feed
    posts (None until observed); ``moved_to`` the URL of a permanent redirect, polled instead;
    ``retained_since`` the newest publication time among the feed's pruned entries (None: none
    pruned): a new entry published at or before it is not stored (``refresh.decide``).
    """

    url: str
    name: str | None
    tags: tuple[str, ...]
    priority: int
    interval: timedelta
    active: bool
    title: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    last_polled: datetime | None = None
    next_due: datetime | None = None
    status: int | None = None
    error: str | None = None
    failures: int = 0
    moved_to: str | None = None
    gone: bool = False
    poll_interval: timedelta | None = None
    retained_since: datetime | None = None

    @property
    def display_name(self) -> str:
        return self.name or self.title or self.url

    @property
    def effective_interval(self) -> timedelta:
        return self.poll_interval or self.interval

    @property
    def fetch_url(self) -> str:
        """The URL polled: the permanent redirect's target when the feed moved."""
        return self.moved_to or self.url


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """An entry read back from storage together with the story it belongs to."""

    entry: Entry
    story_id: str
    score: float
    evidence: Mapping[str, Any]
    feed_name: str
    feed_priority: int


@dataclass(frozen=True, slots=True)
class StorySource:
    """One outlet's report inside a merged story."""

    feed_url: str
    feed_name: str
    entry_id: str
    title: str
    url: str | None
    published: datetime
    score: float
    evidence: Mapping[str, Any]
    priority: int = 0
    # When this service first saw the entry; None only for sources built outside storage.
    first_seen: datetime | None = None
    # The entry's summary as stored: plain text (normalisation removed the markup).
    summary: str = ""


@dataclass(frozen=True, slots=True)
class Story:
    """A merged story: a stable id, its representative headline and every source."""

    id: str
    title: str
    first_published: datetime
    updated: datetime
    sources: tuple[StorySource, ...]
    # Stored sources left out of ``sources`` because the story has more than storage loads
    # for one story (a bound against a feed flooding one story; see the storage contract).
    more_sources: int = 0
