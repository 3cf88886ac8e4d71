"""Prometheus metrics of the service, exposed at ``/metrics`` in the text exposition format.

Each ``Metrics`` owns its own registry (not prometheus_client's process-wide default), so two
apps in one process, or two tests, never share or double-register counters.

::

    aggregator_polls_total{result="ok|not_modified|error"}   counter   one per feed refresh
    aggregator_fetch_errors_total                            counter   refreshes that failed
    aggregator_entries_total{kind="new|updated"}             counter   entries stored
    aggregator_poll_duration_seconds                         histogram one refresh, fetch to commit
    aggregator_feeds                                         gauge     active configured feeds
    aggregator_stories                                       gauge     stories stored
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from aggregator.refresh.updater import RefreshResult

__all__ = ["CONTENT_TYPE", "POLL_DURATION_BUCKETS", "Metrics", "poll_result_label"]

# The classic text format every Prometheus version scrapes; our metric and label names are all
# plain ASCII, so the body is the same as in the newer 1.0.0 format.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# A 304 or an unchanged body takes tens of milliseconds; a full fetch and parse of a large feed
# about a second; the fetch deadline (60 s by default) bounds the slowest, so the buckets span
# 50 ms to a minute.
POLL_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def poll_result_label(result: RefreshResult) -> str:
    """``error`` for a failed refresh, ``not_modified`` for a 304/identical body, else ``ok``."""
    if result.error:
        return "error"
    if result.unchanged_body:
        return "not_modified"
    return "ok"


class Metrics:
    """Counters the updater or service feeds (``observe_poll``) and gauges set when scraped."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.polls = Counter(
            "aggregator_polls",
            "Feed refreshes, by result.",
            ["result"],
            registry=self.registry,
        )
        self.fetch_errors = Counter(
            "aggregator_fetch_errors",
            "Feed refreshes that ended in an error (network, HTTP status, limits or parsing).",
            registry=self.registry,
        )
        self.entries = Counter(
            "aggregator_entries",
            "Entries stored, new or updated by their outlet.",
            ["kind"],
            registry=self.registry,
        )
        self.poll_duration = Histogram(
            "aggregator_poll_duration_seconds",
            "Time one feed refresh took, from fetch to commit.",
            buckets=POLL_DURATION_BUCKETS,
            registry=self.registry,
        )
        self.feeds = Gauge(
            "aggregator_feeds", "Active feeds in the configuration.", registry=self.registry
        )
        self.stories = Gauge(
            "aggregator_stories",
            "Stories stored (every story with at least one source, merged-away ones not counted).",
            registry=self.registry,
        )
        # Every label value appears from the start, at 0, so rates work before the first error.
        for label in ("ok", "not_modified", "error"):
            self.polls.labels(result=label)
        for kind in ("new", "updated"):
            self.entries.labels(kind=kind)

    def observe_poll(self, result: RefreshResult) -> None:
        """Count one feed refresh: its result, its new and updated entries, its duration."""
        label = poll_result_label(result)
        self.polls.labels(result=label).inc()
        if label == "error":
            self.fetch_errors.inc()
        if result.new:
            self.entries.labels(kind="new").inc(result.new)
        if result.changed:
            self.entries.labels(kind="updated").inc(result.changed)
        self.poll_duration.observe(max(result.seconds, 0.0))

    def set_inventory(self, *, feeds: int, stories: int) -> None:
        """Set the gauges: active feeds and stories in the merged feed."""
        self.feeds.set(feeds)
        self.stories.set(stories)

    def exposition(self) -> bytes:
        """Every metric in the Prometheus text exposition format."""
        return generate_latest(self.registry)
