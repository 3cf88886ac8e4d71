"""The HTML body of a feed item: the lead, the listed sources, a link to the rest.

Each listed source is its outlet, its headline linked to its article, and its time
(``item_content_html``). Every piece of text is escaped with ``html.escape`` and only http(s)
URLs become links, so the body is safe in any reader whatever the feeds contained.
"""

from __future__ import annotations

from html import escape

from aggregator.publish._common import clean_text, rfc3339
from aggregator.publish.item import ItemView
from aggregator.publish.links import safe_url
from aggregator.types import StorySource

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


def _outlets(view: ItemView) -> str:
    noun = "outlet" if view.outlet_count == 1 else "outlets"
    # Sources left unloaded may come from further outlets: the count is then a floor.
    floor = "at least " if view.story.more_sources else ""
    return f"{floor}{view.outlet_count} {noun}"


def _single_source_html(source: StorySource) -> str:
    """The line of a one-source item: outlet (linked to its article) and time; the headline
    is the item's title already."""
    outlet = f"<cite>{escape(clean_text(source.feed_name))}</cite>"
    url = safe_url(source.url)
    if url:
        outlet = f'<a href="{escape(url, quote=True)}">{outlet}</a>'
    return f"<p>Reported by {outlet} {_time(source)}</p>"


def item_content_html(view: ItemView) -> str:
    """An item's whole HTML body: the lead, who reported the story and the listed sources,
    then "+M more sources" linking to the story's page when some are not listed."""
    parts = [f"<p>{escape(view.lead)}</p>"] if view.lead else []
    if view.single:
        parts.append(_single_source_html(view.listed[0]))
    else:
        items = "".join(source_html(source) for source in view.listed)
        parts.append(f"<p>Reported by {_outlets(view)}:</p>")
        parts.append(f'<ul class="{SOURCES_CLASS}">{items}</ul>')
    if view.more:
        noun = "source" if view.more == 1 else "sources"
        link = escape(view.page_url, quote=True)
        parts.append(f'<p><a href="{link}">+{view.more} more {noun}</a></p>')
    return "".join(parts)
