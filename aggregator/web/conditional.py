"""HTTP validators for the merged feeds: a strong ETag over the bytes, Last-Modified, 304s."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime

from starlette.datastructures import Headers

# 128 bits of SHA-256 identify a feed body for caching purposes with no realistic collision.
ETAG_HEX_DIGITS = 32


def strong_etag(body: bytes) -> str:
    """A strong entity tag: the quoted start of the body's SHA-256."""
    return '"' + hashlib.sha256(body).hexdigest()[:ETAG_HEX_DIGITS] + '"'


def http_date(moment: datetime) -> str:
    """``Wed, 01 May 2024 12:00:00 GMT`` (whole seconds, as HTTP dates are)."""
    return format_datetime(moment.astimezone(UTC).replace(microsecond=0), usegmt=True)


def _opaque(tag: str) -> str:
    tag = tag.strip()
    return tag[2:] if tag.startswith("W/") else tag


def is_not_modified(headers: Headers, etag: str, last_modified: datetime | None) -> bool:
    """Whether a GET with these request headers gets 304 Not Modified (RFC 9110 §13.1).

    If-None-Match wins when present (compared weakly, as the RFC says for GET); otherwise
    If-Modified-Since is compared with ``last_modified`` to the second. An unparsable date is
    ignored, as the RFC requires.
    """
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        tags = [t for t in if_none_match.split(",") if t.strip()]
        return any(t.strip() == "*" or _opaque(t) == _opaque(etag) for t in tags)
    since_text = headers.get("if-modified-since")
    if since_text is None or last_modified is None:
        return False
    try:
        since = parsedate_to_datetime(since_text)
    except (TypeError, ValueError):
        return False
    if since.tzinfo is None:
        return False
    return last_modified.replace(microsecond=0) <= since
