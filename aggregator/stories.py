"""Pure rules that turn a story's sources into the story readers see.

Representative headline rule (documented, deterministic, so it never flip-flops between polls):
the source whose feed has the highest ``priority`` in feeds.yml wins; among equals, the earliest
reported; among those, the smallest (feed URL, entry id). A new source changes the headline only
when it outranks the current one under this rule.

"Reported" is the later of the date an entry claims and when we first saw it: a feed can claim
any date, so an entry backdated by a day and seen only now reports now, and cannot take the
headline (and the story's link) from the outlets that reported the story first (issue #19).

Sources a reader sees (``distinct_sources``): one per canonical article URL. The same article
carried by two feeds (an agency's own feed and a syndicating portal) is one source, the one the
headline rule prefers. Outlets (``outlet_names``) are the distinct feed names among them.

Lead (``story_lead``): the representative source's summary, else the next source's by the
same rule, as plain text of at most ``LEAD_SENTENCES`` sentences and ``LEAD_MAX_CHARS``
characters, cut on a word boundary. A summary that only repeats the headline is no lead.

Front-page order (``story_rank``): a story's rank is the hour of its first report plus
``HOURS_PER_OUTLET_DOUBLING`` for every doubling of its outlets, so fresh events come first and a
widely reported one stays above newer single-outlet items for a while. The rank depends only
on the story, never on the clock, so pages and their order are stable between requests.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from datetime import datetime

from aggregator.normalise import truncate
from aggregator.types import Story, StorySource

# A news lead is one to three sentences; three keeps a short first paragraph whole.
LEAD_SENTENCES = 3
# About two lines on a desktop and five on a 390 px phone: enough to say what happened.
LEAD_MAX_CHARS = 320
# A lead cut shorter than this (a first "sentence" like "U.S." or "Jan.") reads as a fragment,
# so sentence cuts before it are not taken.
LEAD_MIN_SENTENCE_CHARS = 60
# Six hours per doubling: a story two outlets carry ranks level with a one-outlet story six
# hours younger, eight outlets with one eighteen hours younger, so a major event stays near
# the top for most of a news day and yesterday's still sinks below this morning's.
HOURS_PER_OUTLET_DOUBLING = 6.0
_SECONDS_PER_HOUR = 3600.0
_SENTENCE_END = re.compile(r"(?<=[.!?\u2026])[\"'\u201d\u2019)]*\s+")
_SPACE = re.compile(r"\s+")


def reported(source: StorySource) -> datetime:
    """When the source reported the story: its claimed date, unless we saw it only later."""
    if source.first_seen is None:
        return source.published
    return max(source.published, source.first_seen)


def representative_key(source: StorySource) -> tuple[int, datetime, str, str]:
    """Sort key: the smallest key is the representative source."""
    return (-source.priority, reported(source), source.feed_url, source.entry_id)


def build_story(
    story_id: str, sources: Iterable[StorySource], updated: datetime, more_sources: int = 0
) -> Story:
    """Assemble a Story from its sources; sources are listed earliest first.

    ``more_sources``: how many stored sources were left out (see ``Story.more_sources``)."""
    ordered = tuple(sorted(sources, key=lambda s: (s.published, s.feed_url, s.entry_id)))
    if not ordered:
        raise ValueError(f"story {story_id} has no sources")
    headline = min(ordered, key=representative_key)
    return Story(
        id=story_id,
        title=headline.title,
        first_published=ordered[0].published,
        updated=max(updated, ordered[-1].published),
        sources=ordered,
        more_sources=more_sources,
    )


def distinct_sources(sources: Sequence[StorySource]) -> list[StorySource]:
    """``sources`` without repeats of one article: per canonical URL, the source the headline
    rule prefers; sources without a URL are all kept. The input order is kept."""
    chosen: dict[str, StorySource] = {}
    for source in sources:
        if source.url:
            best = chosen.get(source.url)
            if best is None or representative_key(source) < representative_key(best):
                chosen[source.url] = source
    return [s for s in sources if not s.url or chosen[s.url] is s]


def outlet_names(sources: Sequence[StorySource]) -> list[str]:
    """The distinct outlets (feed names) among ``sources``, in order."""
    return list(dict.fromkeys(source.feed_name for source in sources))


def _comparable(text: str) -> str:
    return "".join(ch for ch in text.casefold() if ch.isalnum())


def cut_text(text: str, limit: int, sentences: int = LEAD_SENTENCES) -> str:
    """``text`` with spaces collapsed, cut to whole sentences when they fit in ``limit``
    characters, else on a word boundary with an ellipsis (``normalise.truncate``)."""
    text = _SPACE.sub(" ", text).strip()
    ends = [m.start() for m in _SENTENCE_END.finditer(text)]
    if len(text) <= limit and len(ends) < sentences:
        return text
    fitting = [end for end in ends[:sentences] if LEAD_MIN_SENTENCE_CHARS <= end <= limit]
    if fitting:
        return text[: fitting[-1]]
    return truncate(text, limit)


def source_lead(source: StorySource, limit: int = LEAD_MAX_CHARS) -> str:
    """The source's summary as a lead, or "" when it has none beyond its headline."""
    summary = _SPACE.sub(" ", source.summary).strip()
    if not summary or _comparable(summary) == _comparable(source.title):
        return ""
    return cut_text(summary, limit)


def story_lead(story: Story, limit: int = LEAD_MAX_CHARS) -> str:
    """The story's lead: the first source's by the headline rule that has one, else ""."""
    for source in sorted(story.sources, key=representative_key):
        lead = source_lead(source, limit)
        if lead:
            return lead
    return ""


def story_rank(first_reported: datetime, outlets: int) -> float:
    """The front-page rank (higher first); see the module docstring."""
    hours = first_reported.timestamp() / _SECONDS_PER_HOUR
    return hours + HOURS_PER_OUTLET_DOUBLING * math.log2(max(outlets, 1))


def rank_time(source: StorySource) -> datetime:
    """The time a source counts from in the rank: its claimed date, unless that is later
    than when we first saw it (a future date cannot lift a story above the others)."""
    if source.first_seen is None:
        return source.published
    return min(source.published, source.first_seen)


def rank_of(story: Story) -> float:
    """``story_rank`` of a whole story, as storage computes it from its stored sources."""
    first = min(rank_time(source) for source in story.sources)
    return story_rank(first, len({source.feed_url for source in story.sources}))
