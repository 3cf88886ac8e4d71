"""The Atom fast path gives the same ParsedFeed as feedparser for every document, or declines it."""

from __future__ import annotations

import random

import pytest
from differential import FIXTURES, URL, XML, assert_same_as_feedparser, fast_result

from aggregator.parse import parse_feed

NS = 'xmlns="http://www.w3.org/2005/Atom"'
XHTML = 'xmlns="http://www.w3.org/1999/xhtml"'
EXTRA = (
    'xmlns:thr="http://purl.org/syndication/thread/1.0" '
    'xmlns:media="http://search.yahoo.com/mrss/" xmlns:yt="http://www.youtube.com/xml/schemas/2015"'
)
FEED = '<title>A</title><link href="/"/>'


def atom(entries: str, feed: str = FEED, attrs: str = "", head: str = "") -> bytes:
    head = head or '<?xml version="1.0" encoding="utf-8"?>'
    return f"{head}<feed {NS} {EXTRA}{attrs}>{feed}{entries}</feed>".encode()


def entry(body: str, attrs: str = "") -> bytes:
    return atom(f"<entry{attrs}>{body}</entry>")


def div(body: str) -> str:
    return f"<div {XHTML}>{body}</div>"


BODIES = {
    "text": "a &lt;b&gt; &amp;amp; c",
    "html": "&lt;p&gt;a &amp;amp; b&lt;/p&gt;",
    "xhtml": div('<p class="x">a &amp; <b>b</b> &lt;c&gt;</p>'),
}
DATES = [
    "2024-04-12T09:15:00Z",
    "2024-04-12T09:15:00.123+05:30",
    "2024-04-12T09:15:00-04:00",
    "2024-04-12",
    "Fri, 12 Apr 2024 09:15:00 GMT",
    "2024-02-31T09:15:00Z",
    "9999-04-12T09:15:00Z",
    "0001-01-01T00:00:00Z",
    "yesterday",
    "",
    "  2024-04-12T09:15:00Z  ",
    "<![CDATA[2024-04-12T09:15:00Z]]>",
]

VARIANTS: dict[str, bytes] = {
    # ids and links
    "relative hrefs": entry('<id>e/1</id><link href="../a?x=1&amp;y=2"/><title>t</title>'),
    "relative id only": entry("<id>/e/1</id><title>t</title>"),
    "links with rels": entry(
        '<link rel="self" href="/s"/><link rel="related" href="/r"/>'
        '<link rel="alternate" href="/a1"/><link href="/a2" type="text/html"/>'
        '<link rel="enclosure" href="/e.mp3" type="audio/mpeg" length="9"/><id>x</id>'
    ),
    "alternate of another type": entry('<link rel="alternate" type="application/pdf" href="/p"/>'),
    "alternate xhtml type": entry('<link type="application/xhtml+xml" href="/x"/><id>i</id>'),
    "alternate type html": entry('<link type="html" href="/h"/><link type="text" href="/t"/>'),
    "rel and type in capitals": entry('<link rel="ALTERNATE" type="TEXT/HTML" href="/c"/>'),
    "empty rel": entry('<id>/i</id><link rel="" href="/e"/>'),
    "empty href": entry('<link href=""/><title>t</title>'),
    "self without type": entry('<link rel="self" href="/s"/><id>/i</id>'),
    "id before link": entry('<id>/i</id><link href="/l"/>'),
    "link before id": entry('<link href="/l"/><id>/i</id>'),
    "urn id": entry("<id>urn:uuid:60a76c80-d399-11d9-b93C-0003939e0af6</id>"),
    "tag id": entry("<id>tag:example.org,2024:1</id><title>t</title>"),
    "missing id": entry('<title>t</title><link href="/a"/>'),
    "missing id and link": entry("<title>t</title><summary>s</summary>"),
    "empty id": entry("<id></id><title>t</title>"),
    "whitespace id": entry("<id>\n  /x  \n</id>"),
    "scheme-relative href": entry('<link href="//cdn.example/x"/>'),
    "extra slashes href": entry('<link href="https:///x.example/y"/>'),
    "javascript href": entry('<link href="javascript:alert(1)"/><id>/i</id>'),
    "href with spaces": entry('<link href="  /a b  "/>'),
    "link without href": entry("<link>/l</link>"),
    "duplicate ids": atom("<entry><id>/1</id><title>a</title></entry>" * 2),
    # dates
    "missing dates": entry("<id>1</id>"),
    "published only": entry("<id>1</id><published>2024-04-12T09:15:00Z</published>"),
    "updated only": entry("<id>1</id><updated>2024-04-12T09:15:00Z</updated>"),
    "two updated": entry(
        "<updated>2024-04-12T09:15:00Z</updated><updated>2024-04-13T09:15:00Z</updated>"
    ),
    **{
        f"date {n}: {d!r}": entry(f"<id>{n}</id><published>{d}</published><updated>{d}</updated>")
        for n, d in enumerate(DATES)
    },
    # text constructs
    **{
        f"{element} {kind}": entry(f'<id>/i</id><{element} type="{kind}">{body}</{element}>')
        for element in ("title", "summary", "content")
        for kind, body in BODIES.items()
    },
    **{
        f"summary {a} and content {b}": entry(
            f'<summary type="{a}">{BODIES[a]}</summary><content type="{b}">{BODIES[b]}</content>'
        )
        for a in BODIES
        for b in BODIES
    },
    "content then summary": entry("<content>c</content><summary>s</summary>"),
    "empty summary and content": entry("<summary></summary><content>c</content>"),
    "type in capitals": entry(
        '<title type="HTML">&lt;b&gt;t</title><content type="Text">c</content>'
    ),
    "two summaries": entry("<summary>a</summary><summary>b</summary>"),
    "two titles": entry("<title>a</title><title>b</title>"),
    "content src": entry('<content src="/c.html" type="text/html"/>'),
    "content mime type": entry('<content type="image/png">iVBORw0KGgo=</content>'),
    "content type text/html": entry('<content type="text/html">&lt;p&gt;c</content>'),
    "html with a child": entry('<content type="html"><p>c</p></content>'),
    "cdata": entry(
        '<title type="html"><![CDATA[<b>x</b> & y]]></title>'
        "<summary><![CDATA[<p>s]]> and more</summary>"
    ),
    "numeric entities": entry("<title>caf&#233; &#x2014; &#128; &lt;b&gt; &amp;amp;</title>"),
    "undefined entity": entry("<title>a&nbsp;b</title>"),
    "comment in title": entry("<title>a<!-- c -->b</title>"),
    "mojibake": entry("<title>CafÃ© Ã  la carte</title><content>Ã©</content>"),
    "c1 controls": entry("<title>\u0080 price \u0093quoted\u0094</title>"),
    "whitespace": entry("<title>\n  spaced  \n</title><summary>   </summary>"),
    # xhtml
    "xhtml two divs": entry(f'<content type="xhtml">{div("a")}{div("b")}</content>'),
    "xhtml text before div": entry(f'<content type="xhtml">lead {div("a")}</content>'),
    "xhtml text after div": entry(f'<content type="xhtml">{div("a")} tail</content>'),
    "xhtml without div": entry(f'<content type="xhtml"><p {XHTML}>a</p> b</content>'),
    "xhtml nested divs": entry(
        f'<content type="xhtml">\n  {div("<div>a</div><div>b<br/></div>")}\n</content>'
    ),
    "xhtml inner div closes early": entry(
        f'<content type="xhtml">{div("x</div><div>y")}</content>'
    ),
    "xhtml empty div": entry(f'<summary type="xhtml">{div("")}</summary>'),
    "xhtml attributes": entry(
        '<content type="xhtml">'
        + div(
            '<a href="/x?a=1&amp;b=&quot;2&quot;" title="&lt;t&gt; \'q\'" REL="NoFollow" '
            'Type="TEXT/HTML" data-x="">l</a><img src="i.png" alt=""/>'
        )
        + "</content>"
    ),
    "xhtml uppercase names": entry(
        '<content type="xhtml"><DIV xmlns="http://www.w3.org/1999/xhtml"><P>a</P></DIV></content>'
    ),
    "xhtml prefixed": entry(
        '<content type="xhtml" xmlns:h="http://www.w3.org/1999/xhtml">'
        "<h:div><h:p>a</h:p></h:div></content>"
    ),
    "xhtml cdata and comment": entry(
        f'<content type="xhtml">{div("<p><![CDATA[<b> & ]]>x<!-- c -->y</p>")}</content>'
    ),
    "xhtml mojibake": entry(f'<content type="xhtml">{div("<p>CafÃ©</p>")}</content>'),
    "xhtml title": atom(
        "<entry><id>/e</id></entry>", f'<title type="xhtml">{div("<b>T</b>")}</title>'
    ),
    "xhtml body": entry(f'<content type="xhtml">{div("<body>b</body>")}</content>'),
    "xhtml svg": entry(
        '<content type="xhtml">'
        + div('<svg xmlns="http://www.w3.org/2000/svg"><title>t</title></svg>')
        + "</content>"
    ),
    "xhtml atom child": entry('<content type="xhtml"><div><title>t</title></div></content>'),
    "xhtml xml:lang": entry(
        '<content type="xhtml">' + div('<p xml:lang="en">a</p>') + "</content>"
    ),
    "xhtml namespaced attribute": entry(
        '<content type="xhtml" xmlns:x="http://x.example/">'
        + div('<a x:href="/y" href="/x">a</a>')
        + "</content>"
    ),
    # people and categories
    "author name": entry("<author><name> Jo Bloggs </name></author>"),
    "author name and email": entry("<author><name>Jo</name><email>jo@x.example</email></author>"),
    "author email only": entry("<author><email>jo@x.example</email></author>"),
    "author uri only": entry("<author><uri>/jo</uri></author>"),
    "author uri first": entry("<author><uri>/jo</uri><name>Jo</name></author>"),
    "author empty name": entry("<author><name></name></author>"),
    "author text only": entry("<author>jo@x.example (Jo Bloggs)</author>"),
    "author text and name": entry("<author>x<name>n</name></author>"),
    "author mojibake": entry("<author><name>JÃ¶rg</name></author>"),
    "two authors": entry("<author><name>A</name></author><author><name>B</name></author>"),
    "email author then name author": entry(
        "<author><name>A</name><email>a@x.example</email></author><author><name>B</name></author>"
    ),
    "name author then uri author": entry(
        "<author><name>A (a@x.example)</name></author><author><uri>/b</uri></author>"
    ),
    "three authors": entry(
        "<author><email>a@x.example</email></author><author><name>B</name></author>"
        "<author><uri>/c</uri><name>C</name><email>c@x.example</email></author>"
    ),
    "contributor": entry(
        "<contributor><name>C</name></contributor><author><name>A</name></author>"
    ),
    "author with an unknown child": entry("<author><name>A</name><x>y</x></author>"),
    "categories": entry(
        '<category term="a" scheme="https://s.example/" label="L"/>'
        '<category term="b">text</category>'
        "<category>c</category>"
    ),
    # feed level
    "feed id, no link": atom("", "<title>T</title><id>/feed-id</id>"),
    "feed self link only": atom("", '<title>T</title><link rel="self" href="/self"/>'),
    "feed id then alternate": atom("", '<id>tag:x,2024:f</id><link href="/alt"/><title>T</title>'),
    "feed alternate then id": atom("", '<link href="/alt"/><id>/id</id><title>T</title>'),
    "feed title html": atom("", '<title type="html">A &amp;amp; B &lt;i&gt;c&lt;/i&gt;</title>'),
    "feed without title": atom("<entry><id>/e</id></entry>", '<link href="/"/>'),
    "feed title after entries": atom("<entry><title>e</title></entry><title>Feed</title>", ""),
    "feed extras": atom(
        "<entry><id>/e</id></entry>",
        '<title>T</title><subtitle type="html">&lt;b&gt;s</subtitle><rights>r</rights>'
        "<icon>/i.png</icon><logo>/l.png</logo><updated>2024-04-12T09:15:00Z</updated>"
        '<generator uri="/gen" version="1">G</generator><author><name>F</name></author>'
        '<category term="news"/>',
    ),
    "empty feed": atom(""),
    "empty document body": atom("", ""),
    # xml:base
    "root xml:base": atom(
        '<entry><id>e/1</id><link href="a"/></entry>', FEED, ' xml:base="https://b.example/d/"'
    ),
    "relative root xml:base": atom('<entry><link href="a"/></entry>', FEED, ' xml:base="/sub/"'),
    "javascript xml:base": atom(
        '<entry><link href="a"/></entry>', FEED, ' xml:base="javascript:alert(1)"'
    ),
    "entry xml:base": entry('<id>i</id><link href="a"/>', ' xml:base="/entry/"'),
    "link xml:base": entry('<link xml:base="https://l.example/x/" href="a"/><id>i</id>'),
    "id xml:base": entry('<id xml:base="/ids/">i</id>'),
    "content xml:base": entry('<content type="html" xml:base="/c/">&lt;a href="x"&gt;</content>'),
    "base attribute": entry('<link href="a"/>', ' base="https://other.example/"'),
    "xml:lang": atom(
        '<entry xml:lang="fr"><title xml:lang="de">t</title></entry>', FEED, ' xml:lang="en"'
    ),
    # namespaces and extensions
    "prefixed atom": (
        b'<a:feed xmlns:a="http://www.w3.org/2005/Atom"><a:title>T</a:title>'
        b'<a:entry><a:id>/1</a:id><a:link href="/l"/></a:entry></a:feed>'
    ),
    "rss 1.0 namespace declared first": (
        b'<feed xmlns:r="http://purl.org/rss/1.0/" xmlns="http://www.w3.org/2005/Atom">'
        b"<title>T</title><entry><id>/1</id><title>&lt;b&gt;x&lt;/b&gt;</title></entry></feed>"
    ),
    "thr total": entry(
        '<id>/1</id><thr:total>3</thr:total><link rel="replies" href="/c" thr:count="3"/>'
    ),
    "thr total under another prefix": atom(
        '<entry><id>/1</id><t:total xmlns:t="http://purl.org/syndication/thread/1.0">3</t:total>'
        "</entry>"
    ),
    "media thumbnail": entry('<id>/1</id><media:thumbnail url="/t.jpg" width="30" height="30"/>'),
    "media group": entry("<id>/1</id><media:group><media:title>m</media:title></media:group>"),
    "youtube video id": entry("<id>yt:video:x</id><yt:videoId>x</yt:videoId>"),
    "source": entry("<id>/1</id><source><title>S</title></source>"),
    "entry href attribute": entry("<id>/1</id>", ' href="/other"'),
    "atom 0.3": (
        b'<feed version="0.3" xmlns="http://purl.org/atom/ns#"><title>T</title>'
        b"<entry><id>/1</id></entry></feed>"
    ),
    "capitalised element": entry("<id>/1</id><Title>t</Title>"),
    "text in entry": entry("<id>/1</id>stray text<title>t</title>"),
    # documents
    "no declaration": atom("<entry><id>/1</id></entry>", head="<?xml version='1.0'?>"),
    "latin-1 declaration": atom(
        "<entry><title>caf\u00e9</title></entry>",
        head='<?xml version="1.0" encoding="iso-8859-1"?>',
    ),
    "doctype": b'<!DOCTYPE feed SYSTEM "http://x.example/atom.dtd">' + entry("<id>/1</id>"),
    "entity declaration": (
        b'<?xml version="1.0"?><!DOCTYPE feed [<!ENTITY e "boom">]>'
        b'<feed xmlns="http://www.w3.org/2005/Atom"><title>&e;</title>'
        b"<entry><title>x&e;</title></entry></feed>"
    ),
    "not well-formed": entry("<id>/1</id><title>a</entry>"),
}


def documents() -> dict[str, bytes]:
    fixtures = {p.name: p.read_bytes() for p in sorted(FIXTURES.glob("*atom*.xml"))}
    return fixtures | VARIANTS


def fast_accepts(content: bytes) -> bool:
    result = fast_result(content)
    return result is not None and result.version == "atom10"


@pytest.mark.parametrize("name", list(documents()))
def test_atom_fast_path_matches_feedparser(name: str) -> None:
    assert_same_as_feedparser(documents()[name])


SHOULD_TAKE_FAST_PATH = [
    "atom10.xml",
    "atom_github.xml",
    "atom_news.xml",
    "atom_wordpress.xml",
    "relative hrefs",
    "links with rels",
    "rel and type in capitals",
    "missing id",
    "missing id and link",
    "duplicate ids",
    "missing dates",
    "date 0: '2024-04-12T09:15:00Z'",
    "date 8: 'yesterday'",
    "title text",
    "summary html",
    "content xhtml",
    "summary xhtml and content html",
    "cdata",
    "numeric entities",
    "mojibake",
    "xhtml two divs",
    "xhtml attributes",
    "xhtml prefixed",
    "xhtml title",
    "author text only",
    "three authors",
    "categories",
    "feed id, no link",
    "feed extras",
    "empty feed",
    "root xml:base",
    "entry xml:base",
    "content xml:base",
    "prefixed atom",
    "thr total",
    "media thumbnail",
]
SHOULD_DECLINE = [
    "hostile_atom.xml",
    "link without href",
    "two summaries",
    "two titles",
    "content src",
    "content mime type",
    "html with a child",
    "undefined entity",
    "xhtml body",
    "xhtml svg",
    "xhtml atom child",
    "xhtml xml:lang",
    "xhtml namespaced attribute",
    "author with an unknown child",
    "base attribute",
    "rss 1.0 namespace declared first",
    "thr total under another prefix",
    "media group",
    "youtube video id",
    "source",
    "entry href attribute",
    "atom 0.3",
    "capitalised element",
    "latin-1 declaration",
    "doctype",
    "entity declaration",
    "not well-formed",
]


@pytest.mark.parametrize("name", SHOULD_TAKE_FAST_PATH)
def test_plain_atom_takes_the_fast_path(name: str) -> None:
    assert fast_accepts(documents()[name])


@pytest.mark.parametrize("name", SHOULD_DECLINE)
def test_atom_it_cannot_reproduce_goes_to_feedparser(name: str) -> None:
    assert not fast_accepts(documents()[name])


def test_every_listed_document_exists() -> None:
    assert set(SHOULD_TAKE_FAST_PATH + SHOULD_DECLINE) <= set(documents())


# Fragments combined at random (seeded) into entries and feeds, so the order-dependent rules
# (id vs link, summary vs content, several authors, xml:base) meet each other.
ENTRY_PARTS = [
    "<id>/i</id>",
    "<id>tag:x.example,2024:2</id>",
    "<id> rel/x </id>",
    "<id></id>",
    '<link href="a"/>',
    '<link rel="self" href="/s"/>',
    '<link rel="alternate" type="text/html" href="/b?x=1&amp;y"/>',
    '<link rel="replies" href="/c" thr:count="2"/>',
    '<link href=""/>',
    '<link type="application/xhtml+xml" href="x"/>',
    '<link href="/e" xml:base="https://o.example/q/"/>',
    "<title>T &amp; t</title>",
    '<title type="html">&lt;b&gt;x</title>',
    '<title type="xhtml">' + div("<i>x</i>") + "</title>",
    "<summary>s</summary>",
    '<summary type="html">&lt;p&gt;s</summary>',
    '<summary type="xhtml">' + div("<p>s</p>") + "</summary>",
    "<content>c</content>",
    '<content type="html"><![CDATA[<p>c]]></content>',
    '<content type="xhtml"> ' + div("<p a='1' b='2'>c<br/></p>") + " </content>",
    '<content type="xhtml">' + div("a") + div("b") + "</content>",
    f'<content type="xhtml">x<p {XHTML}>y</p></content>',
    "<published>2024-04-12T09:15:00Z</published>",
    "<updated>2024-04-12T09:15:00+02:00</updated>",
    "<updated>junk</updated>",
    "<author><name>A</name></author>",
    "<author><email>a@x.example</email></author>",
    "<author><uri>/u</uri></author>",
    "<author><name>B</name><email>b@y.example</email><uri>u</uri></author>",
    "<author>t@z.example (T)</author>",
    "<author><uri>/u</uri><name>U</name></author>",
    "<author><email>e@q.example</email><name>N</name></author>",
    "<author> <name> </name> </author>",
    "<contributor><name>C</name></contributor>",
    '<category term="c"/>',
    "<thr:total>1</thr:total>",
    '<media:thumbnail url="/t"/>',
    "<rights>r</rights>",
    "<title>CafÃ©</title>",
    "<summary>\u0093q\u0094</summary>",
]
FEED_PARTS = [
    "<title>F</title>",
    "<id>/fid</id>",
    '<link href="/h"/>',
    '<link rel="self" href="/s"/>',
    "<subtitle>s</subtitle>",
    "<updated>2024-04-12T09:15:00Z</updated>",
    "<author><name>FA</name></author>",
    "<icon>/i</icon>",
    '<title type="xhtml">' + div("F") + "</title>",
]
BASES = ["", ' xml:base="/b/"', ' xml:base="https://x.example/a/b"', ' xml:base="javascript:x"']


def combined(seed: int) -> bytes:
    rng = random.Random(seed)
    entries = "".join(
        f"<entry{rng.choice(BASES)}>"
        + "".join(rng.sample(ENTRY_PARTS, rng.randint(0, 7)))
        + "</entry>"
        for _ in range(rng.randint(0, 3))
    )
    feed = "".join(rng.sample(FEED_PARTS, rng.randint(0, 4)))
    if rng.random() < 0.3:  # feed elements after the entries
        return atom("", feed + entries, rng.choice(BASES))
    return atom(entries, feed, rng.choice(BASES))


def test_generated_combinations_match_feedparser() -> None:
    taken = 0
    for seed in range(300):
        content = combined(seed)
        if fast_accepts(content):
            taken += 1
            expected = parse_feed(content, XML, URL, fast_path=False)
            assert parse_feed(content, XML, URL) == expected, seed
    assert taken > 150  # the combinations are meant for the fast path, not its declines
