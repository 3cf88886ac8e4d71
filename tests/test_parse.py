"""parse_feed on fixture files of each format, and on documents that are not feeds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aggregator.exceptions import ParseError
from aggregator.parse import parse_feed
from aggregator.types import ParsedEntry

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
