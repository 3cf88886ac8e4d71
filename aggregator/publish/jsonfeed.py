"""JSON Feed 1.1 rendering of merged stories, with the ``_aggregator`` extension.

Every item carries::

    "_aggregator": {
        "about": "<where this extension is described>",
        "story_url": "<public_url>stories/<id>",
        "sources": [
            {"outlet": "...", "title": "...", "url": "https://..." | null,
             "published": "2024-05-01T12:00:00Z", "score": 0.87 | null},
            ...
        ],
        "source_count": 3,
        "more_sources": 0
    }

``sources`` are the story's distinct sources (one per article URL) in the story's order
(earliest first), at most ``MAX_SOURCES_PER_ITEM``; ``source_count`` counts the distinct
sources, ``more_sources`` those not listed (the story page at ``story_url`` lists them all).
``url`` is null when the outlet's link is not an http(s) URL; ``score`` is the matcher's score
for joining the source to the story. The item's ``summary`` is the story's lead (plain text).
The top-level ``_aggregator`` object names the generator. JSON Feed 1.1 lets publishers add such
objects when their names start with "_"; readers that do not know them ignore them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from aggregator.publish._common import (
    clean_text,
    ordered,
    rfc3339,
    story_urn,
)
from aggregator.publish.html import item_content_html
from aggregator.publish.item import item_view
from aggregator.publish.links import safe_url
from aggregator.publish.meta import JSON_FILENAME, FeedMeta
from aggregator.types import Story, StorySource

JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"
EXTENSION_KEY = "_aggregator"
# Scores are similarities in [0, 1]; four decimals is finer than any matcher threshold and keeps
# float noise from changing the bytes (and the ETag) between otherwise identical runs.
SCORE_DIGITS = 4
_INDENT = 2
# "<", ">" and "&" are written as \u escapes: the decoded strings are unchanged, yet the raw bytes
# hold no markup, so a consumer that pastes the JSON into an HTML page cannot be tricked.
_HTML_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def _score(value: float) -> float | None:
    return round(value, SCORE_DIGITS) if math.isfinite(value) else None


def _source(source: StorySource) -> dict[str, Any]:
    return {
        "outlet": clean_text(source.feed_name),
        "title": clean_text(source.title),
        "url": safe_url(source.url),
        "published": rfc3339(source.published),
        "score": _score(source.score),
    }


def _item(story: Story, meta: FeedMeta) -> dict[str, Any]:
    view = item_view(story, meta)
    item: dict[str, Any] = {"id": story_urn(story), "url": view.link, "title": view.title}
    if view.lead:
        item["summary"] = view.lead
    item["content_html"] = item_content_html(view)
    item["date_published"] = rfc3339(story.first_published)
    item["date_modified"] = rfc3339(story.updated)
    names = [view.author, *view.contributors] if view.author else list(view.contributors)
    if names:  # JSON Feed 1.1: an authors array, when present, holds at least one author
        item["authors"] = [{"name": name} for name in names]
    item[EXTENSION_KEY] = {
        "about": meta.extension_about,
        "story_url": view.page_url,
        "sources": [_source(source) for source in view.listed],
        "source_count": view.source_count,
        "more_sources": view.more,
    }
    return item


def render_json_feed(stories: Sequence[Story], meta: FeedMeta) -> bytes:
    """A JSON Feed 1.1 document (UTF-8 bytes) with one item per story, newest update first."""
    document: dict[str, Any] = {
        "version": JSON_FEED_VERSION,
        "title": clean_text(meta.title),
        "home_page_url": meta.home_url,
        "feed_url": meta.self_url(JSON_FILENAME),
        "description": clean_text(meta.description),
        "authors": [{"name": clean_text(meta.author)}],
        EXTENSION_KEY: {"about": meta.extension_about, "generator": meta.generator_label},
        "items": [_item(story, meta) for story in ordered(stories)],
    }
    # allow_nan=False: a NaN would make the document invalid JSON; _score already maps them away.
    text = json.dumps(document, ensure_ascii=False, indent=_INDENT, allow_nan=False)
    return (text.translate(_HTML_SAFE) + "\n").encode("utf-8")
