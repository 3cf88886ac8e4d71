"""The fast path for plain, well-formed RSS 2.0: lxml reads it, feedparser's rules map it.

feedparser costs about 0.75 ms of CPU per entry even with sanitising off (issue #7); most of it
is its SAX handlers in Python. This module builds, from what lxml read (``fast.read_xml``), the
very mappings feedparser would have built, for the fields ``feed`` keeps, so ``parse_feed``
returns the same records either way. ``tests/test_parse_fast.py`` holds the two paths to that.

Besides what ``fast.read_xml`` declines, it answers None (feedparser then takes the document)
for:

- a root other than ``<rss version="2.0">`` with one ``<channel>`` (Atom, RSS 0.9x/1.0);
- an element or attribute outside the lists below, a child inside a text element, a field
  element given twice, or ``xml:base``/``base`` anywhere (feedparser would move the base URI).

What it reproduces from feedparser 6.0 (``mixin.pop``, ``namespaces/_base.py``):

- text as ``fast.pop_text`` leaves it;
- ``<link>`` and a permalink ``<guid>`` are joined to the document URL with feedparser's own
  URL joining; an item link also gets feedparser's ``&amp;`` repair;
- an item without ``<link>`` takes its permalink guid as link; its summary is the
  ``<description>``, else the ``<content:encoded>``;
- ``<pubDate>`` is the published date and ``<dc:date>`` the updated one, both read by
  feedparser's own date parser, so odd and bad dates come out the same.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from aggregator.parse.fast import Decline, FastFeed, pop_text, pop_uri, read_xml, safe_base
from aggregator.parse.feedparser_private import parse_date

__all__ = ["parse_rss20", "rss20"]

_CONTENT = "{http://purl.org/rss/1.0/modules/content/}encoded"
_DC = "{http://purl.org/dc/elements/1.1/}"
_ATOM_LINK = "{http://www.w3.org/2005/Atom}link"
_MEDIA = "{http://search.yahoo.com/mrss/}"

# Item children and the attributes feedparser reads from them that cannot change our fields.
# media:title/description are left out: feedparser maps them onto the entry's title/summary.
_ITEM_CHILDREN: Mapping[str, frozenset[str]] = {
    "title": frozenset(),
    "link": frozenset(),
    "description": frozenset(),
    "guid": frozenset({"isPermaLink"}),
    "pubDate": frozenset(),
    "author": frozenset(),
    "comments": frozenset(),
    "category": frozenset({"domain"}),
    "enclosure": frozenset({"url", "length", "type"}),
    _CONTENT: frozenset(),
    _DC + "creator": frozenset(),
    _DC + "date": frozenset(),
    _MEDIA + "content": frozenset({"url", "medium", "type", "width", "height", "fileSize"}),
    _MEDIA + "thumbnail": frozenset({"url", "width", "height"}),
}
# Elements feedparser stores by their last (or, for dates, every) occurrence: once only.
_ITEM_ONCE = ("title", "link", "description", "guid", "pubDate", _CONTENT, _DC + "date")
_AUTHORS = ("author", _DC + "creator")

# Channel children whose text only feeds fields we drop, or which we read (title, link, ttl).
_CHANNEL_TEXT = frozenset(
    {
        "title",
        "link",
        "description",
        "language",
        "copyright",
        "managingEditor",
        "webMaster",
        "pubDate",
        "lastBuildDate",
        "category",
        "generator",
        "docs",
        "ttl",
        "{http://purl.org/rss/1.0/modules/syndication/}updatePeriod",
        "{http://purl.org/rss/1.0/modules/syndication/}updateFrequency",
    }
)
_CHANNEL_ONCE = ("title", "link", "ttl")
_IMAGE_CHILDREN = frozenset({"url", "title", "link", "width", "height", "description"})
# An <atom:link> in a channel sets the feed's link when rel is "alternate" (the default).
_ATOM_LINK_RELS = frozenset({"self", "hub"})
_ATOM_LINK_ATTRS = frozenset({"href", "rel", "type"})

# feedparser takes ``xml:base`` and a bare ``base`` attribute on any element as the new base
# URI. Searched in the bytes, text included: a false match only costs the fast path.
_BASE = re.compile(rb"base\s*=")
# feedparser's repair of "&name;" in links, which it takes for stray entity references.
_LINK_ENTITY = re.compile("&([A-Za-z0-9_]+);")


def _plain(element: Any, attributes: frozenset[str] = frozenset()) -> str | None:
    """The element's text; decline if it has children or attributes feedparser would use."""
    if len(element) or (element.tail and element.tail.strip()):
        raise Decline
    if any(name not in attributes for name in element.attrib):
        raise Decline
    text: str | None = element.text
    return text


def _children(parent: Any) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for child in parent:
        if not isinstance(child.tag, str):
            raise Decline  # an entity reference left unresolved
        found.setdefault(child.tag, []).append(child)
    return found


def _item(item: Any, base: str) -> dict[str, Any]:
    if item.attrib:
        raise Decline  # rdf:about would become the id
    found = _children(item)
    if any(tag not in _ITEM_CHILDREN for tag in found):
        raise Decline
    if any(len(found.get(tag, ())) > 1 for tag in _ITEM_ONCE):
        raise Decline
    if sum(len(found.get(tag, ())) for tag in _AUTHORS) > 1:
        raise Decline
    for tag, elements in found.items():
        for element in elements:
            _plain(element, _ITEM_CHILDREN[tag])

    entry: dict[str, Any] = {}
    if "title" in found:
        entry["title"] = pop_text(found["title"][0].text)
    if "guid" in found:
        guid = found["guid"][0]
        permalink = guid.get("isPermaLink", "true") == "true"
        entry["id"] = pop_uri(guid.text, base) if permalink else pop_text(guid.text)
        if permalink:
            entry["link"] = entry["id"]
    if "link" in found:
        link = pop_uri(found["link"][0].text, base).replace("&amp;", "&")
        entry["link"] = _LINK_ENTITY.sub(r"&\g<1>", link)
    if _CONTENT in found:
        entry["content"] = [{"value": pop_text(found[_CONTENT][0].text)}]
    if "description" in found:
        entry["summary"] = pop_text(found["description"][0].text)
    elif "content" in entry:
        entry["summary"] = entry["content"][0]["value"]
    for tag in _AUTHORS:
        if tag in found:
            entry["author"] = pop_text(found[tag][0].text)
    if "pubDate" in found:
        entry["published_parsed"] = parse_date(pop_text(found["pubDate"][0].text))
    if _DC + "date" in found:
        entry["updated_parsed"] = parse_date(pop_text(found[_DC + "date"][0].text))
    return entry


def _channel(channel: Any, base: str) -> dict[str, Any]:
    if channel.attrib:
        raise Decline
    found = _children(channel)
    if any(len(found.get(tag, ())) > 1 for tag in _CHANNEL_ONCE):
        raise Decline
    for tag, elements in found.items():
        for element in elements:
            if tag in _CHANNEL_TEXT:
                _plain(element, frozenset({"domain"}) if tag == "category" else frozenset())
            elif tag == "image":
                if element.attrib or any(c.tag not in _IMAGE_CHILDREN for c in element):
                    raise Decline
                for child in element:
                    _plain(child)
            elif tag == _ATOM_LINK:
                _plain(element, _ATOM_LINK_ATTRS)
                if element.get("rel") not in _ATOM_LINK_RELS:
                    raise Decline
            elif tag != "item":
                raise Decline
    feed: dict[str, Any] = {}
    if "title" in found:
        feed["title"] = pop_text(found["title"][0].text)
    if "link" in found:
        feed["link"] = _LINK_ENTITY.sub(r"&\g<1>", pop_uri(found["link"][0].text, base))
    if "ttl" in found:
        feed["ttl"] = pop_text(found["ttl"][0].text)
    return feed


def rss20(root: Any, document: bytes, url: str) -> FastFeed | None:
    """feedparser's mappings for an RSS 2.0 ``root`` read by ``read_xml``, or None."""
    if _BASE.search(document):
        return None
    base = safe_base(url)
    try:
        if root.tag != "rss" or dict(root.attrib) != {"version": "2.0"}:
            raise Decline
        if root.text and root.text.strip():
            raise Decline
        children = list(root)
        if len(children) != 1 or children[0].tag != "channel":
            raise Decline
        channel = children[0]
        feed = _channel(channel, base)
        entries = [_item(item, base) for item in channel.iterchildren("item")]
    except Decline:
        return None
    return FastFeed(feed=feed, entries=entries)


def parse_rss20(document: bytes, url: str) -> FastFeed | None:
    """feedparser's mappings for a plain RSS 2.0 ``document`` (UTF-8), or None to decline.

    ``url`` is the document's URL, the base of relative links as it is for feedparser.
    """
    root = read_xml(document)
    return None if root is None else rss20(root, document, url)
