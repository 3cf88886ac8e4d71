"""parse_feed on fixture files of each format, and on documents that are not feeds."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aggregator.exceptions import ParseError
from aggregator.normalise import normalise_entry, plain_text
from aggregator.parse import FEEDPARSER_OPTIONS, neutralise_dtd, parse_feed
from aggregator.types import Entry, ParsedEntry

FIXTURES = Path(__file__).parent / "fixtures" / "feeds"
XML = {"content-type": "application/xml"}


def test_rss_091() -> None:
    feed = parse_feed((FIXTURES / "rss091.xml").read_bytes(), XML, "https://origin.example/f/")
    assert (feed.title, feed.link, feed.ttl, feed.warning) == (
        "Harbour Gazette",
        "https://gazette.example/",
        None,
        None,
    )
    assert feed.entries == (
        ParsedEntry(
            id="https://gazette.example/news/ferry-resumes",
            title="Ferry service resumes after storm",
            link="https://gazette.example/news/ferry-resumes",
            summary="The morning ferry sailed at 07:00 for the first time since Tuesday.",
        ),
        # The relative link resolves against the document's own URL.
        ParsedEntry(
            id="https://origin.example/f/news/cafe-opens",
            title="Café opens on the quay",
            link="https://origin.example/f/news/cafe-opens",
            summary="A new café with <b>bold</b> ambitions.",
        ),
    )


def test_rss_10_rdf() -> None:
    feed = parse_feed((FIXTURES / "rss10.rdf").read_bytes(), XML, "https://science.example/rss")
    assert (feed.title, feed.link) == ("Science Desk", "https://science.example/")
    assert feed.entries == (
        ParsedEntry(
            id="https://science.example/2024/comet",
            title="Comet passes closer than expected",
            link="https://science.example/2024/comet",
            summary="Astronomers revised the orbit overnight.",
            author="R. Okafor",
            updated=datetime(2024, 3, 5, 20, 30, tzinfo=UTC),
        ),
        ParsedEntry(
            id="https://science.example/2024/reef",
            title="Reef recovery measured for the first time",
            link="https://science.example/2024/reef",
            summary="Divers counted coral across 40 sites.",
            updated=datetime(2024, 3, 4, 8, 0, tzinfo=UTC),
        ),
    )


def test_rss_20() -> None:
    feed = parse_feed((FIXTURES / "rss20.xml").read_bytes(), XML, "https://ledger.example/rss")
    assert (feed.title, feed.link) == ("Daily Ledger — World", "https://ledger.example/world")
    assert feed.ttl == timedelta(minutes=30)
    geneva, markets, note = feed.entries
    assert geneva == ParsedEntry(
        id="ledger-2024-0412",
        title="Talks resume in Geneva",
        link="https://ledger.example/world/geneva-talks?utm_source=rss&utm_medium=feed",
        summary="<p>Delegations met for <em>six hours</em>.</p>",
        content="<p>Delegations met for <em>six hours</em> on Friday.</p>"
        "<p>More talks are planned.</p>",
        author="A. Moreau",
        published=datetime(2024, 4, 12, 7, 15, tzinfo=UTC),
    )
    # No guid: the link is the identity. No update date: none is invented.
    assert markets.id == markets.link == "https://ledger.example/markets/steady"
    assert (markets.published, markets.updated) == (datetime(2024, 4, 11, 17, 0, tzinfo=UTC), None)
    # No guid, link or date: a content hash is the identity, and it is stable.
    assert note.id.startswith("sha256:") and len(note.id) == len("sha256:") + 64
    assert (note.title, note.link, note.published) == (None, None, None)
    again = parse_feed((FIXTURES / "rss20.xml").read_bytes(), XML, "https://ledger.example/rss")
    assert again.entries[2].id == note.id


def test_atom_10() -> None:
    feed = parse_feed((FIXTURES / "atom10.xml").read_bytes(), XML, "https://wire.example/atom.xml")
    assert (feed.title, feed.link) == ("Wire Service", "https://wire.example/")
    rescue, election = feed.entries
    assert rescue == ParsedEntry(
        id="tag:wire.example,2024:rescue",
        title="Rescue at sea &amp; ashore",
        link="https://wire.example/stories/rescue",
        summary="Eleven crew were lifted from a stricken trawler.",
        content="<p>Eleven crew were lifted to safety.</p>",
        author="J. Lindqvist",
        published=datetime(2024, 4, 12, 11, 45, tzinfo=UTC),
        updated=datetime(2024, 4, 12, 12, 0, tzinfo=UTC),
    )
    assert election.content == "<p>Counting continues in three districts.</p>"
    assert (election.published, election.updated) == (
        None,
        datetime(2024, 4, 11, 22, 0, tzinfo=UTC),
    )


def test_feed_with_no_entries_is_a_feed() -> None:
    doc = b'<rss version="2.0"><channel><title>Quiet</title></channel></rss>'
    feed = parse_feed(doc, XML, "https://quiet.example/rss")
    assert (feed.title, feed.entries) == ("Quiet", ())


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(
            b"<!DOCTYPE html><html><head><title>Welcome</title></head>"
            b"<body><p>Subscribe to our newsletter</p></body></html>",
            id="html-page",
        ),
        pytest.param(b"", id="empty"),
        pytest.param(b"   \n  ", id="whitespace"),
        pytest.param(b"this is plain text, not xml", id="text"),
        pytest.param(b'{"version": "https://jsonfeed.org/version/1"}', id="json"),
        pytest.param(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", id="binary"),
    ],
)
def test_not_a_feed(document: bytes) -> None:
    with pytest.raises(ParseError) as caught:
        parse_feed(document, {"content-type": "text/html"}, "https://site.example/")
    assert caught.value.url == "https://site.example/"


def test_recovered_feed_keeps_a_warning() -> None:
    # An unescaped ampersand makes the XML ill-formed; feedparser's lenient parser recovers.
    doc = (
        b'<rss version="2.0"><channel><title>Fish & Chips</title><item><title>Cod</title>'
        b'<guid isPermaLink="false">cod</guid></item></channel></rss>'
    )
    feed = parse_feed(doc, XML, "https://chips.example/rss")
    assert [e.id for e in feed.entries] == ["cod"]
    assert feed.warning is not None


def test_relative_permalink_guid_resolves_against_the_document() -> None:
    doc = (
        b'<rss version="2.0"><channel><title>T</title><item><guid>cod</guid></item></channel></rss>'
    )
    feed = parse_feed(doc, XML, "https://chips.example/feeds/rss")
    assert feed.entries[0].id == "https://chips.example/feeds/cod"


# --- Defences -------------------------------------------------------------------------------


def entity_bomb(entity_size: int, references: int) -> bytes:
    """A 10 KB entity referenced 10,000 times would expand to 100 MB."""
    return (
        b'<?xml version="1.0"?>\n<!DOCTYPE rss [\n'
        b'  <!ENTITY big "' + b"A" * entity_size + b'">\n'
        b'  <!ENTITY xxe SYSTEM "file:///etc/passwd">\n'
        b"]>\n"
        b'<rss version="2.0"><channel><title>Bomb ' + b"&big;" * references + b"</title>"
        b"<item><title>Leak &xxe;</title><guid>1</guid></item>"
        b"</channel></rss>"
    )


async def test_entity_expansion_is_neutralised() -> None:
    from ipaddress import ip_network

    from servers import LoopbackServer, Reply

    from aggregator.fetch import Fetcher

    with LoopbackServer() as server:
        server.route("/bomb.xml", Reply(body=entity_bomb(10_000, 10_000)))
        async with Fetcher(allow_networks=[ip_network("127.0.0.0/8")]) as fetcher:
            result = await fetcher.fetch(server.url("/bomb.xml"))
    assert result.content is not None
    start = time.monotonic()
    feed = parse_feed(result.content, result.headers, result.final_url)
    assert time.monotonic() - start < 1.0
    assert feed.title == "Bomb"
    assert [e.title for e in feed.entries] == ["Leak"]


def test_entity_expansion_in_utf16_is_neutralised() -> None:
    document = entity_bomb(10_000, 10_000).decode().encode("utf-16")
    start = time.monotonic()
    feed = parse_feed(document, XML, "https://e.example/rss")
    assert time.monotonic() - start < 1.0
    assert feed.title == "Bomb"


def test_neutralise_dtd_keeps_the_public_doctype() -> None:
    doc = b'<!DOCTYPE rss PUBLIC "-//Netscape//DTD RSS 0.91//EN" "x.dtd" [<!ENTITY a "]>">]><rss/>'
    assert (
        neutralise_dtd(doc)
        == b'<!DOCTYPE rss PUBLIC "-//Netscape//DTD RSS 0.91//EN" "x.dtd"><rss/>'
    )


def rss_item_title(title: bytes, declared: bytes) -> bytes:
    return (
        b'<?xml version="1.0" encoding="' + declared + b'"?>'
        b'<rss version="2.0"><channel><title>T</title><item><title>' + title + b"</title>"
        b"<guid>x</guid></item></channel></rss>"
    )


ENCODING_CASES = {
    "latin-1 bytes, utf-8 in header and declaration": (
        rss_item_title("Café".encode("latin-1"), b"utf-8"),
        "application/rss+xml; charset=utf-8",
    ),
    "utf-8 bytes, latin-1 in header and declaration": (
        rss_item_title("Café".encode(), b"iso-8859-1"),
        "application/rss+xml; charset=iso-8859-1",
    ),
    "latin-1 bytes, utf-8 header, latin-1 declaration": (
        rss_item_title("Café".encode("latin-1"), b"iso-8859-1"),
        "text/xml; charset=utf-8",
    ),
}


@pytest.mark.parametrize(("document", "content_type"), ENCODING_CASES.values(), ids=ENCODING_CASES)
def test_wrong_declared_encoding(document: bytes, content_type: str) -> None:
    feed = parse_feed(document, {"content-type": content_type}, "https://e.example/rss")
    assert feed.entries[0].title == "Café"
    assert feed.warning is not None and "encoding" in feed.warning


def test_correct_encoding_has_no_warning() -> None:
    document = rss_item_title("Café".encode("latin-1"), b"iso-8859-1")
    feed = parse_feed(document, {"content-type": "application/xml"}, "https://e.example/rss")
    assert (feed.entries[0].title, feed.warning) == ("Café", None)


def test_utf16_with_bom() -> None:
    document = rss_item_title("Café".encode(), b"utf-16").decode().encode("utf-16")
    feed = parse_feed(document, XML, "https://e.example/rss")
    assert feed.entries[0].title == "Café"


def test_duplicate_guids_keep_the_first() -> None:
    doc = (
        b'<rss version="2.0"><channel><title>T</title>'
        b'<item><guid isPermaLink="false">same</guid><title>First</title></item>'
        b'<item><guid isPermaLink="false">other</guid><title>Other</title></item>'
        b'<item><guid isPermaLink="false">same</guid><title>Second</title></item>'
        b"</channel></rss>"
    )
    feed = parse_feed(doc, XML, "https://e.example/rss")
    assert [(e.id, e.title) for e in feed.entries] == [("same", "First"), ("other", "Other")]


def test_entries_without_id_link_or_date_get_distinct_stable_ids() -> None:
    doc = (
        b'<rss version="2.0"><channel><title>T</title>'
        b"<item><title>One</title></item><item><title>Two</title></item>"
        b"<item><description>Only a body</description></item>"
        b"</channel></rss>"
    )
    feed = parse_feed(doc, XML, "https://e.example/rss")
    ids = [e.id for e in feed.entries]
    assert len(set(ids)) == 3
    assert all(i.startswith("sha256:") for i in ids)
    assert [e.published for e in feed.entries] == [None, None, None]
    assert ids == [e.id for e in parse_feed(doc, XML, "https://e.example/rss").entries]


@pytest.mark.parametrize(
    "date", [b"yesterday-ish", b"Mon, 99 Foo 2024 99:99:99 XYZ", b"", b"0000-00-00T00:00:00Z"]
)
def test_unparseable_dates_are_absent(date: bytes) -> None:
    doc = (
        b'<rss version="2.0"><channel><title>T</title><item><guid>g</guid>'
        b"<pubDate>" + date + b"</pubDate></item></channel></rss>"
    )
    assert parse_feed(doc, XML, "https://e.example/rss").entries[0].published is None


def test_far_future_date_is_parsed_then_clamped_by_normalise() -> None:
    doc = (
        b'<rss version="2.0"><channel><title>T</title><item><guid>g</guid></item>'
        b"<item><guid>h</guid><pubDate>Thu, 31 Dec 2099 00:00:00 GMT</pubDate></item>"
        b"</channel></rss>"
    )
    entries = parse_feed(doc, XML, "https://e.example/rss").entries
    assert entries[1].published == datetime(2099, 12, 31, tzinfo=UTC)
    now = datetime(2024, 4, 12, tzinfo=UTC)
    assert normalise_entry(entries[1], "https://e.example/rss", now).published == now


def test_script_injection_does_not_survive_parse_and_normalise() -> None:
    doc = (FIXTURES / "hostile.xml").read_bytes()
    feed = parse_feed(doc, XML, "https://hostile.example/rss")
    now = datetime(2024, 4, 12, tzinfo=UTC)
    entries = [normalise_entry(e, "https://hostile.example/rss", now) for e in feed.entries]
    assert len(entries) == 4
    for entry in entries:
        for text in (entry.title, entry.summary, entry.author or ""):
            assert "<" not in text and ">" not in text, text
            assert "alert" not in text, text
        assert entry.link is None or entry.link.startswith(("http://", "https://"))
    assert [e.title for e in entries] == ["Breaking", "Weather", "Sport", "Markets"]
    assert [e.link for e in entries] == [None, None, None, "https://hostile.example/markets"]


# --- feedparser's sanitiser and URI rewriting are off: what still holds ---------------------

BOTH_SETTINGS = pytest.mark.parametrize("feedparser_cleans", [False, True], ids=["off", "on"])
# The start of a tag, comment, or processing instruction: no stored text may hold one.
TAG_START = re.compile(r"<[A-Za-z!/?]")
NOW = datetime(2024, 4, 12, 12, 0, tzinfo=UTC)


def normalised(doc: bytes, url: str) -> tuple[str | None, list[Entry]]:
    feed = parse_feed(doc, XML, url)
    return feed.title, [normalise_entry(e, url, NOW) for e in feed.entries]


def set_feedparser_cleaning(monkeypatch: pytest.MonkeyPatch, on: bool) -> None:
    for option in ("resolve_relative_uris", "sanitize_html"):
        monkeypatch.setitem(FEEDPARSER_OPTIONS, option, on)


def assert_plain(text: str) -> None:
    assert TAG_START.search(text) is None, text
    assert plain_text(text) == text, text  # nothing left that stripping would remove


def test_feedparser_cleaning_is_off() -> None:
    # The tests below hold in both settings; this is the one that runs.
    assert FEEDPARSER_OPTIONS == {"resolve_relative_uris": False, "sanitize_html": False}


@BOTH_SETTINGS
def test_hostile_atom_comes_out_as_plain_text(
    monkeypatch: pytest.MonkeyPatch, feedparser_cleans: bool
) -> None:
    set_feedparser_cleaning(monkeypatch, feedparser_cleans)
    doc = (FIXTURES / "hostile_atom.xml").read_bytes()
    title, entries = normalised(doc, "https://atom.example/feeds/hostile")
    assert plain_text(title) == "Wire"
    assert [e.title for e in entries] == ["Floods", "Derby report", "Markets", "Weather"]
    assert [e.author for e in entries] == ["Ana", None, None, None]
    for entry in entries:
        for text in (entry.title, entry.summary, entry.author or ""):
            assert_plain(text)
    for entry in (entries[0], entries[2], entries[3]):
        assert "alert" not in entry.title + entry.summary + (entry.author or "")
    assert [e.summary for e in entries[:1] + entries[2:]] == ["Rivers rose", "Flat", "Sunny"]
    # A tag split by another tag ("<scr<script>ipt>") leaves inert text behind when
    # feedparser does not sanitise first; it is text, escaped wherever it is shown.
    assert entries[1].summary.endswith("Goal")


@BOTH_SETTINGS
def test_relative_links_resolve_and_unsafe_ones_are_dropped(
    monkeypatch: pytest.MonkeyPatch, feedparser_cleans: bool
) -> None:
    set_feedparser_cleaning(monkeypatch, feedparser_cleans)
    atom = (FIXTURES / "hostile_atom.xml").read_bytes()
    _, entries = normalised(atom, "https://atom.example/feeds/hostile")
    # xml:base on the feed, then on the entry; javascript: and data: links are dropped.
    assert [e.link for e in entries] == [
        "https://atom.example/news/2024/floods?id=1&utm_source=rss",
        "https://atom.example/sport/derby.html",
        None,
        None,
    ]
    assert entries[0].url == "https://atom.example/news/2024/floods?id=1"
    rss = (
        b'<rss version="2.0"><channel><title>T</title><link>/home</link>'
        b"<item><title>a</title><link>/world/1</link></item>"
        b"<item><title>b</title><link>../up?x=1&amp;y=2</link></item>"
        b"<item><title>c</title><link>  story.html  </link><guid>/p/3</guid></item>"
        b"<item><title>d</title><link>javascript:alert(1)</link></item>"
        b"<item><title>e</title><link>data:text/html,x</link></item>"
        b"<item><title>f</title><link>//cdn.example/f</link></item>"
        b"</channel></rss>"
    )
    feed = parse_feed(rss, XML, "https://rss.example/feeds/news/rss.xml")
    assert feed.link == "https://rss.example/home"
    entries = [normalise_entry(e, "https://rss.example/f", NOW) for e in feed.entries]
    assert [e.link for e in entries] == [
        "https://rss.example/world/1",
        "https://rss.example/feeds/up?x=1&y=2",
        "https://rss.example/feeds/news/story.html",
        None,
        None,
        "https://cdn.example/f",
    ]
    assert entries[2].entry_id == "https://rss.example/p/3"


@pytest.mark.parametrize(
    "name", ["rss091.xml", "rss10.rdf", "rss20.xml", "atom10.xml", "hostile.xml"]
)
def test_feedparser_cleaning_changes_nothing_we_keep(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    doc = (FIXTURES / name).read_bytes()
    url = "https://origin.example/feeds/f.xml"
    ours = normalised(doc, url)
    set_feedparser_cleaning(monkeypatch, True)
    assert normalised(doc, url) == ours


def test_feedparser_private_names_exist() -> None:
    """The fast paths call feedparser's private rules (``parse.feedparser_private``); a
    feedparser release that renames one must fail here, not deep inside a parse."""
    import importlib
    import operator

    from aggregator.parse.feedparser_private import PRIVATE_NAMES

    for module, name in PRIVATE_NAMES:
        found = operator.attrgetter(name)(importlib.import_module(module))  # AttributeError
        assert found is not None, f"{module}.{name}"
