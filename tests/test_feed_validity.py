"""The published feeds are valid documents whatever the stories hold.

merged.atom against the RFC 4287 RELAX NG schema (and its Schematron rules), merged.rss against
the rules of RSS 2.0, merged.json against those of JSON Feed 1.1 (asserted directly: the
``jsonschema`` package is not a dependency). Each is checked on stories with hostile text, a
one-source story, a story past the per-item bound, one article carried by two feeds and sources
without links; then the same through the web app, filtered and not, from a real SQLite database.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from factories import make_entry
from lxml import etree, html  # type: ignore[import-untyped]
from test_publish import _atom_schema, _schematron_failures
from test_web import asgi_client, make_config

from aggregator.publish import FeedMeta, render_atom, render_json_feed, render_rss, write_outputs
from aggregator.publish.item import MAX_SOURCES_PER_ITEM
from aggregator.storage import SqlStorage, open_storage
from aggregator.stories import build_story
from aggregator.types import Assignment, FeedRefresh, FeedSpec, FeedStateUpdate, Story, StorySource
from aggregator.web import create_app

ATOM_NS = "http://www.w3.org/2005/Atom"
NS = {"atom": ATOM_NS}
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
PUBLIC = "https://news.example/agg/"
META = FeedMeta(PUBLIC)
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
HTTP_URL = re.compile(r"^https?://[^\s/]+(/\S*)?$")

# Text a hostile or broken feed can carry: markup, a CDATA end, XML-forbidden control
# characters, bidirectional overrides and isolates, and BBCode-like brackets.
HOSTILE_TEXTS = (
    "<script>alert(1)</script> Quake",
    "ends ]]> here & <b>bold</b>",
    "bell\x07 null\x00 escape\x1b vertical\x0b tab",
    "\u202eevil\u202c \u2066isolated\u2069 text",
    "[/x] [url=https://x.example]click[/url]",
)


def _source(feed: str, n: int, title: str, url: str | None, **extra: Any) -> StorySource:
    return StorySource(
        feed_url=f"https://{feed}.example/feed",
        feed_name=extra.pop("name", feed.title()),
        entry_id=f"{feed}-{n}",
        title=title,
        url=url,
        published=T0 + timedelta(minutes=n),
        score=0.8,
        evidence={},
        **extra,
    )


def hostile_stories() -> list[Story]:
    hostile = [
        _source("h", n, text, f"https://h.example/{n}", name=text, summary=text * 3)
        for n, text in enumerate(HOSTILE_TEXTS)
    ]
    bad_links = [
        _source("js", 0, "Links", "javascript:alert(1)"),
        _source("data", 1, "Links", "data:text/html,<script>x</script>"),
        _source("none", 2, "Links", None),
        _source("empty", 3, "Links", ""),
    ]
    shared = "https://agency.example/quake"
    duplicates = [
        _source("agency", 0, "Quake strikes", shared, priority=1, summary="A quake struck."),
        _source("portal", 1, "Quake strikes (Agency)", shared),
        _source("daily", 2, "Coast shaken", "https://daily.example/q"),
    ]
    flood = [_source(f"o{n % 37}", n, f"Report {n}", f"https://o.example/{n}") for n in range(300)]
    return [
        build_story("hostile", hostile, T0),
        build_story("single", [_source("solo", 0, "Budget passes", "https://solo.example/b")], T0),
        build_story("links", bad_links, T0 + timedelta(minutes=1)),
        build_story("dup", duplicates, T0 + timedelta(minutes=2)),
        build_story("flood", flood, T0 + timedelta(hours=6), more_sources=12),
        build_story("no-link", [_source("n", 0, HOSTILE_TEXTS[0], None)], T0),
    ]


# --- The rules of each format --------------------------------------------------------------


def _absolute(url: str | None) -> bool:
    return url is not None and HTTP_URL.match(url) is not None


def _safe_html(fragment: str) -> list[str]:
    """Problems of an item's HTML body: markup beyond ours, event handlers, non-http links."""
    tree = html.fragment_fromstring(fragment, create_parent="div")
    problems = [f"<{e.tag}>" for e in tree.iter() if e.tag not in _ALLOWED_TAGS]
    problems += [f"@{a}" for e in tree.iter() for a in e.attrib if a.startswith("on")]
    problems += [f"href {h!r}" for h in tree.xpath("//@href") if not _absolute(h)]
    return problems


_ALLOWED_TAGS = {"div", "p", "ul", "li", "cite", "a", "time"}


def atom_problems(data: bytes) -> list[str]:
    doc = etree.fromstring(data)
    schema = _atom_schema()
    problems = [] if schema.validate(doc) else [str(schema.error_log)]
    problems += _schematron_failures(doc)
    problems += [f"href {h!r}" for h in doc.xpath("//@href") if not _absolute(h)]
    for content in doc.iterfind("atom:entry/atom:content", NS):
        problems += _safe_html(content.text or "")
    if not doc.xpath("atom:link[@rel='self']", namespaces=NS):
        problems.append("no self link")
    return problems


def rss_problems(data: bytes) -> list[str]:
    rss = etree.fromstring(data)
    if rss.tag != "rss" or rss.get("version") != "2.0":
        return [f"root {rss.tag} version {rss.get('version')}"]
    channels = rss.findall("channel")
    if len(channels) != 1:
        return [f"{len(channels)} channels"]
    channel = channels[0]
    problems = [
        f"channel has no {t}" for t in ("title", "link", "description") if not channel.findtext(t)
    ]
    if not _absolute(channel.findtext("link")):
        problems.append("channel link not absolute")
    self_links = channel.xpath("atom:link[@rel='self']/@href", namespaces=NS)
    if len(self_links) != 1 or not _absolute(self_links[0]):
        problems.append(f"self link {self_links}")
    for item in channel.iterfind("item"):
        if not (item.findtext("title") or item.findtext("description")):
            problems.append("item with neither title nor description")
        if not item.findtext("guid"):
            problems.append("item without guid")
        if not _absolute(item.findtext("link")):
            problems.append(f"item link {item.findtext('link')!r}")
        try:
            if parsedate_to_datetime(item.findtext("pubDate") or "").tzinfo is None:
                problems.append("pubDate without zone")
        except (TypeError, ValueError):
            problems.append(f"pubDate {item.findtext('pubDate')!r}")
        problems += _safe_html(item.findtext("description") or "")
    problems += [f"href {h!r}" for h in rss.xpath("//@href") if not _absolute(h)]
    return problems


# JSON Feed 1.1 (https://www.jsonfeed.org/version/1.1/): the keys it defines and their types.
# Extensions are any other key starting with "_".
_FEED_KEYS = {
    "version": str, "title": str, "home_page_url": str, "feed_url": str, "description": str,
    "user_comment": str, "next_url": str, "icon": str, "favicon": str, "authors": list,
    "language": str, "expired": bool, "hubs": list, "items": list,
}  # fmt: skip
_ITEM_KEYS = {
    "id": str, "url": str, "external_url": str, "title": str, "content_html": str,
    "content_text": str, "summary": str, "image": str, "banner_image": str,
    "date_published": str, "date_modified": str, "authors": list, "tags": list,
    "language": str, "attachments": list,
}  # fmt: skip
_URL_KEYS = ("home_page_url", "feed_url", "url", "external_url")
_DATE_KEYS = ("date_published", "date_modified")


def _keys_problems(where: str, obj: dict[str, Any], known: dict[str, type]) -> list[str]:
    problems = []
    for key, value in obj.items():
        if key.startswith("_"):
            continue
        if key not in known:
            problems.append(f"{where}: unknown key {key!r}")
        elif not isinstance(value, known[key]):
            problems.append(f"{where}.{key}: {type(value).__name__}, not {known[key].__name__}")
        elif key in _URL_KEYS and not _absolute(value):
            problems.append(f"{where}.{key}: {value!r} is not an absolute http(s) URL")
        elif key in _DATE_KEYS and not RFC3339.match(value):
            problems.append(f"{where}.{key}: {value!r} is not RFC 3339")
    authors = obj.get("authors", [{"name": "-"}])
    if not authors or not all(isinstance(a, dict) and a.get("name") for a in authors):
        problems.append(f"{where}.authors: {authors!r}")
    return problems


def json_feed_problems(data: bytes) -> list[str]:
    doc = json.loads(data)
    if not isinstance(doc, dict):
        return ["not an object"]
    problems = _keys_problems("feed", doc, _FEED_KEYS)
    if doc.get("version") != "https://jsonfeed.org/version/1.1":
        problems.append(f"version {doc.get('version')!r}")
    problems += [f"feed: no {k}" for k in ("title", "items") if k not in doc]
    ids: set[str] = set()
    for n, item in enumerate(doc.get("items", [])):
        where = f"items[{n}]"
        problems += _keys_problems(where, item, _ITEM_KEYS)
        if not item.get("id") or item["id"] in ids:
            problems.append(f"{where}: missing or repeated id")
        ids.add(item.get("id"))
        if "content_html" not in item and "content_text" not in item:
            problems.append(f"{where}: neither content_html nor content_text")
        problems += _safe_html(item.get("content_html", ""))
    return problems


# --- Rendered stories ----------------------------------------------------------------------

CHECKS = {"atom": (render_atom, atom_problems), "rss": (render_rss, rss_problems)}
CHECKS["json"] = (render_json_feed, json_feed_problems)


@pytest.mark.parametrize("fmt", CHECKS)
@pytest.mark.parametrize("which", ["all", "each", "none"])
def test_rendered_feeds_are_valid(fmt: str, which: str) -> None:
    render, problems = CHECKS[fmt]
    stories = hostile_stories()
    cases = {"all": [stories], "each": [[s] for s in stories], "none": [[]]}[which]
    for case in cases:
        data = render(case, META)
        assert problems(data) == [], [s.id for s in case]
        assert render(list(reversed(case)), META) == data  # byte-stable


@pytest.mark.parametrize("fmt", CHECKS)
def test_the_checks_can_fail(fmt: str) -> None:
    render, problems = CHECKS[fmt]
    data = render(hostile_stories(), META)
    broken = data.replace(b"urn:aggregator:story:", b"").replace(PUBLIC.encode(), b"./")
    assert problems(broken)


def test_hostile_text_never_reaches_the_wire_raw() -> None:
    stories = hostile_stories()
    for render in (render_atom, render_rss, render_json_feed):
        data = render(stories, META)
        for needle in (b"<script", b"<b>", b"javascript:", b"data:text", b"\x00", b"\x07"):
            assert needle not in data, (render.__name__, needle)


def test_bound_and_duplicates_in_the_json_extension() -> None:
    items = json.loads(render_json_feed(hostile_stories(), META))["items"]
    by_id = {item["id"].rsplit(":", 1)[1]: item["_aggregator"] for item in items}
    assert len(by_id["flood"]["sources"]) == MAX_SOURCES_PER_ITEM
    assert by_id["flood"]["source_count"] == 300 + 12  # 12 stored but not loaded
    assert by_id["flood"]["more_sources"] == 300 - MAX_SOURCES_PER_ITEM + 12
    assert [s["outlet"] for s in by_id["dup"]["sources"]] == ["Agency", "Daily"]
    assert [s["url"] for s in by_id["links"]["sources"]] == [None, None, None, None]


def test_written_files_are_valid(tmp_path: Path) -> None:
    write_outputs(hostile_stories(), tmp_path, META)
    assert atom_problems((tmp_path / "merged.atom").read_bytes()) == []
    assert rss_problems((tmp_path / "merged.rss").read_bytes()) == []
    assert json_feed_problems((tmp_path / "merged.json").read_bytes()) == []
    for name in ("merged.atom", "merged.rss", "merged.json"):
        text = (tmp_path / name).read_text(encoding="utf-8")
        assert "./" not in text.replace("https://", "").replace("http://", ""), name


# --- Over HTTP, from a real database -------------------------------------------------------

WORLD = "https://world.example/feed"
LOCAL = "https://local.example/feed"


def _store(
    storage: SqlStorage, feed: str, story: str, entries: list[tuple[str, str, str | None]]
) -> None:
    at = T0 + timedelta(minutes=len(entries))
    state = FeedStateUpdate(
        last_polled=at, next_due=at + timedelta(hours=1), status=200, error=None
    )
    linked = tuple(
        (
            make_entry(feed, eid, title, url=url, link=url, published=T0, content_hash=eid),
            Assignment(story, n == 0, 0.9, {"rule": "score", "score": 0.9}),
        )
        for n, (eid, title, url) in enumerate(entries)
    )
    storage.store_refresh(FeedRefresh(feed, state, linked))


def seed_hostile(storage: SqlStorage) -> None:
    storage.sync_feeds(
        [FeedSpec(WORLD, name="World <b>Wire</b>", tags=("world",)), FeedSpec(LOCAL, name="Local")],
        T0 - timedelta(hours=1),
    )
    _store(
        storage,
        WORLD,
        "s-hostile",
        [(f"w{n}", t, f"https://world.example/{n}") for n, t in enumerate(HOSTILE_TEXTS)],
    )
    _store(storage, LOCAL, "s-hostile", [("l-dup", "Same article", "https://world.example/0")])
    _store(storage, LOCAL, "s-single", [("l1", "Budget passes", None)])
    _store(
        storage,
        WORLD,
        "s-flood",
        [(f"f{n}", f"Report {n}", f"https://f.example/{n}") for n in range(300)],
    )


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The web app over a real SQLite database seeded by ``seed_hostile``."""
    settings = make_config(tmp_path).settings
    storage = open_storage(settings.storage_url)
    try:
        seed_hostile(storage)
        async with asgi_client(create_app(storage, settings=settings, public_url=PUBLIC)) as http:
            yield http
    finally:
        storage.close()


FILTERS = {
    "": ("aggregator — merged stories", "urn:aggregator:feed:merged", ""),
    "?tag=world": (
        "aggregator — merged stories — tagged world",
        "urn:aggregator:feed:merged:tag=world",
        "?tag=world",
    ),
    "?min_sources=2&tag=world&limit=7": (
        "aggregator — merged stories — tagged world, 2+ outlets",
        "urn:aggregator:feed:merged:tag=world:min_sources=2",
        "?tag=world&min_sources=2&limit=7",
    ),
}


def _identity(fmt: str, data: bytes) -> tuple[str, str, str]:
    """(title, id, self link) of a feed document; JSON Feed has no id: its feed_url stands in."""
    if fmt == "json":
        doc = json.loads(data)
        return doc["title"], doc["feed_url"], doc["feed_url"]
    root = etree.fromstring(data)
    if fmt == "atom":
        self_link = root.xpath("atom:link[@rel='self']/@href", namespaces=NS)[0]
        return (
            root.findtext("atom:title", namespaces=NS),
            root.findtext("atom:id", namespaces=NS),
            self_link,
        )
    self_link = root.xpath("channel/atom:link[@rel='self']/@href", namespaces=NS)[0]
    return root.findtext("channel/title"), "", self_link


@pytest.mark.parametrize("query", FILTERS, ids=["unfiltered", "tag", "tag+min_sources"])
@pytest.mark.parametrize("fmt", CHECKS)
async def test_served_feeds_are_valid_and_name_their_filters(
    client: httpx.AsyncClient, fmt: str, query: str
) -> None:
    response = await client.get(f"/feed.{fmt}{query}")
    assert response.status_code == 200
    _, problems = CHECKS[fmt]
    assert problems(response.content) == []
    title, feed_id, expected_query = FILTERS[query]
    self_url = f"{PUBLIC}merged.{fmt}{expected_query}"
    got_title, got_id, got_self = _identity(fmt, response.content)
    assert (got_title, got_self) == (title, self_url)
    if fmt == "atom":
        assert got_id == feed_id
    again = await client.get(f"/feed.{fmt}{query}")
    assert again.content == response.content


async def test_served_bound_and_duplicates(client: httpx.AsyncClient) -> None:
    items = (await client.get("/feed.json")).json()["items"]
    by_id = {item["id"].rsplit(":", 1)[1]: item for item in items}
    flood = by_id["s-flood"]["_aggregator"]
    assert (len(flood["sources"]), flood["source_count"]) == (MAX_SOURCES_PER_ITEM, 300)
    assert by_id["s-flood"]["content_html"].endswith(
        f'<a href="{PUBLIC}stories/s-flood">+{300 - MAX_SOURCES_PER_ITEM} more sources</a></p>'
    )
    hostile = by_id["s-hostile"]["_aggregator"]
    assert hostile["source_count"] == len(HOSTILE_TEXTS)  # the duplicate URL is one source
    assert by_id["s-single"]["url"] == f"{PUBLIC}stories/s-single"
