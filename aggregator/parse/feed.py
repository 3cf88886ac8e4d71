"""The entry point: fetched bytes in, a ``ParsedFeed`` of typed records out.

``parse_feed`` decodes and defuses the document (``decode``), offers it to the lxml fast path
for its format (``formats``) and else to feedparser (``feedparser_adapter``); both give the
same feedparser-shaped mappings, which become records here.

Entry identity is the entry's guid/id, else its link, else a hash of its title and content.
feedparser resolves a relative guid/id against the document URL (a guid is a permalink unless
``isPermaLink="false"``), so such ids follow the feed's URL. Duplicate ids inside one document
keep the first entry.
"""

from __future__ import annotations

import calendar
import hashlib
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from aggregator.exceptions import ParseError
from aggregator.parse.budget import PARSE_CPU_SECONDS, cpu_budget
from aggregator.parse.decode import decode_document, neutralise_dtd, replace_invalid_char_refs
from aggregator.parse.feedparser_adapter import parse_with_feedparser
from aggregator.parse.formats import fast_parse
from aggregator.types import ParsedEntry, ParsedFeed

__all__ = ["ENTRY_ID_MAX_CHARS", "parse_feed"]

# Ids longer than this (some feeds put a whole URL with a session blob in <guid>) are replaced by
# a hash: storage keys stay small and the id stays stable.
ENTRY_ID_MAX_CHARS = 512
# An RSS <ttl> beyond a week is a typo or a unit mix-up; ignore it rather than stop polling.
MAX_TTL = timedelta(days=7)


def _datetime(value: Any) -> datetime | None:
    """feedparser's UTC struct_time as an aware datetime; None if absent or out of range."""
    if not isinstance(value, time.struct_time):
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), UTC)
    except (OverflowError, ValueError, OSError):
        return None


def _text(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value or None


def _content(entry: Mapping[str, Any]) -> str | None:
    parts = entry.get("content")
    if not isinstance(parts, list):
        return None
    for part in parts:
        if isinstance(part, Mapping) and (value := _text(part.get("value"))) is not None:
            return value
    return None


def _identity(entry: Mapping[str, Any], title: str | None, content: str | None) -> str:
    ident = _text(entry.get("id")) or _text(entry.get("link"))
    if ident is None:
        digest = hashlib.sha256()
        digest.update((title or "").encode())
        digest.update(b"\x00")
        digest.update((content or _text(entry.get("summary")) or "").encode())
        return "sha256:" + digest.hexdigest()
    if len(ident) > ENTRY_ID_MAX_CHARS:
        return "sha256:" + hashlib.sha256(ident.encode()).hexdigest()
    return ident


def _entry(entry: Mapping[str, Any]) -> ParsedEntry:
    title = _text(entry.get("title"))
    content = _content(entry)
    return ParsedEntry(
        id=_identity(entry, title, content),
        title=title,
        link=_text(entry.get("link")),
        summary=_text(entry.get("summary")),
        content=content,
        author=_text(entry.get("author")),
        published=_datetime(entry.get("published_parsed")),
        updated=_datetime(entry.get("updated_parsed")),
    )


def _ttl(feed: Mapping[str, Any]) -> timedelta | None:
    raw = _text(feed.get("ttl"))
    if raw is None or not raw.isdigit():
        return None
    ttl = timedelta(minutes=int(raw[:9]))
    return ttl if timedelta(0) < ttl <= MAX_TTL else None


def parse_feed(
    content: bytes,
    headers: Mapping[str, str],
    url: str,
    *,
    fast_path: bool = True,
    cpu_seconds: float | None = PARSE_CPU_SECONDS,
) -> ParsedFeed:
    """Parse a feed document; raise ``ParseError`` when ``content`` is not a feed.

    ``headers`` are the response headers (lower-case keys); ``url`` is where the document was
    found and is the base for relative links. ``ParsedFeed.warning`` says what feedparser or
    the encoding check had to recover from. ``fast_path=False`` always uses feedparser (the
    differential tests compare the two). A parse that uses more than ``cpu_seconds`` of CPU
    time raises ``ParseError`` (``budget.cpu_budget``; None for no budget).
    """
    with cpu_budget(url, cpu_seconds):
        return _parse(content, headers, url, fast_path)


def _parse(content: bytes, headers: Mapping[str, str], url: str, fast_path: bool) -> ParsedFeed:
    if not content.strip():
        raise ParseError(url, "empty document")
    # Decode first so the DTD is found whatever the encoding (a UTF-16 bomb included).
    text, encoding_warning = decode_document(content, headers)
    document = replace_invalid_char_refs(neutralise_dtd(text.encode("utf-8")))
    fast = fast_parse(document, url) if fast_path else None
    if fast is not None:
        feed, raw_entries, version, bozo, reason = (
            fast.feed,
            fast.entries,
            fast.version,
            False,
            None,
        )
    else:
        result = parse_with_feedparser(document, headers, url)
        feed = dict(result.get("feed") or {})
        raw_entries = list(result.get("entries") or [])
        version = result.get("version") or ""
        bozo = bool(result.get("bozo"))
        reason = result.get("bozo_exception")

    title = _text(feed.get("title"))
    if not raw_entries and (not version or (bozo and title is None)):
        detail = f": {reason}" if bozo and reason else ""
        raise ParseError(url, f"not an RSS or Atom feed{detail}")

    entries: list[ParsedEntry] = []
    seen: set[str] = set()
    for raw in raw_entries:
        # A plain dict: FeedParserDict.get("updated_parsed") silently (and with a deprecation
        # warning) answers with published_parsed when the entry has no update date.
        entry = _entry(dict(raw))
        if entry.id not in seen:
            seen.add(entry.id)
            entries.append(entry)

    warnings = [w for w in (encoding_warning, str(reason) if bozo and reason else None) if w]
    return ParsedFeed(
        title=title,
        link=_text(feed.get("link")),
        entries=tuple(entries),
        ttl=_ttl(feed),
        warning="; ".join(warnings) or None,
    )
