"""Why a source is in its story, in one plain sentence a reader can check.

The matcher records its evidence as numbers (``aggregator.match``); storage relabels the
evidence of entries moved by a merge or a split (``manual_merge``, ``manual_split``,
``story_merge``). This module turns one source's evidence into words, for the story page:

- the source that started the story: "First report: started this story." (the first of its
  sources stored here; a source published earlier may have joined it later);
- a join: "Same event: shares Erdogan, Putin, Ankara; 40 min after the first report;
  meaning .81.", the shared terms spelled as the source's headline spells them, the gap
  measured from the story's earliest report ("the earliest report" for that one itself);
- a correction: "Merged by hand from story 56dc2a…." or "Moved here by hand from story …".

Pure: evidence and times in, a sentence out. The full evidence stays on the page, folded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

# The matcher's rules for an entry that started a new story: nothing close enough was found.
STARTED_RULES = frozenset({"below_threshold", "no_candidate"})
# Terms a sentence names: three read as a reason, more as a list.
TERMS_SHOWN = 3
# Story ids are long hashes; this many characters identify one on a page (the CLI accepts
# id prefixes, so the short form is enough to act on).
SHORT_ID_CHARS = 8
# A meaning similarity is shown with two decimals, like the evidence table rounds it.
_MEANING_FORMAT = "{:.2f}"


def short_id(story_id: str) -> str:
    """The first ``SHORT_ID_CHARS`` characters of a story id."""
    return story_id[:SHORT_ID_CHARS]


def duration_words(delta: timedelta) -> str:
    """``40 min``, ``3 h 5 min``, ``2 days``: a gap between two reports in words."""
    minutes = int(abs(delta).total_seconds() // 60)
    if minutes < 1:
        return "under a minute"
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    return f"{hours // 24} days"


def spelled_as_in(term: str, text: str) -> str:
    """``term`` (a lower-case matching term) as ``text`` writes it, e.g. ``erdogan`` ->
    ``Erdogan``; the term itself when the text does not contain it as words."""
    pattern = r"\b" + r"\W+".join(re.escape(part) for part in term.split()) + r"\b"
    found = re.search(pattern, text, flags=re.IGNORECASE)
    return found.group(0) if found else term


def _terms(evidence: Mapping[str, Any]) -> list[str]:
    for key in ("shared_terms", "link_terms"):
        value = evidence.get(key)
        if isinstance(value, list | tuple) and value:
            return [str(term) for term in value]
    return []


def _gap_words(published: datetime, first_report: datetime | None) -> str | None:
    if first_report is None:
        return None
    delta = published - first_report
    if delta < timedelta(0):
        return "the earliest report"
    if delta < timedelta(minutes=1):
        return "at the same time as the first report"
    return f"{duration_words(delta)} after the first report"


def join_reason(
    evidence: Mapping[str, Any],
    *,
    title: str,
    published: datetime,
    first_report: datetime | None,
) -> str:
    """One sentence saying why a source (headline ``title``, published ``published``) is in
    its story; ``first_report`` is when the story's earliest report other than this one was
    published (None for the story's only source)."""
    rule = str(evidence.get("rule", ""))
    if rule == "manual_merge":
        return f"Merged by hand from story {short_id(str(evidence.get('merged_from', '')))}."
    if rule == "manual_split":
        return f"Moved here by hand from story {short_id(str(evidence.get('split_from', '')))}."
    if rule == "story_merge":
        matched = evidence.get("matched")
        inner = matched if isinstance(matched, Mapping) else {}
        before = join_reason(inner, title=title, published=published, first_report=first_report)
        origin = short_id(str(evidence.get("merged_from", "")))
        return f"Came with story {origin}, which the matcher folded into this one. {before}"
    if rule in STARTED_RULES or not rule:
        return "First report: started this story."
    if rule == "same_url":
        return "Same article address as a source already in the story."
    if rule == "same_wire_text":
        return "Same agency wire text as a source already in the story."
    return _similarity_sentence(evidence, title, published, first_report)


def _similarity_sentence(
    evidence: Mapping[str, Any], title: str, published: datetime, first_report: datetime | None
) -> str:
    parts: list[str] = []
    terms = [spelled_as_in(term, title) for term in _terms(evidence)[:TERMS_SHOWN]]
    if terms:
        parts.append("shares " + ", ".join(terms))
    gap = _gap_words(published, first_report)
    if gap:
        parts.append(gap)
    meaning = evidence.get("meaning")
    if isinstance(meaning, int | float) and not isinstance(meaning, bool):
        parts.append("meaning " + _MEANING_FORMAT.format(meaning).lstrip("0"))
    kind = "Same event" if evidence.get("same_event") else "Same story"
    return f"{kind}: {'; '.join(parts)}." if parts else f"{kind}."


def first_report_time(times: Sequence[datetime], own: datetime) -> datetime | None:
    """The earliest of ``times`` other than one occurrence of ``own`` (None when alone)."""
    others = list(times)
    if own in others:
        others.remove(own)
    return min(others) if others else None
