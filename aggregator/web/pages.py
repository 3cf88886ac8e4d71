"""HTML pages: Jinja2 templates with autoescaping, fed small view models built here.

Every string that came from a feed reaches the page through Jinja2's autoescaping; the one
exception is the sources list, which is ``aggregator.publish.sources_html``: a fragment the
publisher builds with every text escaped and only http(s) links, shared with the feeds.

"New" and "updated" marks are stateless, so every reader and every cache sees the same page:
a story is *new* when its first report was published within ``FRESH_WINDOW`` of now, and
*updated* when it is not new but changed (an outlet joined it or edited its report) within
that window.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from aggregator.health import feed_notes
from aggregator.publish import sources_html
from aggregator.publish.links import safe_url
from aggregator.types import FeedState, Story, StorySource

# An hour: long enough that a reader checking in hourly sees what arrived since, short enough
# that the marks still mean "just happened" on a busy news day.
FRESH_WINDOW = timedelta(hours=1)
# A story's "updated" time is set when any refresh touches it; within this much of its first
# report that is the first report itself being stored, not an update.
UPDATE_GRACE = timedelta(minutes=1)

_env = Environment(
    loader=PackageLoader("aggregator.web", "templates"),
    autoescape=select_autoescape(("html",), default_for_string=True, default=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render(template: str, **context: Any) -> str:
    """Render ``templates/<template>`` with autoescaping on."""
    return _env.get_template(template).render(**context)


def utc_label(moment: datetime | None) -> str:
    """``2024-05-01 12:00 UTC`` (or ``-``)."""
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def iso(moment: datetime | None) -> str:
    """RFC 3339 for ``<time datetime>``."""
    return moment.astimezone(UTC).isoformat() if moment is not None else ""


def relative(moment: datetime | None, now: datetime) -> str:
    """``5 min ago``, ``in 3 h``, ``just now``: the distance from ``now`` in words."""
    if moment is None:
        return "never"
    delta = (now - moment).total_seconds()
    future = delta < 0
    seconds = abs(delta)
    if seconds < 60:
        return "just now" if not future else "in under a minute"
    for size, unit in ((86_400, "day"), (3_600, "h"), (60, "min")):
        if seconds >= size:
            amount = int(seconds // size)
            label = f"{amount} {unit}{'s' if unit == 'day' and amount != 1 else ''}"
            return f"in {label}" if future else f"{label} ago"
    raise AssertionError("unreachable")  # pragma: no cover


def freshness(story: Story, now: datetime) -> str | None:
    """``"new"``, ``"updated"`` or None, by the rule in the module docstring."""
    since = now - FRESH_WINDOW
    if story.first_published >= since:
        return "new"
    if story.updated >= since and story.updated - story.first_published > UPDATE_GRACE:
        return "updated"
    return None


@dataclass(frozen=True, slots=True)
class StoryView:
    story: Story
    mark: str | None
    outlets: int
    sources: Markup


def story_views(stories: Sequence[Story], now: datetime) -> list[StoryView]:
    """What the home page shows for each story."""
    return [
        StoryView(
            story=story,
            mark=freshness(story, now),
            outlets=len({s.feed_url for s in story.sources}),
            # Escaped by the publisher (see the module docstring), so it is marked safe here.
            sources=Markup(sources_html(story)),
        )
        for story in stories
    ]


@dataclass(frozen=True, slots=True)
class EvidenceRow:
    name: str
    value: str


def evidence_rows(evidence: Mapping[str, Any]) -> list[EvidenceRow]:
    """The matcher's evidence as name/value rows; numbers rounded, lists joined, sorted by name.

    ``shared_terms`` and ``score`` come first because they explain the decision best.
    """
    first = ("rule", "score", "meaning", "shared_terms")
    names = [n for n in first if n in evidence] + sorted(k for k in evidence if k not in first)
    return [EvidenceRow(str(name), _value(evidence[name])) for name in names]


def _value(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, list | tuple):
        return ", ".join(_value(v) for v in value) or "none"
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {_value(v)}" for k, v in value.items())
    return str(value)


@dataclass(frozen=True, slots=True)
class SourceView:
    source: StorySource
    link: str | None
    evidence: list[EvidenceRow]


def source_views(story: Story) -> list[SourceView]:
    """Each source of a story with its link (http(s) only) and the evidence of its match."""
    return [
        SourceView(source, safe_url(source.url), evidence_rows(source.evidence))
        for source in story.sources
    ]


@dataclass(frozen=True, slots=True)
class FeedView:
    feed: FeedState
    health: str
    status: str
    note: str
    link: str | None


def status_words(feed: FeedState) -> str:
    """``200 OK``, ``410 Gone``, ``no response`` or ``not polled yet``."""
    if feed.status is None:
        return "not polled yet" if feed.last_polled is None else "no response"
    try:
        return f"{feed.status} {HTTPStatus(feed.status).phrase}"
    except ValueError:
        return str(feed.status)


def feed_views(feeds: Sequence[FeedState]) -> list[FeedView]:
    """What the feeds page shows for each feed: health class, status and a note in words."""
    views = []
    for feed in feeds:
        notes = feed_notes(feed)
        if feed.last_polled is None:
            health = "pending"
        elif feed.error:
            health = "failing"
        else:
            health = "ok"
        views.append(
            FeedView(feed, health, status_words(feed), "; ".join(notes), safe_url(feed.url))
        )
    return views


_env.filters["utc"] = utc_label
_env.filters["iso"] = iso
_env.globals["relative"] = relative
