"""The fast path gives the same ParsedFeed as feedparser for every document, or declines it."""

from __future__ import annotations

import time

import pytest
from differential import FIXTURES, assert_same_as_feedparser, fast_result

from aggregator.testing import feedgen

DC = 'xmlns:dc="http://purl.org/dc/elements/1.1/"'
CONTENT = 'xmlns:content="http://purl.org/rss/1.0/modules/content/"'
MEDIA = 'xmlns:media="http://search.yahoo.com/mrss/"'
ATOM = 'xmlns:atom="http://www.w3.org/2005/Atom"'


def rss(items: str, channel: str = "<title>T</title><link>/</link>", decl: str = "") -> bytes:
    head = decl or '<?xml version="1.0" encoding="utf-8"?>'
    return (
        f'{head}<rss version="2.0" {DC} {CONTENT} {MEDIA} {ATOM}><channel>{channel}'
        f"{items}</channel></rss>"
    ).encode()


def item(body: str) -> bytes:
    return rss(f"<item>{body}</item>")


DATES = [
    "Fri, 12 Apr 2024 09:15:00 +0200",
    "Fri, 12 Apr 2024 09:15:00 GMT",
    "12 Apr 2024 09:15 EST",
    "Fri, 12 Apr 24 09:15:00 PDT",
    "Friday, 12-Apr-2024 09:15:00 UT",
    "2024-04-12T09:15:00Z",
    "2024-04-12T09:15:00.123+05:30",
    "2024-04-12",
    "2024-04-12 09:15",
    "12/04/2024",
    "Fri, 31 Feb 2024 09:15:00 GMT",
    "Fri, 12 Apr 9999 09:15:00 GMT",
    "Mon, 01 Jan 0001 00:00:00 GMT",
    "Fri, 12 Apr 2094 09:15:00 GMT",
    "yesterday",
    "",
    "  Fri, 12 Apr 2024 09:15:00 +0200  ",
    "Fri,&#32;12 Apr 2024 09:15:00 GMT",
    "<![CDATA[Fri, 12 Apr 2024 09:15:00 GMT]]>",
]

VARIANTS: dict[str, bytes] = {
    "relative link and guid": item("<title>a</title><link>../a?x=1</link><guid>b/c</guid>"),
    "guid permalink, no link": item("<guid>https://x.example/1</guid>"),
    "guid isPermaLink True": item('<guid isPermaLink="True">/1</guid><title>t</title>'),
    "guid not a permalink": item('<guid isPermaLink="false">/1</guid><link>/l</link>'),
    "link before guid": item("<link>/l</link><guid>/g</guid>"),
    "empty link, guid permalink": item("<guid>/g</guid><link></link>"),
    "link with entities": item("<link>/a?b=1&amp;c=2&amp;amp;d=3&amp;copy;e</link>"),
    "scheme-relative link": item("<link>//cdn.example/x</link>"),
    "link with extra slashes": item("<link>https:///x.example/y</link>"),
    "javascript link": item("<link>javascript:alert(1)</link>"),
    "cdata": item(
        "<title><![CDATA[<b>x</b> & y]]></title><description><![CDATA[<p>]]></description>"
    ),
    "numeric entities": item("<title>caf&#233; &#x2014; &#128; &lt;b&gt;</title>"),
    "undefined entity": item("<title>a&nbsp;b</title>"),
    "comment in title": item("<title>a<!-- c -->b</title>"),
    "processing instruction": item("<title>a<?pi x?>b</title>"),
    "mojibake": item("<title>CafÃ© Ã  la carte</title>"),
    "c1 controls": item("<title>\u0080 price \u0093quoted\u0094</title>"),
    "whitespace": item("<title>\n  spaced  \n</title><description>   </description>"),
    "content only": item("<content:encoded>&lt;p&gt;body</content:encoded>"),
    "content then description": item(
        "<content:encoded>body</content:encoded><description>lead</description>"
    ),
    "empty description and content": item(
        "<description></description><content:encoded>body</content:encoded>"
    ),
    "two descriptions": item("<description>a</description><description>b</description>"),
    "two titles": item("<title>a</title><title>b</title>"),
    "author with email": item("<author>jo@example.com (Jo Bloggs)</author>"),
    "dc creator": item("<dc:creator>Jo</dc:creator><dc:date>2024-04-12T09:15:00Z</dc:date>"),
    "author and creator": item("<author>a@b.example</author><dc:creator>Jo</dc:creator>"),
    "media and enclosure": item(
        '<title>m</title><media:content url="/i.jpg" medium="image"/>'
        '<media:thumbnail url="/t.jpg"/><enclosure url="/a.mp3" length="1" type="audio/mpeg"/>'
    ),
    "media title": item("<title>t</title><media:title>other</media:title>"),
    "atom link in item": item('<atom:link href="/x" rel="alternate"/>'),
    "rdf about on item": rss(
        '<item xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" rdf:about="/r"/>'
    ),
    "xml:base": rss('<item xml:base="https://other.example/"><link>a</link></item>'),
    "base attribute": rss('<item base="https://other.example/"><link>a</link></item>'),
    "duplicate ids": rss("<item><guid>/1</guid><title>a</title></item>" * 2),
    "no items": rss(""),
    "channel extras": rss(
        "<item><title>x</title></item>",
        "<title>Ch &amp; co</title><link>/home?a=1&amp;b=2</link><ttl>60</ttl>"
        '<atom:link href="/feed" rel="self" type="application/rss+xml"/>'
        "<image><url>/i.png</url><title>Logo</title><link>/</link></image>"
        "<description>d</description><language>en</language>",
    ),
    "channel alternate atom link": rss(
        "<item><title>x</title></item>", '<title>T</title><atom:link href="/alt"/>'
    ),
    "ttl not a number": rss("", "<title>T</title><ttl> 15 minutes </ttl>"),
    "ttl too long": rss("", "<title>T</title><ttl>99999</ttl>"),
    "no declaration": rss("<item><title>x</title></item>", decl="<?xml version='1.0'?>"),
    "latin-1 declaration": rss(
        "<item><title>caf\u00e9</title></item>",
        decl='<?xml version="1.0" encoding="iso-8859-1"?>',
    ),
    "doctype": b'<!DOCTYPE rss PUBLIC "-//x//y" "http://x.example/rss.dtd">'
    + item("<title>x</title>"),
    "entity declaration": (
        b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY e "boom">]>'
        b'<rss version="2.0"><channel><title>&e;</title><item><title>x&e;</title></item>'
        b"</channel></rss>"
    ),
    "undeclared prefix": rss("<item><x:title>t</x:title></item>"),
    "not well-formed": rss("<item><title>a</item>"),
    "rss 0.92": item("<title>x</title>").replace(b'version="2.0"', b'version="0.92"'),
    "default namespace": item("<title>x</title>").replace(
        b"<rss ", b'<rss xmlns="http://example.com/ns" '
    ),
    "rdf": (
        b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
        b'xmlns="http://purl.org/rss/1.0/"><channel rdf:about="/"><title>R</title>'
        b'<link>/</link></channel><item rdf:about="/a"><title>A</title><link>/a</link>'
        b"</item></rdf:RDF>"
    ),
    **{
        f"atom content type {kind}": (
            '<feed xmlns="http://www.w3.org/2005/Atom"><title>A</title>'
            f'<link href="/"/><entry><id>/e</id><title type="{kind}">t</title>'
            f'<content type="{kind}">{body}</content><link href="e"/>'
            "<updated>2024-04-12T09:15:00Z</updated></entry></feed>"
        ).encode()
        for kind, body in [
            ("text", "a &lt;b&gt;"),
            ("html", "&lt;p&gt;a&lt;/p&gt;"),
            ("xhtml", '<div xmlns="http://www.w3.org/1999/xhtml"><p>a</p></div>'),
        ]
    },
    **{
        f"date {n}: {d!r}": item(f"<title>d</title><pubDate>{d}</pubDate>")
        for n, d in enumerate(DATES)
    },
    **{f"dc:date {n}": item(f"<dc:date>{d}</dc:date>") for n, d in enumerate(DATES)},
}


def documents() -> dict[str, bytes]:
    docs = {path.name: path.read_bytes() for path in sorted(FIXTURES.iterdir())}
    base = time.time() - 86_400
    for i in range(feedgen.OUTLETS_PER_STORY * 2):
        docs[f"feedgen {i}"] = feedgen.document(i, i % 3, base).body
    return docs | VARIANTS


def fast_accepts(content: bytes) -> bool:
    return fast_result(content) is not None


@pytest.mark.parametrize("name", list(documents()))
def test_fast_path_matches_feedparser(name: str) -> None:
    assert_same_as_feedparser(documents()[name])


SHOULD_TAKE_FAST_PATH = [
    "rss20.xml",
    "feedgen 0",
    "relative link and guid",
    "link with entities",
    "cdata",
    "numeric entities",
    "mojibake",
    "content only",
    "channel extras",
    "media and enclosure",
    "duplicate ids",
    "date 0: 'Fri, 12 Apr 2024 09:15:00 +0200'",
]
SHOULD_DECLINE = [
    "hostile.xml",
    "rss10.rdf",
    "rss091.xml",
    "xml:base",
    "base attribute",
    "doctype",
    "entity declaration",
    "undefined entity",
    "latin-1 declaration",
    "not well-formed",
    "undeclared prefix",
    "two titles",
    "media title",
    "atom link in item",
    "channel alternate atom link",
    "rdf about on item",
]


@pytest.mark.parametrize("name", SHOULD_TAKE_FAST_PATH)
def test_plain_rss_takes_the_fast_path(name: str) -> None:
    assert fast_accepts(documents()[name])


@pytest.mark.parametrize("name", SHOULD_DECLINE)
def test_documents_it_cannot_reproduce_go_to_feedparser(name: str) -> None:
    assert not fast_accepts(documents()[name])
