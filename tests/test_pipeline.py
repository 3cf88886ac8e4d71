"""End to end through the real pipeline: loopback HTTP servers, real SQLite files."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

import feedparser
import pytest
from servers import LoopbackServer, Reply

from aggregator.config import Config, load_config_text
from aggregator.match.text import Features
from aggregator.refresh.updater import RefreshResult
from aggregator.runtime import open_runtime
from aggregator.types import Entry

PUBLISHED = datetime(2017, 9, 28, 18, 0, tzinfo=UTC)

ANKARA = {
    "rferl": (
        "Putin, Erdogan Pledge To Closely Cooperate On Syria",
        "Russian President Vladimir Putin and Turkish President Recep Tayyip Erdogan pledged"
        " to closely cooperate on Syria after talks in Ankara.",
    ),
    "tass": (
        "Putin, Erdogan discuss Syria settlement at talks in Ankara",
        "Vladimir Putin and Recep Tayyip Erdogan held talks in Ankara on Thursday, saying"
        " conditions have been created to end the war in Syria.",
    ),
    "ap": (
        "Putin and Erdogan say conditions exist to end Syria's war",
        "Russia's Vladimir Putin and Turkey's Recep Tayyip Erdogan said in Ankara that"
        " conditions have been created to end Syria's war and pledged to cooperate closely.",
    ),
}


def rss(outlet: str, items: list[tuple[str, str, str, str]]) -> bytes:
    """An RSS 2.0 document; items are (guid, title, summary, link)."""
    body = "".join(
        f"<item><guid>{escape(guid)}</guid><title>{escape(title)}</title>"
        f"<description>{escape(summary)}</description><link>{escape(link)}</link>"
        f"<pubDate>{format_datetime(PUBLISHED + timedelta(minutes=i))}</pubDate></item>"
        for i, (guid, title, summary, link) in enumerate(items)
    )
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>{outlet}</title>'
        f"<link>https://{outlet}.example/</link><description>d</description>{body}"
        "</channel></rss>"
    ).encode()


def ankara_feed(outlet: str, title_suffix: str = "") -> bytes:
    title, summary = ANKARA[outlet]
    link = f"https://{outlet}.example/ankara?utm_source=rss"
    return rss(outlet, [(f"{outlet}-1", title + title_suffix, summary, link)])


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as srv:
        yield srv


def make_config(tmp_path: Path, urls: list[str]) -> Config:
    feeds = "\n".join(f"  - url: {url}\n    name: {url.rsplit('/', 1)[-1]}" for url in urls)
    text = f"settings:\n  allow_networks: ['127.0.0.0/8']\nfeeds:\n{feeds}\n"
    return load_config_text(text, tmp_path / "feeds.yml")


async def poll_once(config: Config) -> list[RefreshResult]:
    async with open_runtime(config) as runtime:
        results = await runtime.updater.refresh_many(runtime.storage.list_feeds())
        runtime.publish()
        return results


def rows(config: Config, table: str) -> int:
    db = config.settings.storage_url.removeprefix("sqlite:///")
    with sqlite3.connect(db) as conn:
        count = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    assert isinstance(count, int)
    return count


def serve_ankara(server: LoopbackServer) -> list[str]:
    for outlet in ANKARA:
        server.route(f"/{outlet}", Reply(body=ankara_feed(outlet), etag=f'"{outlet}-v1"'))
    return [server.url(f"/{outlet}") for outlet in ANKARA]


async def test_three_outlets_make_one_story_in_every_format(
    server: LoopbackServer, tmp_path: Path
) -> None:
    config = make_config(tmp_path, serve_ankara(server))
    results = await poll_once(config)
    assert [r.error for r in results] == [None, None, None]
    assert rows(config, "stories") == 1

    out = config.settings.output
    atom = feedparser.parse((out / "merged.atom").read_bytes())
    rss_doc = feedparser.parse((out / "merged.rss").read_bytes())
    for doc in (atom, rss_doc):
        assert len(doc.entries) == 1
        content = doc.entries[0].get("content", [{}])[0].get("value") or doc.entries[0].summary
        for outlet, (title, _summary) in ANKARA.items():
            assert escape(title).replace("'", "&#x27;") in content or title in content
            assert f"https://{outlet}.example/ankara" in content
    feed = json.loads((out / "merged.json").read_text())
    assert len(feed["items"]) == 1
    sources = feed["items"][0]["_aggregator"]["sources"]
    assert sorted(s["outlet"] for s in sources) == sorted(ANKARA)
    # Tracking parameters are gone from the canonical article URLs.
    assert all("utm_source" not in s["url"] for s in sources)


async def test_second_poll_answered_304_adds_nothing(
    server: LoopbackServer, tmp_path: Path
) -> None:
    config = make_config(tmp_path, serve_ankara(server))
    await poll_once(config)
    before = (rows(config, "entries"), rows(config, "stories"), rows(config, "story_entries"))
    results = await poll_once(config)
    assert [r.status for r in results] == [304, 304, 304]
    assert all(r.unchanged_body and r.new == 0 for r in results)
    after = (rows(config, "entries"), rows(config, "stories"), rows(config, "story_entries"))
    assert after == before == (3, 1, 3)
    conditional = [r for r in server.requests if "if-none-match" in r.headers]
    assert len(conditional) == 3


async def test_identical_body_without_validators_is_not_reparsed(
    server: LoopbackServer, tmp_path: Path
) -> None:
    server.route("/plain", Reply(body=ankara_feed("tass")))
    config = make_config(tmp_path, [server.url("/plain")])
    await poll_once(config)
    (result,) = await poll_once(config)
    assert result.status == 200 and result.unchanged_body
    assert rows(config, "entries") == 1


async def test_an_edited_entry_is_updated_in_place(server: LoopbackServer, tmp_path: Path) -> None:
    urls = serve_ankara(server)
    config = make_config(tmp_path, urls)
    await poll_once(config)
    server.route("/tass", Reply(body=ankara_feed("tass", " (updated)"), etag='"tass-v2"'))
    results = await poll_once(config)
    tass = next(r for r in results if r.feed_url.endswith("/tass"))
    assert (tass.new, tass.changed) == (0, 1)
    assert rows(config, "entries") == 3
    assert rows(config, "stories") == 1
    async with open_runtime(config) as runtime:
        (story,) = runtime.storage.recent_stories(10)
    titles = {s.title for s in story.sources}
    assert ANKARA["tass"][0] + " (updated)" in titles


async def test_a_broken_feed_does_not_stop_the_others(
    server: LoopbackServer, tmp_path: Path
) -> None:
    urls = serve_ankara(server)
    server.route("/broken", Reply(body=b"<html><body>not a feed</body></html>"))
    server.route("/down", Reply(status=503))
    unreachable = "http://127.0.0.1:9/feed"  # the discard port: nothing listens there
    config = make_config(tmp_path, [*urls, server.url("/broken"), server.url("/down"), unreachable])
    results = {r.feed_url: r for r in await poll_once(config)}
    assert all(results[url].error is None for url in urls)
    assert results[server.url("/broken")].error
    assert results[server.url("/down")].status == 503
    assert results[unreachable].error
    assert rows(config, "stories") == 1
    async with open_runtime(config) as runtime:
        feeds = {f.url: f for f in runtime.storage.list_feeds()}
    for url in (server.url("/broken"), server.url("/down"), unreachable):
        assert feeds[url].error and feeds[url].failures == 1
        assert feeds[url].next_due is not None
    assert feeds[urls[0]].error is None and feeds[urls[0]].failures == 0


async def test_state_writes_arriving_during_a_flush_are_flushed_too(tmp_path: Path) -> None:
    """Unchanged polls are batched; one that arrives while a batch is being written must get
    a flush of its own rather than wait forever."""
    import asyncio
    import time as clock

    from aggregator.fetch import Fetcher
    from aggregator.refresh.updater import Updater
    from aggregator.refresh.writer import STATE_BATCH_DELAY
    from aggregator.storage import open_storage
    from aggregator.types import FeedRefresh, FeedSpec, FeedStateUpdate

    storage = open_storage(f"sqlite:///{tmp_path / 'db.sqlite'}")
    urls = [f"https://outlet{i}.example/feed" for i in range(3)]
    storage.sync_feeds([FeedSpec(url) for url in urls], PUBLISHED)
    real_batch = storage.store_refreshes

    def slow_batch(refreshes: list[FeedRefresh]) -> None:
        clock.sleep(STATE_BATCH_DELAY * 4)  # a slow disk: the next state arrives meanwhile
        real_batch(refreshes)

    storage.store_refreshes = slow_batch  # type: ignore[method-assign]
    try:
        async with Fetcher() as fetcher:
            updater = Updater(storage, fetcher, match_window=timedelta(hours=48))
            state = FeedStateUpdate(
                last_polled=PUBLISHED, next_due=PUBLISHED, status=304, error=None
            )

            async def later(url: str, delay: float) -> None:
                await asyncio.sleep(delay)
                await updater.writer.store_state(FeedRefresh(url, state))

            await asyncio.wait_for(
                asyncio.gather(
                    later(urls[0], 0),
                    later(urls[1], STATE_BATCH_DELAY * 2),
                    later(urls[2], STATE_BATCH_DELAY * 3),
                ),
                timeout=10,
            )
        assert all(f.status == 304 for f in storage.list_feeds())
    finally:
        storage.close()


async def test_a_changed_document_extracts_features_of_its_new_entries_only(
    server: LoopbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One feed at a time is parsed in the service process (settings.workers auto): the
    entries it already stored are never matched, so their features are not extracted."""
    from aggregator.refresh import store

    stories = [
        (f"s-{i}", f"Story number {i} on subject {i}", "Text.", f"https://o.example/{i}")
        for i in range(10)
    ]
    server.route("/outlet", Reply(body=rss("outlet", stories), etag='"v1"'))
    config = make_config(tmp_path, [server.url("/outlet")])
    await poll_once(config)
    extracted: list[str] = []
    real = store.features

    def counted(entry: Entry) -> Features:
        extracted.append(entry.entry_id)
        return real(entry)

    monkeypatch.setattr(store, "features", counted)
    fresh = ("s-new", "A story first seen in the second poll", "Text.", "https://o.example/new")
    server.route("/outlet", Reply(body=rss("outlet", [fresh, *stories]), etag='"v2"'))
    (result,) = await poll_once(config)
    assert (result.new, result.changed) == (1, 0)
    assert [entry_id.rsplit("/", 1)[-1] for entry_id in extracted] == ["s-new"]
