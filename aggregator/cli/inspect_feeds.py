"""``aggregator inspect``: show what the pipeline makes of a feed, for "why does it look wrong?".

Each feed (URL or local file) yields JSON-ready dicts: one per entry, or one with an
``error`` when the feed could not be read or parsed. Nothing is stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aggregator.cli._common import iso
from aggregator.config import Config
from aggregator.exceptions import FeedError
from aggregator.health import error_hint
from aggregator.normalise import normalise_entry
from aggregator.parse import parse_feed
from aggregator.runtime import make_fetcher
from aggregator.types import Entry


def entry_to_json(entry: Entry) -> dict[str, Any]:
    return {
        "feed": entry.feed_url,
        "entry_id": entry.entry_id,
        "title": entry.title,
        "summary": entry.summary,
        "url": entry.url,
        "link": entry.link,
        "author": entry.author,
        "published": iso(entry.published),
        "updated": iso(entry.updated),
        "first_seen": iso(entry.first_seen),
        "content_hash": entry.content_hash,
    }


def _is_url(feed: str) -> bool:
    return urlsplit(feed).scheme in ("http", "https")


def _entries(content: bytes, headers: dict[str, str], url: str, name: str) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    parsed = parse_feed(content, headers, url)
    lines = [entry_to_json(normalise_entry(e, name, now)) for e in parsed.entries]
    if parsed.warning:
        for line in lines:
            line["warning"] = parsed.warning
    return lines


async def inspect_feeds(config: Config, feeds: Sequence[str]) -> list[dict[str, Any]]:
    """Parsed, normalised entries of every feed, in order; errors as ``{"feed", "error"}``."""
    lines: list[dict[str, Any]] = []
    async with make_fetcher(config) as fetcher:
        for feed in feeds:
            try:
                if _is_url(feed):
                    result = await fetcher.fetch(feed)
                    content = result.content or b""
                    headers = dict(result.headers)
                    url = result.final_url
                else:
                    path = Path(feed)
                    content = await asyncio.to_thread(path.read_bytes)
                    headers = {}
                    url = path.resolve().as_uri()
                lines.extend(await asyncio.to_thread(_entries, content, headers, url, feed))
            except FeedError as exc:
                line = {"feed": feed, "error": exc.message}
                if hint := error_hint(exc.message):
                    line["hint"] = hint
                lines.append(line)
            except OSError as exc:
                lines.append({"feed": feed, "error": f"cannot read file: {exc.strerror}"})
    return lines
