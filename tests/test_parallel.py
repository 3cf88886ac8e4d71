"""ParsePool: the records of in-process parsing, errors as ParseError, dead workers replaced."""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aggregator.config import Config
from aggregator.exceptions import ParseError
from aggregator.match.text import features
from aggregator.refresh import parse_pool
from aggregator.refresh.index_process import StoryIndexProcess
from aggregator.refresh.parse_pool import ParsePool, parse_and_normalise
from aggregator.refresh.workers import (
    INDEX_PROCESS_MIN_FEEDS,
    INLINE_AT_ONCE,
    INLINE_MAX_BYTES,
    index_in_own_process,
    parse_inline,
)
from aggregator.storage import SqlStorage

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


def test_workers_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="workers must be 0 or more"):
        ParsePool(workers=-1)


async def test_workers_0_parses_every_document_in_this_process() -> None:
    big = FEED.replace(b"</channel>", b"<!--" + b"x" * (INLINE_MAX_BYTES + 1) + b"--></channel>")
    async with ParsePool(workers=0) as pool:
        for document in (FEED, big, FEED):
            got = await pool.parse(document, HEADERS, URL, URL, NOW)
            assert got.entries[0].title == "Storm hits coast"
        assert pool.pool_starts == 0 and not pool.running


async def test_auto_parses_small_documents_here_and_a_backlog_in_workers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(parse_pool, "POOL_IDLE_SECONDS", 0.2)
    async with ParsePool(workers=None) as pool:
        await pool.parse(FEED, HEADERS, URL, URL, NOW)
        assert pool.pool_starts == 0, "one small document is parsed in this process"
        # Three documents at once: one parses here, the others are a backlog for the workers.
        got = await asyncio.gather(*(pool.parse(FEED, HEADERS, URL, URL, NOW) for _ in range(3)))
        assert all(g.entries == got[0].entries for g in got)
        # Workers extract every entry's features; a parse here leaves them to the store,
        # which extracts them for the new and changed entries only.
        assert sorted(g.features is None for g in got) == [False, False, True]
        assert pool.pool_starts == 1 and pool.running
        # While the workers run they take every document, small ones too.
        sent: list[bytes] = []
        in_worker = pool._in_worker

        def counted(content: bytes, *rest: Any) -> Any:
            sent.append(content)
            return in_worker(content, *rest)

        monkeypatch.setattr(pool, "_in_worker", counted)
        await pool.parse(FEED, HEADERS, URL, URL, NOW)
        assert sent == [FEED] and pool.pool_starts == 1
        # Idle past POOL_IDLE_SECONDS: the workers stop; the next backlog starts them again.
        await asyncio.sleep(1.0)
        assert not pool.running
        big = FEED.replace(
            b"</channel>", b"<!--" + b"x" * (INLINE_MAX_BYTES + 1) + b"--></channel>"
        )
        await pool.parse(big, HEADERS, URL, URL, NOW)
        assert pool.pool_starts == 2, "a large document goes to a worker, under the CPU bound"


@pytest.mark.parametrize(
    ("workers", "feeds", "shareable", "own"),
    [
        (None, INDEX_PROCESS_MIN_FEEDS - 1, True, False),
        (None, INDEX_PROCESS_MIN_FEEDS, True, True),
        (0, 10_000, True, False),
        (1, 1, True, True),
        (4, 1, False, False),
    ],
)
def test_where_the_match_index_runs(
    workers: int | None, feeds: int, shareable: bool, own: bool
) -> None:
    assert index_in_own_process(workers, feeds, shareable=shareable) is own


@pytest.mark.parametrize(
    ("workers", "size", "busy", "inline"),
    [
        (None, INLINE_MAX_BYTES, 0, True),
        (None, INLINE_MAX_BYTES + 1, 0, False),
        (None, 100, INLINE_AT_ONCE, False),
        (0, INLINE_MAX_BYTES * 10, 5, True),
        (2, 100, 0, False),
    ],
)
def test_which_documents_are_parsed_here(
    workers: int | None, size: int, busy: int, inline: bool
) -> None:
    assert parse_inline(workers, size, busy) is inline
    # Running workers take every document under auto.
    assert parse_inline(workers, size, busy, pool_running=True) is (workers == 0)


async def test_parse_outside_the_context_is_refused() -> None:
    with pytest.raises(RuntimeError, match="async with"):
        await ParsePool(workers=1).parse(FEED, HEADERS, URL, URL, NOW)


async def test_a_feed_list_crossing_the_threshold_asks_for_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from aggregator.config import load_config_text
    from aggregator.refresh import workers
    from aggregator.runtime import open_runtime
    from aggregator.service import Service

    monkeypatch.setattr(workers, "INDEX_PROCESS_MIN_FEEDS", 3)

    def config(feeds: int) -> Config:
        listed = "".join(f"  - url: https://o{i}.example/feed\n" for i in range(feeds))
        text = f"settings:\n  storage: {tmp_path / 'a.db'}\nfeeds:\n{listed}"
        return load_config_text(text, tmp_path / "feeds.yml")

    async with open_runtime(config(2)) as runtime:
        assert not runtime.index_own_process and "the service process" in runtime.processes
        service = Service(runtime)
        service.apply_config(config(2))
        assert "restart to apply" not in caplog.text
        service.apply_config(config(3))
    assert "3 feeds now: settings.workers would run the match index in a process of its own" in (
        caplog.text
    )


def _nested_tags(size: int) -> bytes:
    """An RSS document whose description nests ``<a>`` ``size`` bytes deep: not XML, so it
    goes through feedparser's loose parser, where it costs ~25 us of CPU per tag."""
    head = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><item>'
    tail = b"</description></item><item><title>y &</title></item></channel></rss>"
    return head + b"<title>x</title><description>" + b"<a>" * (size // 3) + tail


async def test_a_slow_document_here_is_handed_to_a_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parse_pool, "INLINE_CPU_SECONDS", 0.05)
    document = _nested_tags(30_000)
    async with ParsePool(workers=None) as pool:
        got = await pool.parse(document, HEADERS, URL, URL, NOW)
        assert pool.pool_starts == 1, "over the short budget here, the document went to a worker"
    assert [e.title for e in got.entries][:1] == ["x"]


async def test_workers_0_bounds_a_parse_in_this_process_too() -> None:
    async with ParsePool(workers=0, cpu_seconds=0.05) as pool:
        with pytest.raises(ParseError, match=r"parsing took more than 0\.05 s of CPU time"):
            await pool.parse(_nested_tags(60_000), HEADERS, URL, URL, NOW)
        assert pool.pool_starts == 0
        # The thread is fine afterwards: a later document parses normally.
        assert (await pool.parse(FEED, HEADERS, URL, URL, NOW)).entries


async def test_the_resource_tracker_stops_with_the_idle_workers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After a backlog the service is one process again: the workers and the resource tracker
    that spawning them started both stop; the next backlog starts both again."""
    from multiprocessing import resource_tracker

    monkeypatch.setattr(parse_pool, "POOL_IDLE_SECONDS", 0.2)
    monkeypatch.setattr(parse_pool, "TRACKER_CHECK_SECONDS", 0.2)
    tracker = resource_tracker._resource_tracker
    big = FEED.replace(b"</channel>", b"<!--" + b"x" * (INLINE_MAX_BYTES + 1) + b"--></channel>")
    async with ParsePool(workers=None) as pool:
        await pool.parse(big, HEADERS, URL, URL, NOW)
        assert pool.running and tracker._pid is not None
        tracker_pid = tracker._pid
        for _ in range(100):
            await asyncio.sleep(0.1)
            if tracker._pid is None:
                break
        assert not pool.running and tracker._pid is None
        with pytest.raises(ChildProcessError):
            os.waitpid(tracker_pid, os.WNOHANG)  # reaped: not even a zombie is left
        got = await pool.parse(big, HEADERS, URL, URL, NOW)
        assert got.entries[0].title == "Storm hits coast"
        assert pool.pool_starts == 2 and tracker._pid is not None


async def test_the_resource_tracker_stops_while_the_match_index_process_runs(
    monkeypatch: pytest.MonkeyPatch, storage: SqlStorage
) -> None:
    """The match index process lets go of the tracker's pipe as it starts, so the tracker its
    start started stops at once, and once the parse workers of a backlog have stopped it
    stops again, with the index process still answering (a service of 500 feeds or more kept
    the tracker for good)."""
    from multiprocessing import resource_tracker

    monkeypatch.setattr(parse_pool, "POOL_IDLE_SECONDS", 0.2)
    monkeypatch.setattr(parse_pool, "TRACKER_CHECK_SECONDS", 0.2)
    tracker = resource_tracker._resource_tracker
    big = FEED.replace(b"</channel>", b"<!--" + b"x" * (INLINE_MAX_BYTES + 1) + b"--></channel>")
    index = StoryIndexProcess(storage, timedelta(hours=48), lambda: NOW)
    try:
        assert tracker._pid is None  # spawning the index process started it; stopped since
        async with ParsePool(workers=None) as pool:
            got = await pool.parse(big, HEADERS, URL, URL, NOW)
            assert tracker._pid is not None  # the workers' start started it again
            for _ in range(100):
                await asyncio.sleep(0.1)
                if tracker._pid is None:
                    break
            assert not pool.running and tracker._pid is None
        assert index.pid is not None and os.waitpid(index.pid, os.WNOHANG) == (0, 0)
        matched = index.match([features(got.entries[0])], [])
        assert matched.assignments[0].new_story
    finally:
        index.close()
