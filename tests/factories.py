"""Record builders for tests: one place that knows every field of an ``Entry``."""

from __future__ import annotations

from datetime import datetime

from aggregator.types import Entry


def make_entry(
    feed_url: str,
    entry_id: str,
    title: str,
    *,
    published: datetime,
    content_hash: str,
    summary: str = "",
    url: str | None = None,
    link: str | None = None,
    first_seen: datetime | None = None,
) -> Entry:
    """An ``Entry`` as normalise would build it; ``first_seen`` defaults to ``published``."""
    return Entry(
        feed_url=feed_url,
        entry_id=entry_id,
        title=title,
        summary=summary,
        url=url,
        link=link,
        published=published,
        updated=None,
        first_seen=published if first_seen is None else first_seen,
        content_hash=content_hash,
    )
