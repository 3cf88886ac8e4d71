"""The "sources" HTML fragment: every outlet's headline, linked to its article, with its time.

Feeds carry it as item content and a web page can embed it as is. Every piece of text is
escaped with ``html.escape`` and only http(s) URLs become links, so the fragment is safe to
insert into a page whatever the feeds contained.
"""

from __future__ import annotations

from html import escape

from aggregator.publish._common import clean_text, rfc3339
from aggregator.publish.links import safe_url
from aggregator.types import Story, StorySource

SOURCES_CLASS = "aggregator-sources"


def _time(source: StorySource) -> str:
    stamp = rfc3339(source.published)
    # The visible text is the same instant in a compact, locale-free form: "2024-05-01 12:00 UTC".
    label = stamp[:10] + " " + stamp[11:16] + " UTC"
    return f'<time datetime="{escape(stamp)}">{escape(label)}</time>'


def source_html(source: StorySource) -> str:
    """One ``<li>``: outlet name, headline (linked when its URL is http(s)), publication time."""
    outlet = escape(clean_text(source.feed_name))
    headline = escape(clean_text(source.title))
    url = safe_url(source.url)
    if url:
        headline = f'<a href="{escape(url, quote=True)}">{headline}</a>'
    return f"<li><cite>{outlet}</cite>: {headline} {_time(source)}</li>"


def sources_html(story: Story) -> str:
    """The story's sources as a ``<ul>`` fragment of safe HTML, in the story's source order."""
    items = "".join(source_html(source) for source in story.sources)
    return f'<ul class="{SOURCES_CLASS}">{items}</ul>'


def item_content_html(story: Story) -> str:
    """An item's whole HTML body: how many outlets reported it, then the sources list."""
    count = len(story.sources)
    noun = "outlet" if count == 1 else "outlets"
    return f"<p>Reported by {count} {noun}:</p>{sources_html(story)}"
