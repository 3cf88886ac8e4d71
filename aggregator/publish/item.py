"""What one published item says about its story, decided once for every format.

A reader sees the story's lead, then its sources: one per article (``distinct_sources``), at
most ``MAX_SOURCES_PER_ITEM`` of them, then "+M more sources" linking to the story's page. The
outlets are counted once each (``outlet_names``); the representative outlet is the item's
author and the other listed outlets its contributors. Pure: records in, a record out.
"""

from __future__ import annotations

from dataclasses import dataclass

from aggregator.publish._common import clean_text, primary_url, representative
from aggregator.publish.meta import FeedMeta
from aggregator.stories import distinct_sources, outlet_names, representative_key, story_lead
from aggregator.types import Story, StorySource

# A hostile feed once made one story of 190,000 sources, and the published files grew to
# 107 MB. Twenty sources is more outlets than any real event has in one feed list, and keeps
# an item to a few kilobytes; the rest are counted and found on the story's page.
MAX_SOURCES_PER_ITEM = 20
# The title of the link from an item to its story's page, beside the sources' own links.
STORY_PAGE_TITLE = "Every source of this story"


@dataclass(frozen=True, slots=True)
class ItemView:
    """One story as an item: plain text (still to be escaped by each format) and http(s) URLs.

    ``listed``: the sources shown, in the story's order (earliest first), chosen by the
    headline rule when there are more than ``MAX_SOURCES_PER_ITEM``. ``source_count``: the
    distinct sources, plus the stored ones not loaded (``Story.more_sources``). ``more``:
    sources not listed, the story's unloaded ones included.
    ``link``: the representative article, else the story's page. ``article``: the
    representative article, None when no source has an http(s) link.
    """

    story: Story
    title: str
    lead: str
    listed: tuple[StorySource, ...]
    source_count: int
    more: int
    outlet_count: int
    author: str
    contributors: tuple[str, ...]
    link: str
    article: str | None
    page_url: str

    @property
    def single(self) -> bool:
        """One source and nothing more: its line need not repeat the item's headline."""
        return self.source_count == 1 and self.more == 0


def _listed(distinct: list[StorySource]) -> tuple[StorySource, ...]:
    if len(distinct) <= MAX_SOURCES_PER_ITEM:
        return tuple(distinct)
    # The outlets the headline rule prefers (feed priority, then who reported first), so a
    # flood of entries from one feed cannot push the others out; shown in the story's order.
    kept = {id(s) for s in sorted(distinct, key=representative_key)[:MAX_SOURCES_PER_ITEM]}
    return tuple(s for s in distinct if id(s) in kept)


def item_view(story: Story, meta: FeedMeta) -> ItemView:
    """What the item for ``story`` shows, whatever the format."""
    distinct = distinct_sources(story.sources)
    listed = _listed(distinct)
    head = representative(story)
    author = clean_text(head.feed_name) if head is not None else ""
    listed_outlets = dict.fromkeys(clean_text(name) for name in outlet_names(listed))
    contributors = tuple(name for name in listed_outlets if name and name != author)
    article = primary_url(story)
    page_url = meta.story_url(story.id)
    return ItemView(
        story=story,
        title=clean_text(story.title),
        lead=clean_text(story_lead(story)),
        listed=listed,
        source_count=len(distinct) + story.more_sources,
        more=len(distinct) - len(listed) + story.more_sources,
        outlet_count=len(outlet_names(distinct)),
        author=author,
        contributors=contributors,
        link=article or page_url,
        article=article,
        page_url=page_url,
    )
