"""The front page and the story page as a reader sees them, against a real SQLite database.

The seed (``test_web.seed``): a fresh quake from three outlets with leads, a story with a
hostile headline that a second outlet joined 20 minutes ago, and an old one-outlet story.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from lxml import etree
from test_web import (
    ALPHA,
    BETA,
    GAMMA,
    NOW,
    QUAKE_LEAD,
    SCRIPT_HEADLINE,
    _entry,
    _ok,
    asgi_client,
    make_config,
    seed,
)

from aggregator.storage import SqlStorage, open_storage
from aggregator.types import Assignment, FeedRefresh, FeedSpec
from aggregator.web import create_app

PUBLIC = "http://news.example/"
STARTED = {"rule": "no_candidate", "score": 0.0}


def _doc(html: str) -> etree._Element:
    return etree.fromstring(html.encode(), etree.HTMLParser())


def _text(element: etree._Element) -> str:
    return " ".join("".join(element.itertext()).split())


def _cards(html: str) -> list[etree._Element]:
    return list(_doc(html).iter("article"))


def _headlines(html: str) -> list[str]:
    return [_text(card.find(".//h2/a")) for card in _cards(html)]


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[SqlStorage]:
    store = open_storage(make_config(tmp_path).settings.storage_url)
    seed(store)
    yield store
    store.close()


@pytest.fixture
async def client(storage: SqlStorage, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        storage, settings=make_config(tmp_path).settings, clock=lambda: NOW, public_url=PUBLIC
    )
    async with asgi_client(app) as http:
        yield http


async def test_each_story_shows_headline_lead_outlets_and_a_time_in_words(
    client: httpx.AsyncClient,
) -> None:
    html = (await client.get("/")).text
    quake = _cards(html)[0]
    assert _text(quake.find(".//h2/a")) == "Quake hits coast"
    assert quake.find(".//h2/a").get("href") == "/stories/quake1"
    assert _text(quake.find(".//p[@class='lead']")) == QUAKE_LEAD
    meta = _text(quake.find(".//div[@class='meta']"))
    assert meta.startswith("Alpha News, Beta Wire, Gamma Times · 30 min ago")
    assert "3 outlets" in meta
    time = quake.find(".//time")
    assert time.get("datetime").startswith("2024-05-01T11:30:00")
    assert time.get("title") == "Wed 1 May 2024, 11:30 UTC"
    # The front page lists no source headlines: the headline is not repeated under itself.
    assert html.count(">Quake hits coast<") == 1
    budget = _cards(html)[2]
    assert budget.find(".//p[@class='lead']") is None
    assert _text(budget.find(".//div[@class='meta']")) == "Alpha News · 5 h ago"


async def test_marks_say_new_and_updated(client: httpx.AsyncClient) -> None:
    marks = [
        [s.text for s in c.iterfind(".//span[@class]") if "mark" in s.get("class")]
        for c in _cards((await client.get("/")).text)
    ]
    assert marks == [["new"], ["updated"], []]


async def test_a_first_poll_marks_nothing_updated(storage: SqlStorage, tmp_path: Path) -> None:
    """Two outlets' reports of an 11-hour-old event, both stored by the first poll."""
    old = NOW - timedelta(hours=11)
    polled = NOW - timedelta(minutes=2)
    for feed, entry_id, gap in ((ALPHA, "a-old-vote", 0), (GAMMA, "g-old-vote", 1)):
        seen = polled + timedelta(seconds=gap)
        storage.store_refresh(
            FeedRefresh(
                feed,
                _ok(seen),
                ((_entry(feed, entry_id, "Vote count ends", old, seen=seen), _assign("vote")),),
            )
        )
    app = create_app(storage, settings=make_config(tmp_path).settings, clock=lambda: NOW)
    async with asgi_client(app) as http:
        html = (await http.get("/stories/vote")).text
    assert "mark" not in _text(_doc(html).find(".//h2"))
    assert 'class="mark' not in html


def _assign(story: str, evidence: dict[str, object] | None = None) -> Assignment:
    if evidence is None:
        return Assignment(story, True, 0.0, STARTED)
    return Assignment(story, False, 0.8, evidence)


async def test_widely_reported_events_rank_above_newer_single_reports(
    storage: SqlStorage, tmp_path: Path
) -> None:
    """Four outlets five hours ago beat one outlet an hour ago (rule in aggregator.stories)."""
    extra = [f"https://outlet{i}.example/feed" for i in range(4)]
    storage.sync_feeds(
        [FeedSpec(url, name=f"Outlet {i}") for i, url in enumerate(extra)]
        + [FeedSpec(ALPHA, name="Alpha News", tags=("world",))],
        NOW - timedelta(hours=6),
    )
    five_hours = NOW - timedelta(hours=5)
    for i, url in enumerate(extra):
        assignment = _assign("summit") if i == 0 else _assign("summit", {"rule": "score"})
        entry = _entry(url, f"summit-{i}", f"Summit opens ({i})", five_hours)
        storage.store_refresh(FeedRefresh(url, _ok(five_hours), ((entry, assignment),)))
    one_hour = NOW - timedelta(hours=1)
    lone = _entry(ALPHA, "a-lone", "Local fair opens", one_hour)
    storage.store_refresh(FeedRefresh(ALPHA, _ok(one_hour), ((lone, _assign("lone")),)))
    app = create_app(storage, settings=make_config(tmp_path).settings, clock=lambda: NOW)
    async with asgi_client(app) as http:
        titles = _headlines((await http.get("/?limit=100")).text)
    assert titles.index("Summit opens (0)") < titles.index("Local fair opens")


async def test_search_finds_headlines_and_leads(client: httpx.AsyncClient) -> None:
    assert _headlines((await client.get("/?q=quake")).text) == ["Quake hits coast"]
    # "Rescue" is only in the quake story's lead.
    assert _headlines((await client.get("/?q=RESCUE+teams")).text) == ["Quake hits coast"]
    assert _headlines((await client.get("/?q=rally")).text) == [SCRIPT_HEADLINE]
    html = (await client.get("/?q=nothing+like+this")).text
    assert _cards(html) == [] and "No stories yet for this search" in html
    # Search syntax is never interpreted: operators are words or nothing.
    hostile = await client.get('/?q="quake" OR coast* NEAR( )')
    assert hostile.status_code == 200
    searched = _doc((await client.get("/?q=quake")).text)
    assert searched.find(".//input[@name='q']").get("value") == "quake"
    assert "1 story matching “quake”" in _text(searched.find(".//main"))


async def test_filter_controls_work_without_javascript(client: httpx.AsyncClient) -> None:
    doc = _doc((await client.get("/?tag=world&min_sources=2")).text)
    form = doc.find(".//form[@role='search']")
    assert form.get("method") == "get"
    tags = {
        o.get("value"): o.get("selected") is not None
        for o in form.iterfind(".//select[@name='tag']/option")
    }
    assert tags == {"": False, "business": False, "world": True}
    outlets = form.find(".//select[@name='min_sources']/option[@selected]")
    assert outlets.get("value") == "2"
    assert [_text(c.find(".//h2/a")) for c in doc.iter("article")] == [
        "Quake hits coast",
        SCRIPT_HEADLINE,
    ]
    # What the form sends for "all tags" and "any number" is accepted.
    everything = await client.get("/?q=&tag=&min_sources=1")
    assert everything.status_code == 200 and len(_cards(everything.text)) == 3


async def test_pages_of_results(client: httpx.AsyncClient) -> None:
    first = _doc((await client.get("/?limit=2")).text)
    assert len(list(first.iter("article"))) == 2
    older = first.find(".//nav[@class='pages']/a[@rel='next']")
    assert older.get("href") == "/?limit=2&page=2"
    assert first.find(".//nav[@class='pages']/a[@rel='prev']") is None
    second = _doc((await client.get(older.get("href"))).text)
    assert [_text(c.find(".//h2/a")) for c in second.iter("article")] == ["Budget passes"]
    assert second.find(".//nav[@class='pages']/a[@rel='next']") is None
    assert second.find(".//nav[@class='pages']/a[@rel='prev']").get("href") == "/?limit=2"
    beyond = await client.get("/?page=50")
    assert beyond.status_code == 200 and _cards(beyond.text) == []
    for bad in ("page=0", "page=x", "page=1001", "q=" + "x" * 201, "q=a%00b"):
        assert (await client.get("/?" + bad)).status_code == 400, bad


async def test_story_page_explains_each_source_in_words(client: httpx.AsyncClient) -> None:
    response = await client.get("/stories/quake1")
    assert response.status_code == 200
    doc = _doc(response.text)
    assert _text(doc.find(".//article/p[@class='lead']")) == QUAKE_LEAD
    items = doc.findall(".//ol[@class='sources']/li")
    assert len(items) == 3
    assert [_text(i.find(".//cite")) for i in items] == ["Alpha News", "Beta Wire", "Gamma Times"]
    assert _text(items[0].find(".//p[@class='why']")) == "First report: started this story."
    assert _text(items[1].find(".//p[@class='why']")) == (
        "Same story: shares quake, coast; at the same time as the first report."
    )
    assert "Dozens were hurt" in _text(items[1])
    details = items[1].find(".//details")
    assert _text(details.find("summary")) == "Evidence"
    rows = dict(
        zip(
            [_text(dt) for dt in details.iterfind(".//dt")],
            [_text(dd) for dd in details.iterfind(".//dd")],
            strict=True,
        )
    )
    assert rows["shared_terms"] == "quake, coast" and rows["cosine"] == "0.812"


async def test_same_article_from_two_feeds_is_one_source(
    storage: SqlStorage, tmp_path: Path
) -> None:
    published = NOW - timedelta(hours=2)
    article = "https://wire.example/story-1"
    for feed, entry_id in ((ALPHA, "a-wire"), (BETA, "b-wire")):
        entry = replace(_entry(feed, entry_id, "Wire story", published), url=article)
        assignment = _assign("wire") if feed == ALPHA else _assign("wire", {"rule": "same_url"})
        storage.store_refresh(FeedRefresh(feed, _ok(published), ((entry, assignment),)))
    app = create_app(storage, settings=make_config(tmp_path).settings, clock=lambda: NOW)
    async with asgi_client(app) as http:
        page = _doc((await http.get("/stories/wire")).text)
        front = (await http.get("/?q=wire")).text
    items = page.findall(".//ol[@class='sources']/li")
    assert len(items) == 1
    assert "Also carried by Beta Wire." in _text(items[0])
    assert "1 outlet" in _text(page.find(".//div[@class='meta']"))
    assert _text(_cards(front)[0].find(".//div[@class='meta']")) == "Alpha News · 2 h ago"


async def test_manual_corrections_are_labelled(storage: SqlStorage, tmp_path: Path) -> None:
    storage.record_merge("quake1", "mkt1", NOW)
    storage.record_split(ALPHA, "a-old", "budget-alone", NOW)
    app = create_app(storage, settings=make_config(tmp_path).settings, clock=lambda: NOW)
    async with asgi_client(app) as http:
        merged = _doc((await http.get("/stories/quake1")).text)
        split = _doc((await http.get("/stories/budget-alone")).text)
    reasons = [_text(p) for p in merged.iterfind(".//p[@class='why']")]
    assert reasons.count("Merged by hand from story mkt1.") == 2
    assert [_text(p) for p in split.iterfind(".//p[@class='why']")] == [
        "Moved here by hand from story old1."
    ]


async def test_pages_and_feeds_render_off_the_event_loop(
    storage: SqlStorage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rendering a large page must not stall /healthz and the poller sharing the loop."""
    from aggregator.web import app as app_module
    from aggregator.web import pages

    threads: dict[str, str] = {}
    real_render = pages.render

    def render(template: str, **context: object) -> str:
        threads[template] = threading.current_thread().name
        return real_render(template, **context)

    monkeypatch.setattr(pages, "render", render)
    real_atom = app_module.FEED_FORMATS["atom"]

    def atom(*args: Any) -> bytes:
        threads["atom"] = threading.current_thread().name
        return real_atom[0](*args)

    monkeypatch.setitem(app_module.FEED_FORMATS, "atom", (atom, real_atom[1]))
    app = create_app(storage, settings=make_config(tmp_path).settings, clock=lambda: NOW)
    async with asgi_client(app) as http:
        for path in ("/", "/stories/quake1", "/feeds", "/feed.atom"):
            assert (await http.get(path)).status_code == 200
    loop_thread = threading.current_thread().name
    assert set(threads) == {"index.html", "story.html", "feeds.html", "atom"}
    assert loop_thread not in threads.values(), threads
