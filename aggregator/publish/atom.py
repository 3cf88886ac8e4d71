"""Atom 1.0 (RFC 4287) rendering of merged stories."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

from aggregator.publish._common import (
    clean_text,
    feed_updated,
    ordered,
    rfc3339,
    story_urn,
)
from aggregator.publish.html import item_content_html
from aggregator.publish.item import STORY_PAGE_TITLE, item_view
from aggregator.publish.links import safe_url
from aggregator.publish.meta import ATOM_FILENAME, FeedMeta
from aggregator.types import Story

ATOM_NS = "http://www.w3.org/2005/Atom"
ATOM_MEDIA_TYPE = "application/atom+xml"
_INDENT = "  "


def _text(parent: ET.Element, tag: str, text: str, **attrib: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrib)
    element.text = clean_text(text)
    return element


def _person(entry: ET.Element, tag: str, name: str) -> None:
    person = ET.SubElement(entry, tag)
    _text(person, "name", name)


def _entry(feed: ET.Element, story: Story, meta: FeedMeta) -> None:
    view = item_view(story, meta)
    entry = ET.SubElement(feed, "entry")
    _text(entry, "id", story_urn(story))
    _text(entry, "title", view.title, type="text")
    _text(entry, "published", rfc3339(story.first_published))
    _text(entry, "updated", rfc3339(story.updated))
    ET.SubElement(entry, "link", {"rel": "alternate", "type": "text/html", "href": view.link})
    if view.article is not None:
        # The story's page as rel="related", not a second alternate: RFC 4287 §4.2.7.2 allows
        # one alternate per type and language, and that one stays the representative article
        # readers open. Its title tells it from the sources' related links below.
        page = {"rel": "related", "type": "text/html", "href": view.page_url}
        ET.SubElement(entry, "link", {**page, "title": STORY_PAGE_TITLE})
    for source in view.listed:
        url = safe_url(source.url)
        if url:
            attrib = {"rel": "related", "href": url, "title": clean_text(source.feed_name)}
            ET.SubElement(entry, "link", attrib)
    # Bylines: the representative outlet is the author, each other listed one a contributor.
    if view.author:
        _person(entry, "author", view.author)
    for name in view.contributors:
        _person(entry, "contributor", name)
    if view.lead:
        _text(entry, "summary", view.lead, type="text")
    _text(entry, "content", item_content_html(view), type="html")


def render_atom(stories: Sequence[Story], meta: FeedMeta) -> bytes:
    """An Atom 1.0 feed document (UTF-8 bytes) with one entry per story, newest update first.

    Entry ids are ``urn:aggregator:story:<id>``; ``rel="alternate"`` points at the
    representative article (the story's page when no source has an http(s) link), and
    ``rel="related"`` links at the story's page and every listed source's article.
    """
    # Elements are built unqualified under a root declaring Atom as the default namespace:
    # ElementTree's default_namespace option refuses the unqualified attributes Atom uses.
    feed = ET.Element("feed", {"xmlns": ATOM_NS})
    _text(feed, "id", meta.feed_id)
    _text(feed, "title", meta.title, type="text")
    _text(feed, "subtitle", meta.description, type="text")
    _text(feed, "updated", rfc3339(feed_updated(stories, meta.updated)))
    author = ET.SubElement(feed, "author")
    _text(author, "name", meta.author)
    _text(feed, "generator", meta.generator, version=meta.version)
    self_link = {"rel": "self", "type": ATOM_MEDIA_TYPE, "href": meta.self_url(ATOM_FILENAME)}
    ET.SubElement(feed, "link", self_link)
    ET.SubElement(feed, "link", {"rel": "alternate", "type": "text/html", "href": meta.home_url})
    for story in ordered(stories):
        _entry(feed, story, meta)
    ET.indent(feed, space=_INDENT)
    document: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
    return document
