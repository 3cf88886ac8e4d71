"""Health in words: a feed's, shared by ``aggregator feeds`` and the /feeds page, and the
service's, which ``/healthz`` reports (``ServiceHealth``)."""

from __future__ import annotations

import time
from collections.abc import Callable

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


# Failures in a row of storing a refresh or of publishing after which /healthz reports the
# service degraded: one is a database locked for a moment or a file being replaced; three in
# a row (at least three ticks apart when publishing) is a full disk, a read-only folder or a
# database that refuses writes, which an operator must hear about.
REPEATED_FAILURES = 3
# How long /healthz reports a parse that ran past its CPU bound: long enough for a monitor
# that checks every few minutes to see it, short enough that it clears once the feed is fixed.
OVERRUN_SHOWN_SECONDS = 15 * 60.0


class ServiceHealth:
    """What ``/healthz`` reports beyond the database: storing or publishing failing again and
    again, and parses that ran past their bound. The service records; the web app reads."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._failures: dict[str, tuple[int, str]] = {}
        self._overruns: dict[str, tuple[float, str]] = {}

    def failed(self, activity: str, message: str) -> int:
        """One more failure of ``activity`` ("storing", "publishing"); the count in a row."""
        count = self._failures.get(activity, (0, ""))[0] + 1
        self._failures[activity] = (count, message)
        return count

    def succeeded(self, activity: str) -> None:
        self._failures.pop(activity, None)

    def parse_overran(self, feed: str, message: str) -> None:
        """A parse of ``feed`` ran past its bound (CPU budget, or the worker died on it)."""
        self._overruns[feed] = (self._clock(), message)

    def problems(self) -> list[str]:
        """Why the service is degraded, most serious first; empty when it is not."""
        found = [
            f"{activity} failed {count} times in a row: {message}"
            for activity, (count, message) in sorted(self._failures.items())
            if count >= REPEATED_FAILURES
        ]
        now = self._clock()
        for feed, (when, message) in sorted(self._overruns.items()):
            if now - when > OVERRUN_SHOWN_SECONDS:
                del self._overruns[feed]
            else:
                found.append(
                    f"a parse ran past its bound {now - when:.0f} s ago: {feed}: {message}"
                )
        return found
