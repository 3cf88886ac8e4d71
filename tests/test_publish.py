"""Publish stage: Atom/RSS/JSON Feed output, escaping, and atomic file writing."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import feedparser
import pytest
from lxml import etree, html  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field

import aggregator.publish
from aggregator.publish import (
    FeedMeta,
    render_atom,
    render_json_feed,
    render_rss,
    write_outputs,
)
from aggregator.publish.item import MAX_SOURCES_PER_ITEM
from aggregator.publish.links import safe_url
from aggregator.stories import build_story
from aggregator.types import Story, StorySource

SCHEMAS = Path(__file__).parent / "fixtures" / "schemas"
ATOM_NS = "http://www.w3.org/2005/Atom"
NS = {"atom": ATOM_NS}
SCHEMATRON_NS = {"s": "http://www.ascc.net/xml/schematron"}
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
META = FeedMeta("https://news.example/")

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
RFC822 = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} (GMT|[+-]\d{4})$"
)

SCRIPT_TITLE = "Quake <script>alert(1)</script> hits coast"
IMG_OUTLET = "<img src=x onerror=alert(1)>"
JS_URL = "javascript:alert(document.cookie)"

Renderer = Callable[[list[Story], FeedMeta], bytes]


def _source(
    outlet: str,
    title: str,
    url: str | None,
    minutes: int,
    *,
    score: float = 0.9,
    priority: int = 0,
    summary: str = "",
    feed: str | None = None,
) -> StorySource:
    slug = re.sub(r"\W+", "-", outlet.lower()).strip("-") or "x"
    return StorySource(
        feed_url=feed or f"https://{slug}.example/feed.xml",
        feed_name=outlet,
        entry_id=f"{slug}-{minutes}",
        title=title,
        url=url,
        published=T0 + timedelta(minutes=minutes),
        score=score,
        evidence={},
        priority=priority,
        summary=summary,
    )


@pytest.fixture
def quake() -> Story:
    """Three outlets; the second has the highest feed priority, so its headline represents."""
    sources = [
        _source("Alpha News", "Earthquake strikes the coast", "https://alpha.example/q", 0),
        _source(
            "Beta Times",
            "Coast hit by strong quake",
            "https://beta.example/a?id=7&lang=en",
            6,
            score=0.81234567,
            priority=5,
        ),
        _source("Gamma Wire", "Quake: what we know", "https://gamma.example/live", 11, score=0.7),
    ]
    return build_story("q1", sources, T0 + timedelta(minutes=30))


@pytest.fixture
def older() -> Story:
    sources = [_source("Alpha News", "Budget passes", "https://alpha.example/b", -600)]
    return build_story("b1", sources, T0 - timedelta(hours=9))


@pytest.fixture
def hostile() -> Story:
    sources = [
        _source("Delta Daily", SCRIPT_TITLE, "https://delta.example/x", 1, priority=9),
        _source(IMG_OUTLET, "Harmless headline", JS_URL, 2),
        _source("Echo", "Another <b>bold</b> & take", "JaVaScRiPt:alert(2)", 3),
    ]
    return build_story("h1", sources, T0 + timedelta(minutes=5))


@pytest.fixture
def stories(quake: Story, older: Story, hostile: Story) -> list[Story]:
    return [older, quake, hostile]


# --- Atom ----------------------------------------------------------------------------------


def _atom_schema() -> etree.RelaxNG:
    return etree.RelaxNG(etree.parse(str(SCHEMAS / "atom.rng")))


def _schematron_failures(doc: etree._Element) -> list[str]:
    """Evaluate the RFC's Schematron asserts embedded in atom.rng (RELAX NG skips them)."""
    failures = []
    rng = etree.parse(str(SCHEMAS / "atom.rng"))
    for rule in rng.iterfind(".//s:rule", SCHEMATRON_NS):
        for node in doc.xpath("//" + rule.get("context"), namespaces=NS):
            for check in rule.iterfind("s:assert", SCHEMATRON_NS):
                if not node.xpath(f"boolean({check.get('test')})", namespaces=NS):
                    failures.append((check.text or "").strip())
    return failures


def test_atom_validates_against_rfc4287_relax_ng(stories: list[Story]) -> None:
    schema = _atom_schema()
    doc = etree.fromstring(render_atom(stories, META))
    assert schema.validate(doc), schema.error_log
    assert _schematron_failures(doc) == []


def test_atom_schema_check_can_fail(stories: list[Story]) -> None:
    """The schema and the Schematron checks really reject a feed missing required parts."""
    schema = _atom_schema()
    doc = etree.fromstring(render_atom(stories, META))
    entry = doc.find("atom:entry", NS)
    assert entry is not None
    entry.remove(entry.find("atom:id", NS))
    assert not schema.validate(doc)
    doc = etree.fromstring(render_atom(stories, META))
    doc.remove(doc.find("atom:author", NS))
    assert _schematron_failures(doc) == []  # every entry names its own author
    entry = doc.find("atom:entry", NS)
    entry.remove(entry.find("atom:author", NS))
    assert _schematron_failures(doc)


def test_atom_entries_cite_every_source(quake: Story) -> None:
    doc = etree.fromstring(render_atom([quake], META))
    (entry,) = doc.findall("atom:entry", NS)
    assert entry.findtext("atom:id", namespaces=NS) == "urn:aggregator:story:q1"
    assert entry.findtext("atom:title", namespaces=NS) == "Coast hit by strong quake"
    assert entry.findtext("atom:published", namespaces=NS) == "2024-05-01T12:00:00Z"
    assert entry.findtext("atom:updated", namespaces=NS) == "2024-05-01T12:30:00Z"
    alternate = entry.xpath("atom:link[@rel='alternate']/@href", namespaces=NS)
    assert alternate == ["https://beta.example/a?id=7&lang=en"]
    related = entry.xpath("atom:link[@rel='related']/@href", namespaces=NS)
    assert related == ["https://news.example/stories/q1", *(s.url for s in quake.sources)]
    assert entry.xpath("atom:author/atom:name/text()", namespaces=NS) == ["Beta Times"]
    contributors = entry.xpath("atom:contributor/atom:name/text()", namespaces=NS)
    assert contributors == ["Alpha News", "Gamma Wire"]
    assert entry.find("atom:summary", NS) is None  # no source has a summary: no lead
    assert doc.findtext("atom:generator", namespaces=NS) == "aggregator"
    assert doc.find("atom:generator", NS).get("version") == aggregator.__version__
    self_href = doc.xpath("atom:link[@rel='self']/@href", namespaces=NS)
    assert self_href == ["https://news.example/merged.atom"]


# --- RSS -----------------------------------------------------------------------------------


def test_rss_structure(stories: list[Story]) -> None:
    rss = etree.fromstring(render_rss(stories, META))  # strict XML parser: malformed would raise
    assert rss.tag == "rss" and rss.get("version") == "2.0"
    channel = rss.find("channel")
    assert channel is not None
    assert channel.findtext("title") == "aggregator — merged stories"
    assert channel.findtext("link") == "https://news.example/"
    assert channel.findtext("description")
    assert RFC822.match(channel.findtext("lastBuildDate") or "")
    items = channel.findall("item")
    assert len(items) == len(stories)
    for item in items:
        assert item.findtext("title")
        guid = item.find("guid")
        assert guid is not None and guid.get("isPermaLink") == "false"
        assert (guid.text or "").startswith("urn:aggregator:story:")
        pub_date = item.findtext("pubDate") or ""
        assert RFC822.match(pub_date), pub_date
        assert parsedate_to_datetime(pub_date).tzinfo is not None
    first = items[0]  # the quake story: the most recently updated
    assert first.findtext("link") == "https://beta.example/a?id=7&lang=en"
    assert first.findtext("pubDate") == "Wed, 01 May 2024 12:00:00 GMT"


# --- JSON Feed -----------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _JsonSource(_Strict):
    outlet: str
    title: str
    url: str | None
    published: str
    score: float | None


class _JsonItemExtension(_Strict):
    about: str
    story_url: str
    sources: list[_JsonSource]
    source_count: int
    more_sources: int


class _JsonAuthor(_Strict):
    name: str


class _JsonItem(_Strict):
    id: str
    url: str
    title: str
    summary: str | None = None
    content_html: str
    date_published: str
    date_modified: str
    authors: list[_JsonAuthor]
    ext: _JsonItemExtension = Field(alias="_aggregator")


class _JsonFeed(BaseModel):
    # Top level stays open: JSON Feed allows more fields than we assert on here.
    model_config = ConfigDict(strict=True)
    version: str
    title: str
    home_page_url: str
    feed_url: str
    items: list[_JsonItem]


def test_json_feed_structure(stories: list[Story], quake: Story) -> None:
    feed = _JsonFeed.model_validate(json.loads(render_json_feed(stories, META)))
    assert feed.version == "https://jsonfeed.org/version/1.1"
    assert feed.title == "aggregator — merged stories"
    assert feed.feed_url == "https://news.example/merged.json"
    for item in feed.items:
        assert item.id.startswith("urn:aggregator:story:")
        assert RFC3339.match(item.date_published) and RFC3339.match(item.date_modified)
        assert item.ext.source_count == len(item.ext.sources) >= 1
        assert all(RFC3339.match(s.published) for s in item.ext.sources)
    (item,) = (i for i in feed.items if i.id == "urn:aggregator:story:q1")
    assert item.url == "https://beta.example/a?id=7&lang=en"
    assert [s.outlet for s in item.ext.sources] == [s.feed_name for s in quake.sources]
    assert [s.url for s in item.ext.sources] == [s.url for s in quake.sources]
    assert item.ext.sources[1].score == 0.8123


def test_json_feed_model_rejects_missing_sources(quake: Story) -> None:
    """The structural check above is able to fail."""
    document: dict[str, Any] = json.loads(render_json_feed([quake], META))
    del document["items"][0]["_aggregator"]["sources"]
    with pytest.raises(ValueError):
        _JsonFeed.model_validate(document)


# --- Readers -------------------------------------------------------------------------------


@pytest.mark.parametrize("render", [render_atom, render_rss], ids=["atom", "rss"])
def test_feedparser_reads_every_source(render: Renderer, stories: list[Story]) -> None:
    parsed = feedparser.parse(render(stories, META))
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert [e.id for e in parsed.entries] == [
        "urn:aggregator:story:q1",
        "urn:aggregator:story:h1",
        "urn:aggregator:story:b1",
    ]
    by_id = {s.id: s for s in stories}
    for entry in parsed.entries:
        story = by_id[entry.id.rsplit(":", 1)[1]]
        assert entry.title == story.title
        assert entry.published_parsed and entry.updated_parsed
        content = html.fragment_fromstring(entry.summary, create_parent="div")
        outlets = [c.text_content() for c in content.iter("cite")]
        assert outlets == [s.feed_name for s in story.sources]
        hrefs = [a.get("href") for a in content.iter("a")]
        assert hrefs == [s.url for s in story.sources if safe_url(s.url)]


def test_json_feed_items_list_every_source(stories: list[Story]) -> None:
    # feedparser 6 has no JSON Feed support, so the JSON output is read with json.
    document = json.loads(render_json_feed(stories, META))
    by_id = {f"urn:aggregator:story:{s.id}": s for s in stories}
    for item in document["items"]:
        story = by_id[item["id"]]
        names = [s["outlet"] for s in item["_aggregator"]["sources"]]
        assert names == [s.feed_name for s in story.sources]
        content = html.fragment_fromstring(item["content_html"], create_parent="div")
        assert [c.text_content() for c in content.iter("cite")] == names


# --- Hostile input -------------------------------------------------------------------------


def _content_html(render: Renderer, data: bytes) -> str:
    if render is render_json_feed:
        return str(json.loads(data)["items"][0]["content_html"])
    root = etree.fromstring(data)
    if render is render_atom:
        return str(root.findtext("atom:entry/atom:content", namespaces=NS))
    return str(root.findtext("channel/item/description"))


def _title(render: Renderer, data: bytes) -> str:
    if render is render_json_feed:
        return str(json.loads(data)["items"][0]["title"])
    root = etree.fromstring(data)
    if render is render_atom:
        return str(root.findtext("atom:entry/atom:title", namespaces=NS))
    return str(root.findtext("channel/item/title"))


@pytest.mark.parametrize(
    "render", [render_atom, render_rss, render_json_feed], ids=["atom", "rss", "json"]
)
def test_hostile_input_is_escaped_or_dropped(render: Renderer, hostile: Story) -> None:
    data = render([hostile], META)
    # Markup from feeds never appears raw, and the javascript: URLs are not emitted at all.
    for needle in (b"<script", b"<img", b"javascript:", b"JaVaScRiPt:", b"<b>"):
        assert needle not in data
    # The headline survives as plain text (escaped on the wire, intact once decoded).
    assert _title(render, data) == SCRIPT_TITLE
    content = html.fragment_fromstring(_content_html(render, data), create_parent="div")
    tags = {element.tag for element in content.iter()}
    assert tags <= {"div", "p", "ul", "li", "cite", "a", "time"}, tags
    assert not [e for e in content.iter() if any(a.startswith("on") for a in e.attrib)]
    assert [a.get("href") for a in content.iter("a")] == ["https://delta.example/x"]
    assert IMG_OUTLET in content.text_content()


def test_hostile_links_dropped_in_atom_and_json(hostile: Story) -> None:
    atom = etree.fromstring(render_atom([hostile], META))
    assert atom.xpath("//atom:entry/atom:link/@href", namespaces=NS) == [
        "https://delta.example/x",
        "https://news.example/stories/h1",
        "https://delta.example/x",
    ]
    sources = json.loads(render_json_feed([hostile], META))["items"][0]["_aggregator"]["sources"]
    assert [s["url"] for s in sources] == ["https://delta.example/x", None, None]


URL_CASES: dict[str, tuple[str | None, bool]] = {
    "https": ("https://ok.example/a?b=1&c=2", True),
    "http upper-case scheme": ("HTTP://ok.example/", True),
    "javascript": ("javascript:alert(1)", False),
    "javascript mixed case": ("JaVaScRiPt:alert(1)", False),
    "leading space": (" javascript:alert(1)", False),
    "tab inside scheme": ("java\tscript:alert(1)", False),
    "data": ("data:text/html,<script>alert(1)</script>", False),
    "file": ("file:///etc/passwd", False),
    "scheme-relative": ("//evil.example/x", False),
    "no host": ("http:evil", False),
    "none": (None, False),
    "empty": ("", False),
}


@pytest.mark.parametrize("url,linkable", URL_CASES.values(), ids=URL_CASES.keys())
def test_safe_url(url: str | None, linkable: bool) -> None:
    assert (safe_url(url) is not None) is linkable


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "./",
        "/news/",
        "https://news.example",  # no final "/": links would lose the last path segment
        "https://news.example/?a=1",
        "https://news.example/#top",
    ],
)
def test_feed_meta_refuses_urls_that_are_not_absolute_roots(url: str) -> None:
    with pytest.raises(ValueError):
        FeedMeta(url)


def test_feed_meta_links_and_naive_time() -> None:
    with pytest.raises(ValueError):
        FeedMeta("https://news.example/", updated=datetime(2024, 1, 1))  # naive on purpose
    meta = FeedMeta("https://news.example/agg/")
    assert meta.home_url == "https://news.example/agg/"
    assert meta.self_url("merged.rss") == "https://news.example/agg/merged.rss"
    assert meta.story_url("a/b c") == "https://news.example/agg/stories/a%2Fb%20c"


def test_control_characters_are_removed(quake: Story) -> None:
    noisy = build_story(
        "c1", [_source("Null\x00 Outlet", "Bell\x07 title\x0b", "https://n.example/", 0)], T0
    )
    for render in (render_atom, render_rss):
        root = etree.fromstring(render([noisy, quake], META))
        assert "Bell title" in etree.tostring(root, encoding="unicode")


# --- What an item says ------------------------------------------------------------------

LEAD = "A strong earthquake struck the coast on Wednesday, damaging buildings in three towns."


def _paragraphs(content: str) -> list[str]:
    tree = html.fragment_fromstring(content, create_parent="div")
    return [p.text_content() for p in tree.iter("p")]


def _json_item(story: Story, meta: FeedMeta = META) -> dict[str, Any]:
    item: dict[str, Any] = json.loads(render_json_feed([story], meta))["items"][0]
    return item


def test_lead_is_the_first_paragraph_in_every_format() -> None:
    story = build_story(
        "l1",
        [
            _source("Alpha", "Quake hits coast", "https://a.example/1", 0, summary=LEAD),
            _source("Beta", "Coast quake", "https://b.example/1", 5, summary="Other <b>text</b>."),
        ],
        T0,
    )
    item = _json_item(story)
    assert item["summary"] == LEAD
    assert _paragraphs(item["content_html"])[:2] == [LEAD, "Reported by 2 outlets:"]
    atom = etree.fromstring(render_atom([story], META))
    assert atom.findtext("atom:entry/atom:summary", namespaces=NS) == LEAD
    assert atom.find("atom:entry/atom:summary", NS).get("type") == "text"
    rss = etree.fromstring(render_rss([story], META))
    assert _paragraphs(rss.findtext("channel/item/description") or "")[0] == LEAD


def test_one_source_story_does_not_repeat_its_headline(older: Story) -> None:
    content = _json_item(older)["content_html"]
    assert "Budget passes" not in content
    tree = html.fragment_fromstring(content, create_parent="div")
    assert [a.get("href") for a in tree.iter("a")] == ["https://alpha.example/b"]
    assert [c.text_content() for c in tree.iter("cite")] == ["Alpha News"]
    assert tree.find(".//time").get("datetime") == "2024-05-01T02:00:00Z"
    assert tree.find(".//ul") is None


def test_duplicate_urls_are_one_source_and_outlets_count_once() -> None:
    url = "https://agency.example/quake"
    story = build_story(
        "d1",
        [
            _source("Agency", "Quake", url, 0, priority=1),
            _source("Portal", "Quake (via Agency)", url, 3),
            _source("Agency", "Quake: update", "https://agency.example/quake-2", 9),
            _source("Daily", "Coast shaken", None, 12),
        ],
        T0,
    )
    item = _json_item(story)
    ext = item["_aggregator"]
    assert [s["title"] for s in ext["sources"]] == ["Quake", "Quake: update", "Coast shaken"]
    assert (ext["source_count"], ext["more_sources"]) == (3, 0)
    assert [a["name"] for a in item["authors"]] == ["Agency", "Daily"]
    assert "Reported by 2 outlets:" in _paragraphs(item["content_html"])


def _flood(count: int, more_sources: int = 0) -> Story:
    sources = [
        _source(f"Outlet {n:03d}", f"Report {n}", f"https://o{n}.example/a", n)
        for n in range(count)
    ]
    story = build_story("big/1", sources, T0, more_sources)
    return story


@pytest.mark.parametrize("more_sources", [0, 1000])
def test_sources_per_item_are_bounded(more_sources: int) -> None:
    story = _flood(MAX_SOURCES_PER_ITEM + 7, more_sources)
    more = 7 + more_sources
    item = _json_item(story)
    ext = item["_aggregator"]
    assert len(ext["sources"]) == MAX_SOURCES_PER_ITEM
    # Stored sources that were not loaded count too (the storage bound, Story.more_sources).
    assert ext["source_count"] == MAX_SOURCES_PER_ITEM + 7 + more_sources
    assert ext["more_sources"] == more
    assert ext["story_url"] == "https://news.example/stories/big%2F1"
    assert len(item["authors"]) == MAX_SOURCES_PER_ITEM
    tree = html.fragment_fromstring(item["content_html"], create_parent="div")
    assert len(tree.findall(".//li")) == MAX_SOURCES_PER_ITEM
    last = list(tree.iter("a"))[-1]
    assert (last.text_content(), last.get("href")) == (
        f"+{more} more sources",
        "https://news.example/stories/big%2F1",
    )
    counted = "at least " if more_sources else ""
    assert f"Reported by {counted}{MAX_SOURCES_PER_ITEM + 7} outlets:" in _paragraphs(
        item["content_html"]
    )
    atom = etree.fromstring(render_atom([story], META))
    related = atom.xpath("//atom:entry/atom:link[@rel='related']", namespaces=NS)
    assert len(related) == MAX_SOURCES_PER_ITEM + 1  # the story page and each listed source


def test_bounded_list_keeps_the_outlets_the_headline_rule_prefers() -> None:
    flood = [_source("Spam", f"Spam {n}", f"https://spam.example/{n}", n - 100) for n in range(40)]
    wire = _source("Wire", "Quake", "https://wire.example/q", 0, priority=3)
    item = _json_item(build_story("f1", [*flood, wire], T0))
    outlets = [s["outlet"] for s in item["_aggregator"]["sources"]]
    assert outlets[-1] == "Wire" and len(outlets) == MAX_SOURCES_PER_ITEM
    assert item["_aggregator"]["more_sources"] == 21


def test_story_without_a_link_points_at_its_page() -> None:
    story = build_story("n1", [_source("Alpha", "No link", None, 0)], T0)
    assert _json_item(story)["url"] == "https://news.example/stories/n1"
    atom = etree.fromstring(render_atom([story], META))
    links = atom.xpath("//atom:entry/atom:link", namespaces=NS)
    assert [(a.get("rel"), a.get("href")) for a in links] == [
        ("alternate", "https://news.example/stories/n1")
    ]
    rss = etree.fromstring(render_rss([story], META))
    assert rss.findtext("channel/item/link") == "https://news.example/stories/n1"


def test_filtered_feed_has_its_own_title_id_and_self_link(stories: list[Story]) -> None:
    meta = META.filtered(tag="wörld news", min_sources=3, query={"tag": "wörld news", "limit": "5"})
    assert meta.title == "aggregator — merged stories — tagged wörld news, 3+ outlets"
    assert meta.feed_id == "urn:aggregator:feed:merged:tag=w%C3%B6rld%20news:min_sources=3"
    self_url = "https://news.example/merged.atom?tag=w%C3%B6rld%20news&limit=5"
    assert meta.self_url("merged.atom") == self_url
    atom = etree.fromstring(render_atom(stories, meta))
    assert atom.findtext("atom:id", namespaces=NS) == meta.feed_id
    assert atom.xpath("atom:link[@rel='self']/@href", namespaces=NS) == [self_url]
    assert META.filtered(tag=None, min_sources=1, query={}) == META
    only_limit = META.filtered(tag=None, min_sources=1, query={"limit": "5"})
    assert (only_limit.title, only_limit.feed_id) == (META.title, META.feed_id)


def test_published_links_are_absolute(tmp_path: Path, stories: list[Story]) -> None:
    write_outputs(stories, tmp_path, META)
    for name in ("merged.atom", "merged.rss"):
        root = etree.parse(str(tmp_path / name)).getroot()
        hrefs = root.xpath("//@href") + root.xpath("//link/text()")
        assert hrefs and all(str(h).startswith("https://") for h in hrefs), hrefs
    document = json.loads((tmp_path / "merged.json").read_text(encoding="utf-8"))
    assert document["home_page_url"] == "https://news.example/"
    assert all(i["url"].startswith("https://") for i in document["items"])


# --- Order and determinism -----------------------------------------------------------------


@pytest.mark.parametrize(
    "render", [render_atom, render_rss, render_json_feed], ids=["atom", "rss", "json"]
)
def test_output_independent_of_input_order(render: Renderer, stories: list[Story]) -> None:
    assert render(stories, META) == render(list(reversed(stories)), META)
    assert render(stories, META) == render(stories, META)


def test_atom_feed_updated_defaults_to_newest_story(stories: list[Story]) -> None:
    doc = etree.fromstring(render_atom(stories, META))
    assert doc.findtext("atom:updated", namespaces=NS) == "2024-05-01T12:30:00Z"
    empty = etree.fromstring(render_atom([], META))
    assert _atom_schema().validate(empty)


# --- Writing files -------------------------------------------------------------------------


def test_write_outputs_creates_folder_and_files(tmp_path: Path, stories: list[Story]) -> None:
    folder = tmp_path / "public" / "feeds"
    written = write_outputs(stories, folder, META)
    assert written == [folder / "merged.atom", folder / "merged.rss", folder / "merged.json"]
    assert (folder / "merged.atom").read_bytes() == render_atom(stories, META)
    assert (folder / "merged.rss").read_bytes() == render_rss(stories, META)
    assert (folder / "merged.json").read_bytes() == render_json_feed(stories, META)
    assert sorted(p.name for p in folder.iterdir()) == ["merged.atom", "merged.json", "merged.rss"]
    if os.name == "posix":
        assert (folder / "merged.atom").stat().st_mode & 0o777 == 0o644


def test_identical_bytes_skip_the_write(tmp_path: Path, stories: list[Story]) -> None:
    write_outputs(stories, tmp_path, META)
    old = 1_000_000_000
    for path in tmp_path.iterdir():
        os.utime(path, ns=(old, old))
    inodes = {p.name: p.stat().st_ino for p in tmp_path.iterdir()}
    assert write_outputs(list(reversed(stories)), tmp_path, META) == []
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == dict.fromkeys(inodes, old)
    assert {p.name: p.stat().st_ino for p in tmp_path.iterdir()} == inodes
    assert len(write_outputs(stories[:1], tmp_path, META)) == 3


_REAL_FDOPEN = os.fdopen


class _HalfWriter:
    """A file object that writes half its data and then fails, like a full disk."""

    def __init__(self, fd: int, mode: str) -> None:
        self._file = _REAL_FDOPEN(fd, mode)

    def __enter__(self) -> _HalfWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()

    def write(self, data: bytes) -> int:
        self._file.write(data[: len(data) // 2])
        self._file.flush()
        raise OSError(28, "No space left on device")


def _fail(*args: object, **kwargs: object) -> None:
    raise OSError(5, "Input/output error")


FAILURES: dict[str, tuple[str, Callable[..., object]]] = {
    "write halfway": ("fdopen", _HalfWriter),
    "fsync": ("fsync", _fail),
    "replace": ("replace", _fail),
}


@pytest.mark.parametrize("name,replacement", FAILURES.values(), ids=FAILURES.keys())
def test_failed_write_keeps_previous_file_and_no_temp(
    tmp_path: Path,
    stories: list[Story],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    replacement: Callable[..., object],
) -> None:
    write_outputs(stories[:1], tmp_path, META)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    monkeypatch.setattr(os, name, replacement)
    with pytest.raises(OSError):
        write_outputs(stories, tmp_path, META)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert write_outputs(stories, tmp_path, META)  # and the next run succeeds


# A writer process that dies (os._exit, no cleanup handlers) after fsync, before os.replace.
_CRASH_SCRIPT = """
import os, sys
from pathlib import Path
from aggregator.publish.files import atomic_write_bytes
os.replace = lambda *args: os._exit(70)
atomic_write_bytes(Path(sys.argv[1]), b"new contents")
"""
REPO_ROOT = Path(__file__).resolve().parents[1]


def test_killed_writer_leaves_previous_file_and_stale_temp_is_removed(
    tmp_path: Path, stories: list[Story]
) -> None:
    write_outputs(stories[:1], tmp_path, META)
    target = tmp_path / "merged.atom"
    before = target.read_bytes()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    crashed = subprocess.run(
        [sys.executable, "-c", _CRASH_SCRIPT, str(target)], cwd=REPO_ROOT, env=env, check=False
    )
    assert crashed.returncode == 70
    assert target.read_bytes() == before
    (temp,) = tmp_path.glob(".merged.atom.*.tmp")
    assert temp.read_bytes() == b"new contents"  # complete, fsynced, just never swapped in
    write_outputs(stories, tmp_path, META)
    assert temp.exists()  # too fresh: could belong to a writer still running
    stale = 1_000_000_000
    os.utime(temp, (stale, stale))
    write_outputs(stories, tmp_path, META)
    assert not temp.exists()
    assert target.read_bytes() == render_atom(stories, META)


def test_public_surface() -> None:
    assert set(aggregator.publish.__all__) == {
        "ATOM_FILENAME",
        "DEFAULT_TITLE",
        "JSON_FILENAME",
        "RSS_FILENAME",
        "FeedMeta",
        "atomic_write_bytes",
        "render_atom",
        "render_json_feed",
        "render_rss",
        "write_outputs",
    }
