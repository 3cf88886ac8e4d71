from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from aggregator.schedule import JITTER_FRACTION, MAX_BACKOFF, MAX_SERVER_HINT, next_poll

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
