"""``Updater.refresh_many``: no more changed feeds between parse and store than fetch slots;
results in the order given; hosts taken in turn. Real loopback servers and a real SQLite file."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

from servers import LoopbackServer, Reply
from test_pipeline import rss

from aggregator.config import load_config_text
from aggregator.refresh.updater import RefreshResult
from aggregator.runtime import open_runtime
from aggregator.types import FeedState

CONCURRENCY = 3
FEEDS_PER_HOST = 6


def feed_body(n: int) -> bytes:
    items = [
        (f"g{n}-{i}", f"Story {n} part {i} headline", "text", f"https://e.example/{n}/{i}")
        for i in range(3)
    ]
    return rss(f"outlet{n}", items)


async def test_feeds_being_processed_never_exceed_the_fetch_concurrency(tmp_path: Path) -> None:
    with LoopbackServer() as first, LoopbackServer() as second:
        urls = []
        for host, server in (("127.0.0.1", first), ("localhost", second)):
            for n in range(FEEDS_PER_HOST):
                server.route(f"/f{n}", Reply(body=feed_body(n)))
                urls.append(f"http://{host}:{server.port}/f{n}")
        feeds_yml = "\n".join(f"  - url: {u}" for u in urls)
        config = load_config_text(
            f"settings:\n  allow_networks: ['127.0.0.0/8', '::1/128']\n"
            f"  concurrency: {CONCURRENCY}\n  per_host: {CONCURRENCY}\nfeeds:\n{feeds_yml}\n",
            tmp_path / "feeds.yml",
        )
        async with open_runtime(config) as runtime:
            updater = runtime.updater
            parse, match_and_store, refresh = (
                updater._parse,
                updater._match_and_store,
                updater.refresh,
            )
            processing = most = 0
            started: list[str] = []

            async def counted_parse(*args: Any) -> Any:
                nonlocal processing, most
                processing += 1
                most = max(most, processing)
                await asyncio.sleep(0.01)  # let every other fetched feed reach its parse
                return await parse(*args)

            async def counted_store(*args: Any) -> Any:
                nonlocal processing
                try:
                    return await match_and_store(*args)
                finally:
                    processing -= 1

            async def recorded_refresh(feed: FeedState) -> RefreshResult:
                started.append(feed.url)
                return await refresh(feed)

            updater._parse = counted_parse  # type: ignore[method-assign]
            updater._match_and_store = counted_store  # type: ignore[method-assign]
            updater.refresh = recorded_refresh  # type: ignore[method-assign]
            feeds = runtime.storage.list_feeds()
            results = await updater.refresh_many(feeds)

    assert [r.error for r in results] == [None] * len(urls)
    assert [r.feed_url for r in results] == [f.url for f in feeds]  # the order given
    # From parse to store, no more feeds than fetch slots: parsed documents stay few.
    assert most == CONCURRENCY
    hosts = ["localhost" if "//localhost" in url else "127.0.0.1" for url in started]
    # Hosts alternate, though each host's feeds were listed together.
    alternating = (["127.0.0.1", "localhost"], ["localhost", "127.0.0.1"])
    assert hosts in [pair * FEEDS_PER_HOST for pair in alternating]


async def test_gone_feeds_are_not_asked_again(tmp_path: Path) -> None:
    with LoopbackServer(
        {"/live": Reply(body=feed_body(1)), "/gone": Reply(body=feed_body(2))}
    ) as srv:
        config = load_config_text(
            f"settings:\n  allow_networks: ['127.0.0.0/8']\nfeeds:\n"
            f"  - url: {srv.url('/live')}\n  - url: {srv.url('/gone')}\n",
            tmp_path / "feeds.yml",
        )
        async with open_runtime(config) as runtime:
            feeds = [
                replace(f, gone=True) if f.url.endswith("/gone") else f
                for f in runtime.storage.list_feeds()
            ]
            results = await runtime.updater.refresh_many(feeds)
            assert await runtime.updater.refresh_many([]) == []
        assert [r.feed_url for r in results] == [srv.url("/live")]
        assert [r.path for r in srv.requests] == ["/live"]
