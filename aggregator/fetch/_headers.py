"""Reading the response headers that tell a polite client when to come back."""

from __future__ import annotations

import email.utils
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

# A server asking us to wait longer than this is more likely misconfigured than serious; the
# scheduler's own back-off takes over after it. A week matches the longest back-off we use.
MAX_RETRY_AFTER = timedelta(days=7)

# Freshness from Cache-Control/Expires is a floor on the next poll, but a feed that says
# "fresh for a year" must still be polled: one day is the most we honour.
MAX_CACHE_FLOOR = timedelta(days=1)

_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)\"?", re.IGNORECASE)


def parse_http_date(value: str) -> datetime | None:
    """An HTTP-date as a UTC datetime, or None when it is not one."""
    try:
        parsed = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:
        # RFC 9110 dates are GMT; a zone-less date ("-0000") is taken as UTC too.
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def retry_after(value: str | None, now: datetime) -> datetime | None:
    """When a 429/503 ``Retry-After`` (delay-seconds or HTTP-date) allows the next try.

    Garbage, negative delays and dates in the past give None; very long waits are capped at
    ``MAX_RETRY_AFTER``.
    """
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        when = now + min(timedelta(seconds=int(value[:12])), MAX_RETRY_AFTER)
    else:
        date = parse_http_date(value)
        if date is None or date <= now:
            return None
        when = min(date, now + MAX_RETRY_AFTER)
    return when


def cache_floor(headers: Mapping[str, str], now: datetime) -> datetime | None:
    """The time before which the server says a fresh copy is not worth asking for.

    From ``Cache-Control: max-age`` (less ``Age``), else ``Expires``; None when the response
    is not cacheable (``no-store``/``no-cache``), carries neither header, or is already stale.
    Capped at ``MAX_CACHE_FLOOR`` from ``now``. ``headers`` has lower-case keys.
    """
    control = headers.get("cache-control", "").lower()
    if "no-store" in control or "no-cache" in control:
        return None
    match = _MAX_AGE.search(control)
    if match is not None:
        age = headers.get("age", "").strip()
        seconds = int(match.group(1)[:12]) - (int(age[:12]) if age.isdigit() else 0)
        if seconds <= 0:
            return None
        return now + min(timedelta(seconds=seconds), MAX_CACHE_FLOOR)
    expires = parse_http_date(headers.get("expires", ""))
    if expires is None or expires <= now:
        return None
    return min(expires, now + MAX_CACHE_FLOOR)


def human_size(size: int) -> str:
    """``10485760`` -> ``"10 MiB"``; sizes that are not whole units keep one decimal."""
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            if unit == "bytes":
                return f"{size} bytes"
            return f"{value:.0f} {unit}" if value.is_integer() else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_seconds(seconds: float) -> str:
    """``60.0`` -> ``"60 s"``, ``0.5`` -> ``"0.5 s"``."""
    return f"{seconds:g} s"
