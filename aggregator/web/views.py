"""What the front page and a story page show: small view models built from stories, pure.

Marks are stateless, so every reader and every cache sees the same page:

- *new*: the story's first report was published within ``FRESH_WINDOW`` of now;
- *updated*: not new, and an outlet joined it within ``FRESH_WINDOW``, at least
  ``UPDATE_GRACE`` after the story was first seen here. The sources stored by one poll are
  first seen together, so a first poll never marks anything updated, however old the story.

Sources are listed once per article (``aggregator.stories.distinct_sources``); a feed that
carried an article another feed also carried is named beside it ("also in ...").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aggregator.publish.links import safe_url
from aggregator.stories import (
    distinct_sources,
    outlet_names,
    source_lead,
    story_lead,
)
from aggregator.types import Story, StorySource
from aggregator.web.explain import STARTED_RULES, first_report_time, join_reason

# An hour: long enough that a reader checking in hourly sees what arrived since, short enough
# that the marks still mean "just happened" on a busy news day.
FRESH_WINDOW = timedelta(hours=1)
# Sources stored by one refresh cycle are first seen within seconds to a minute of each other
# (feeds are polled in parallel); a source first seen later than this joined afterwards.
UPDATE_GRACE = timedelta(minutes=2)
# The front page names this many outlets per story, then "+N more": three fit one line on a
# 390 px phone.
OUTLETS_SHOWN = 3


def _first_seen(story: Story) -> list[datetime]:
    return [s.first_seen for s in story.sources if s.first_seen is not None]


def freshness(story: Story, now: datetime) -> str | None:
    """``"new"``, ``"updated"`` or None, by the rule in the module docstring."""
    since = now - FRESH_WINDOW
    if story.first_published >= since:
        return "new"
    seen = _first_seen(story)
    if not seen:
        return None
    latest = max(seen)
    if latest >= since and latest - min(seen) > UPDATE_GRACE:
        return "updated"
    return None


def last_joined(story: Story) -> datetime | None:
    """When the latest source was first seen (None when no source says)."""
    seen = _first_seen(story)
    return max(seen) if seen else None


@dataclass(frozen=True, slots=True)
class StoryCard:
    """One story on the front page."""

    story: Story
    mark: str | None
    lead: str
    outlets: list[str]
    outlet_count: int

    @property
    def more_outlets(self) -> int:
        """The outlets past the ``OUTLETS_SHOWN`` named ones ("+N more")."""
        return self.outlet_count - len(self.outlets)


def story_card(story: Story, now: datetime) -> StoryCard:
    names = outlet_names(distinct_sources(story.sources))
    return StoryCard(
        story=story,
        mark=freshness(story, now),
        lead=story_lead(story),
        outlets=names[:OUTLETS_SHOWN],
        outlet_count=len(names),
    )


@dataclass(frozen=True, slots=True)
class EvidenceRow:
    name: str
    value: str


def evidence_rows(evidence: Mapping[str, Any]) -> list[EvidenceRow]:
    """The matcher's evidence as name/value rows; numbers rounded, lists joined, sorted by name.

    ``rule``, ``score``, ``meaning`` and ``shared_terms`` come first: they explain the most.
    """
    first = ("rule", "score", "meaning", "shared_terms")
    names = [n for n in first if n in evidence] + sorted(k for k in evidence if k not in first)
    return [EvidenceRow(str(name), _value(evidence[name])) for name in names]


def _value(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, list | tuple):
        return ", ".join(_value(v) for v in value) or "none"
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {_value(v)}" for k, v in value.items())
    return str(value)


@dataclass(frozen=True, slots=True)
class SourceView:
    source: StorySource
    link: str | None
    lead: str
    reason: str
    started: bool
    also_in: list[str]
    evidence: list[EvidenceRow]


def source_views(story: Story) -> list[SourceView]:
    """Each distinct source of a story: link (http(s) only), lead, why it joined in words,
    the other feeds that carried the same article, and the evidence of its match."""
    sources = distinct_sources(story.sources)
    times = [s.published for s in sources]
    carried: dict[str, list[str]] = {}
    kept = {id(s) for s in sources}
    for source in story.sources:
        if source.url and id(source) not in kept:
            carried.setdefault(source.url, []).append(source.feed_name)
    views = []
    for source in sources:
        rule = str(source.evidence.get("rule", ""))
        reason = join_reason(
            source.evidence,
            title=source.title,
            published=source.published,
            first_report=first_report_time(times, source.published),
        )
        also = [n for n in carried.get(source.url or "", []) if n != source.feed_name]
        views.append(
            SourceView(
                source=source,
                link=safe_url(source.url),
                lead=source_lead(source),
                reason=reason,
                started=rule in STARTED_RULES or not rule,
                also_in=list(dict.fromkeys(also)),
                evidence=evidence_rows(source.evidence),
            )
        )
    return views
