"""Synthetic news feeds for tests and benchmarks: deterministic, realistic in size and shape.

Feed ``i`` at cycle ``c`` is an RSS 2.0 document of ``ENTRIES_PER_FEED`` items (about 80 KB):
titles, permalinks, guids, dates, categories, an HTML-escaped ``<description>`` and a
``<content:encoded>`` CDATA block, like the feeds of news sites. Everything is derived from
``(i, c)`` alone, so any server process can produce the same bytes without shared state.

Change model (a steady polling cycle): at every cycle ``c >= 1`` the feeds with
``(i + c) % CHANGE_PERIOD == 0`` (exactly 1 in 20, i.e. 5 %) publish ``NEW_PER_CHANGE`` new
entries; the oldest entries fall off the end. Every other feed is unchanged: it answers a
conditional request with 304, or, for the 1 in ``NO_VALIDATOR_PERIOD`` feeds that send no
validators (as some real servers do), with byte-identical content.

Feeds are grouped in fours that report the same stories (same sequence number, overlapping
headline words), so the matcher sees a realistic mix of new stories and joined ones.
"""

from __future__ import annotations

import email.utils
import hashlib
import random
from dataclasses import dataclass
from xml.sax.saxutils import escape

ENTRIES_PER_FEED = 50
# 1 in 20 feeds changes per cycle: the 5 % of a steady cycle.
CHANGE_PERIOD = 20
NEW_PER_CHANGE = 2
# 1 in 10 feeds sends neither ETag nor Last-Modified: they are recognised by body hash.
NO_VALIDATOR_PERIOD = 10
# Outlets reporting the same stories.
OUTLETS_PER_STORY = 4
# Minutes between two consecutive entries of a feed.
ENTRY_SPACING_MINUTES = 20
# Sizes chosen so a feed is ~80 KB, the size of a 50-item feed of a large news site.
TITLE_WORDS = 9
DESCRIPTION_WORDS = 45
CONTENT_WORDS = 40
_VOCABULARY_SIZE = 6000
_SYLLABLE_TEXT = (
    "ba be bi bo bu ca ce co cu da de di do du fa fe fi fo ga ge go ha he hi ho ka ke ki ko "
    "la le li lo lu ma me mi mo mu na ne ni no nu pa pe pi po pu ra re ri ro ru sa se si so "
    "su ta te ti to tu va ve vi vo za ze zo an en in on ar er ir or al el il ol st tr pr"
)
_SYLLABLES = _SYLLABLE_TEXT.split()


def _vocabulary() -> tuple[str, ...]:
    rng = random.Random(20240601)
    words: set[str] = set()
    while len(words) < _VOCABULARY_SIZE:
        words.add("".join(rng.choices(_SYLLABLES, k=rng.randint(2, 4))))
    return tuple(sorted(words))


VOCABULARY = _vocabulary()


def version(feed: int, cycle: int) -> int:
    """How many times feed ``feed`` has changed by ``cycle`` (cycle 0 is the first poll)."""
    return sum(1 for c in range(1, cycle + 1) if (feed + c) % CHANGE_PERIOD == 0)


def changes_at(feed: int, cycle: int) -> bool:
    """Whether ``feed`` publishes new entries at ``cycle``."""
    return cycle >= 1 and (feed + cycle) % CHANGE_PERIOD == 0


def has_validators(feed: int) -> bool:
    """Whether ``feed`` sends ETag and Last-Modified."""
    return feed % NO_VALIDATOR_PERIOD != 0


@dataclass(frozen=True, slots=True)
class Document:
    """One feed document and its validators (None when the feed sends none)."""

    body: bytes
    etag: str | None
    last_modified: str | None


def validators(feed: int, cycle: int, base: float) -> tuple[str | None, str | None]:
    """The ETag and Last-Modified of ``feed`` at ``cycle``, computed without the body."""
    if not has_validators(feed):
        return None, None
    v = version(feed, cycle)
    modified = base + v * NEW_PER_CHANGE * ENTRY_SPACING_MINUTES * 60
    return f'"{feed:x}-{v}"', email.utils.formatdate(modified, usegmt=True)


def _words(rng: random.Random, count: int) -> str:
    return " ".join(rng.choices(VOCABULARY, k=count))


def _item(feed: int, seq: int, base: float) -> str:
    group = feed // OUTLETS_PER_STORY
    story = random.Random(f"{group}:{seq}")
    own = random.Random(f"{feed}:{seq}")
    headline = story.choices(VOCABULARY, k=TITLE_WORDS)
    # Each outlet rewords the headline: it keeps most of the story's words, adds its own.
    for position in own.sample(range(TITLE_WORDS), 3):
        headline[position] = own.choice(VOCABULARY)
    title = " ".join(headline).capitalize()
    slug = "-".join(headline[:5])
    link = f"https://outlet{feed}.example.com/news/{seq}/{slug}?utm_source=rss"
    published = email.utils.formatdate(base + seq * ENTRY_SPACING_MINUTES * 60, usegmt=True)
    lead = _words(story, 30)
    description = (
        f"<p><b>{lead}</b> {_words(own, DESCRIPTION_WORDS)}</p>"
        f'<p><a href="/news/{seq}/more">Read more</a></p>'
    )
    content = (
        f"<p>{lead}. {_words(own, CONTENT_WORDS // 2)}</p>"
        f'<figure><img src="https://img.example.com/{feed}/{seq}.jpg" alt="{headline[0]}"/>'
        f"<figcaption>{_words(own, 8)}</figcaption></figure>"
        f"<p>{_words(own, CONTENT_WORDS // 2)}</p>"
    )
    return (
        "<item>"
        f"<title>{escape(title)}</title>"
        f"<link>{escape(link)}</link>"
        f'<guid isPermaLink="false">outlet{feed}-{seq}</guid>'
        f"<pubDate>{published}</pubDate>"
        f"<dc:creator>{escape(_words(own, 2).title())}</dc:creator>"
        f"<category>{escape(own.choice(VOCABULARY))}</category>"
        f"<description>{escape(description)}</description>"
        f"<content:encoded><![CDATA[{content}]]></content:encoded>"
        "</item>\n"
    )


def document(feed: int, cycle: int, base: float) -> Document:
    """Feed ``feed`` as served at ``cycle``; ``base`` is the UNIX time of sequence number 0."""
    v = version(feed, cycle)
    newest = v * NEW_PER_CHANGE + ENTRIES_PER_FEED - 1
    items = "".join(_item(feed, seq, base) for seq in range(newest, newest - ENTRIES_PER_FEED, -1))
    built = email.utils.formatdate(base + newest * ENTRY_SPACING_MINUTES * 60, usegmt=True)
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/">\n<channel>\n'
        f"<title>Outlet {feed} - World</title>\n"
        f"<link>https://outlet{feed}.example.com/</link>\n"
        f"<description>Latest world news from outlet {feed}</description>\n"
        f"<lastBuildDate>{built}</lastBuildDate><ttl>15</ttl>\n"
        f"{items}</channel>\n</rss>\n"
    ).encode()
    etag, last_modified = validators(feed, cycle, base)
    return Document(body, etag, last_modified)


def digest(body: bytes) -> str:
    """A short content digest (for checks that two documents are byte-identical)."""
    return hashlib.sha256(body).hexdigest()[:16]
