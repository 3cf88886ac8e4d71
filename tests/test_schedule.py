from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from aggregator.refresh.schedule import (
    JITTER_FRACTION,
    MAX_BACKOFF,
    MAX_SERVER_HINT,
    adaptive_interval,
    next_poll,
    server_floor,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
INTERVAL = timedelta(minutes=15)


def test_success_polls_after_interval_with_bounded_jitter() -> None:
    rng = random.Random(1)
    for _ in range(200):
        due = next_poll(NOW, INTERVAL, rng=rng)
        assert NOW + INTERVAL <= due <= NOW + INTERVAL * (1 + JITTER_FRACTION)


def test_jitter_spreads_feeds_with_the_same_interval() -> None:
    rng = random.Random(2)
    assert len({next_poll(NOW, INTERVAL, rng=rng) for _ in range(50)}) > 40


def test_failures_back_off_exponentially_and_cap() -> None:
    rng = random.Random(3)
    delays = [next_poll(NOW, INTERVAL, failures=n, rng=rng) - NOW for n in range(1, 5)]
    for failures, delay in enumerate(delays, start=1):
        base = INTERVAL * 2 ** (failures - 1)
        assert base <= delay <= base * (1 + JITTER_FRACTION)
    capped = next_poll(NOW, INTERVAL, failures=60, rng=rng) - NOW
    assert MAX_BACKOFF <= capped <= MAX_BACKOFF * (1 + JITTER_FRACTION)


def test_server_hint_is_a_floor() -> None:
    later = NOW + timedelta(hours=3)
    assert next_poll(NOW, INTERVAL, not_before=later) == later


def test_earlier_server_hint_does_not_shorten_the_interval() -> None:
    due = next_poll(NOW, INTERVAL, not_before=NOW + timedelta(seconds=1))
    assert due >= NOW + INTERVAL


def test_absurd_server_hint_is_bounded() -> None:
    due = next_poll(NOW, INTERVAL, not_before=NOW + timedelta(days=365))
    assert due == NOW + MAX_SERVER_HINT


MIN = timedelta(minutes=5)
MAX = timedelta(hours=24)


def minutes_ago(*values: int) -> list[datetime]:
    return [NOW - timedelta(minutes=v) for v in values]


ADAPTIVE_CASES = {
    # name: (published minutes ago, configured, expected)
    "busy feed polls faster, down to the min bound": (
        minutes_ago(1, 2, 3, 4, 5, 6, 7, 8, 9, 10),
        INTERVAL,
        MIN,
    ),
    "moderate feed polls at its posting rate": (
        minutes_ago(10, 20, 30, 40, 50, 60, 70, 80, 90, 100),
        timedelta(minutes=15),
        timedelta(minutes=10),
    ),
    "quiet feed polls less, up to 4x the configured interval": (
        minutes_ago(60 * 24, 60 * 48, 60 * 72),
        INTERVAL,
        INTERVAL * 4,
    ),
    "silence since the last entry counts": (
        minutes_ago(600, 601, 602, 603),
        timedelta(hours=1),
        timedelta(minutes=150) + timedelta(seconds=45),
    ),
    "never beyond the global max": (
        minutes_ago(60 * 24 * 30, 60 * 24 * 60),
        timedelta(hours=12),
        MAX,
    ),
    "future dates are ignored": (
        [*minutes_ago(30), NOW + timedelta(hours=1)],
        INTERVAL,
        None,
    ),
    "a single entry says nothing": (minutes_ago(5), INTERVAL, None),
}


@pytest.mark.parametrize("name", list(ADAPTIVE_CASES))
def test_adaptive_interval(name: str) -> None:
    published, configured, expected = ADAPTIVE_CASES[name]
    assert adaptive_interval(published, NOW, configured, MIN, MAX) == expected


def test_server_floor_takes_the_latest_hint() -> None:
    a, b = NOW + timedelta(minutes=5), NOW + timedelta(hours=2)
    assert server_floor(a, None, b) == b
    assert server_floor(None, None) is None
