"""ParsePool: the records of in-process parsing, errors as ParseError, dead workers replaced."""

from __future__ import annotations

import os
import signal
from datetime import UTC, datetime

import pytest

from aggregator.exceptions import ParseError
from aggregator.refresh.parse_pool import ParsePool, parse_and_normalise

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
FEED = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Outlet</title><link>https://outlet.example/</link>
<item><title>Storm &lt;b&gt;hits&lt;/b&gt; coast</title><link>https://outlet.example/a</link>
<guid>a</guid><pubDate>Wed, 01 May 2024 10:00:00 GMT</pubDate>
<description>&lt;p&gt;Winds of &lt;i&gt;100 km/h&lt;/i&gt;&lt;/p&gt;</description></item>
</channel></rss>"""
HEADERS = {"content-type": "application/rss+xml"}
URL = "https://outlet.example/feed"


async def test_pool_returns_what_in_process_parsing_returns() -> None:
    async with ParsePool(workers=1) as pool:
        got = await pool.parse(FEED, HEADERS, URL, URL, NOW)
    assert got == parse_and_normalise(FEED, HEADERS, URL, URL, NOW)
    assert got.entries[0].title == "Storm hits coast"
    # What the schedule reads of the document: its title and the dates its entries give.
    assert got.title == "Outlet" and got.ttl is None
    assert got.dated == (datetime(2024, 5, 1, 10, 0, tzinfo=UTC),)
    # The entry's matching features come back beside it.
    assert got.features[0].key == got.entries[0].key and "storm" in got.features[0].title_terms


async def test_parse_error_in_a_worker_is_a_parse_error_here() -> None:
    async with ParsePool(workers=1) as pool:
        with pytest.raises(ParseError) as caught:
            await pool.parse(b"<html><body>not a feed</body></html>", HEADERS, URL, URL, NOW)
    assert caught.value.url == URL
    assert "not an RSS or Atom feed" in caught.value.message


async def test_a_killed_worker_is_replaced() -> None:
    async with ParsePool(workers=1) as pool:
        await pool.parse(FEED, HEADERS, URL, URL, NOW)
        executor = pool._executor
        assert executor is not None
        for pid in list(executor._processes):  # the only way to kill one of its workers
            os.kill(pid, signal.SIGKILL)
        got = await pool.parse(FEED, HEADERS, URL, URL, NOW)
        assert pool._executor is not None and pool._executor is not executor
    assert got == parse_and_normalise(FEED, HEADERS, URL, URL, NOW)


def test_workers_must_be_positive() -> None:
    with pytest.raises(ValueError, match="workers must be positive"):
        ParsePool(workers=0)


async def test_parse_outside_the_context_is_refused() -> None:
    with pytest.raises(RuntimeError, match="async with"):
        await ParsePool(workers=1).parse(FEED, HEADERS, URL, URL, NOW)
