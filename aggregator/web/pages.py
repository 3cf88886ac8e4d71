"""HTML pages: Jinja2 templates with autoescaping, the time filters they use, the feed list.

Every string that came from a feed reaches the page through Jinja2's autoescaping, and only
http(s) URLs become links (``aggregator.publish.links.safe_url``). The story view models are
in ``aggregator.web.views``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from aggregator.health import feed_notes
from aggregator.publish.links import safe_url
from aggregator.types import FeedState

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


def full_time(moment: datetime | None) -> str:
    """``Wed 1 May 2024, 12:00 UTC``: the exact time, shown on hover over a relative one."""
    if moment is None:
        return ""
    utc = moment.astimezone(UTC)
    return f"{utc:%a} {utc.day} {utc:%b %Y, %H:%M} UTC"


def iso(moment: datetime | None) -> str:
    """RFC 3339 for ``<time datetime>``."""
    return moment.astimezone(UTC).isoformat() if moment is not None else ""


# Past a week, "23 days ago" makes a reader count; the date says it at once.
RELATIVE_DAYS = 7


def relative(moment: datetime | None, now: datetime) -> str:
    """``5 min ago``, ``in 3 h``, ``just now``: the distance from ``now`` in words; further
    than ``RELATIVE_DAYS`` away, the date (``28 Sep 2017``)."""
    if moment is None:
        return "never"
    delta = (now - moment).total_seconds()
    if abs(delta) >= RELATIVE_DAYS * 86_400:
        utc = moment.astimezone(UTC)
        return f"{utc.day} {utc:%b %Y}"
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
_env.filters["full"] = full_time
_env.globals["relative"] = relative
