"""RSS 2.0 rendering of merged stories."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

from aggregator.publish._common import (
    clean_text,
    feed_updated,
    ordered,
    rfc822,
    rfc3339,
    story_urn,
)
from aggregator.publish.html import item_content_html
from aggregator.publish.item import STORY_PAGE_TITLE, item_view
from aggregator.publish.meta import RSS_FILENAME, FeedMeta
from aggregator.types import Story

ATOM_NS = "http://www.w3.org/2005/Atom"
RSS_DOCS = "https://www.rssboard.org/rss-specification"
RSS_MEDIA_TYPE = "application/rss+xml"
_INDENT = "  "

# RSS has no namespace of its own; atom:link rel="self" and atom:updated are the customary
# extensions. The prefix registry is process-wide, and "atom" is the prefix everyone uses.
ET.register_namespace("atom", ATOM_NS)


def _text(parent: ET.Element, tag: str, text: str, **attrib: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrib)
    element.text = clean_text(text)
    return element


def _item(channel: ET.Element, story: Story, meta: FeedMeta) -> None:
    view = item_view(story, meta)
    item = ET.SubElement(channel, "item")
    # RSS titles are plain text here; the XML layer escapes "<" and "&".
    _text(item, "title", view.title)
    _text(item, "link", view.link)
    _text(item, "description", item_content_html(view))
    _text(item, "guid", story_urn(story), isPermaLink="false")
    _text(item, "pubDate", rfc822(story.first_published))
    # RSS has no "last updated" element; atom:updated (RFC 3339) is read by common feed readers.
    _text(item, f"{{{ATOM_NS}}}updated", rfc3339(story.updated))
    if view.article is not None:
        # RSS has one link per item, the representative article; the story's page, which
        # lists every source, goes in an atom:link rel="related" as in the Atom feed.
        page = {"rel": "related", "type": "text/html", "href": view.page_url}
        ET.SubElement(item, f"{{{ATOM_NS}}}link", {**page, "title": STORY_PAGE_TITLE})


def render_rss(stories: Sequence[Story], meta: FeedMeta) -> bytes:
    """An RSS 2.0 document (UTF-8 bytes) with one item per story, newest update first.

    Each item links to the representative article (else the story's page), gives the lead
    and the listed sources in its description,
    has a non-permalink guid ``urn:aggregator:story:<id>`` and an RFC 822 ``pubDate``.
    """
    rss = ET.Element("rss", {"version": "2.0"})
    channel = ET.SubElement(rss, "channel")
    _text(channel, "title", meta.title)
    _text(channel, "link", meta.home_url)
    _text(channel, "description", meta.description)
    self_link = {"rel": "self", "type": RSS_MEDIA_TYPE, "href": meta.self_url(RSS_FILENAME)}
    ET.SubElement(channel, f"{{{ATOM_NS}}}link", self_link)
    _text(channel, "lastBuildDate", rfc822(feed_updated(stories, meta.updated)))
    _text(channel, "generator", meta.generator_label)
    _text(channel, "docs", RSS_DOCS)
    for story in ordered(stories):
        _item(channel, story, meta)
    ET.indent(rss, space=_INDENT)
    document: bytes = ET.tostring(rss, encoding="utf-8", xml_declaration=True)
    return document
