"""The pure rules behind what a reader sees: leads, distinct sources, rank, marks, reasons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from aggregator.normalise import ELLIPSIS
from aggregator.stories import (
    HOURS_PER_OUTLET_DOUBLING,
    LEAD_MAX_CHARS,
    build_story,
    cut_text,
    distinct_sources,
    outlet_names,
    rank_of,
    source_lead,
    story_lead,
    story_rank,
)
from aggregator.types import StorySource
from aggregator.web.explain import duration_words, join_reason, spelled_as_in
from aggregator.web.views import FRESH_WINDOW, UPDATE_GRACE, freshness, story_card

NOW = datetime(2017, 9, 28, 20, 0, tzinfo=UTC)
ANKARA = (
    "Russian President Vladimir Putin and Turkish President Recep Tayyip Erdogan met in Ankara "
    "on Thursday. They discussed Syria. The two leaders agreed to push for de-escalation zones "
    "in Idlib. More talks are expected next month in Sochi, officials said."
)


def source(
    feed: str,
    title: str = "Putin, Erdogan meet in Ankara",
    *,
    url: str | None = None,
    published: datetime = NOW,
    seen: datetime | None = None,
    summary: str = "",
    priority: int = 0,
    evidence: dict[str, Any] | None = None,
) -> StorySource:
    return StorySource(
        feed_url=f"https://{feed.lower()}.example/feed",
        feed_name=feed,
        entry_id=f"{feed}-{title}",
        title=title,
        url=url,
        published=published,
        score=0.8,
        evidence=evidence or {"rule": "score"},
        priority=priority,
        first_seen=seen or published,
        summary=summary,
    )


# -- leads ------------------------------------------------------------------------------------


def test_a_lead_keeps_whole_sentences_within_the_limit() -> None:
    lead = cut_text(ANKARA, LEAD_MAX_CHARS)
    assert lead.endswith("de-escalation zones in Idlib.")
    assert "Sochi" not in lead


def test_a_lead_without_sentence_ends_is_cut_on_a_word_boundary() -> None:
    text = "word " * 200
    lead = cut_text(text, 50)
    assert lead.endswith(ELLIPSIS) and len(lead) <= 50
    assert lead[:-1].split(" ") == ["word"] * len(lead[:-1].split(" "))


def test_a_short_first_sentence_is_not_a_lead_on_its_own() -> None:
    text = "U.S. stocks fell on Monday as investors weighed " + "rates and growth " * 30
    lead = cut_text(text, 120)
    assert lead.startswith("U.S. stocks fell") and lead.endswith(ELLIPSIS)


def test_a_summary_repeating_the_headline_is_no_lead() -> None:
    assert source_lead(source("AFP", "Putin meets Erdogan", summary="Putin meets Erdogan!")) == ""
    assert source_lead(source("AFP", summary="  Spaced\n\n out.  ")) == "Spaced out."


def test_the_story_lead_follows_the_headline_rule() -> None:
    story = build_story(
        "s",
        [
            source("TASS", published=NOW - timedelta(hours=1)),
            source("Reuters", summary=ANKARA, priority=5),
            source("AP", summary="Another lead entirely.", published=NOW - timedelta(hours=2)),
        ],
        NOW,
    )
    assert story_lead(story).startswith("Russian President")
    quiet = build_story("q", [source("TASS"), source("AP", published=NOW + timedelta(1))], NOW)
    assert story_lead(quiet) == ""


# -- distinct sources ---------------------------------------------------------------------------


def test_one_article_from_two_feeds_is_one_source_the_preferred_one() -> None:
    article = "https://apnews.example/ankara"
    portal = source("Portal", url=article, published=NOW - timedelta(minutes=5))
    agency = source("AP", url=article, priority=3)
    other = source("TASS", url="https://tass.example/1")
    no_url = [source("Radio"), source("Radio2")]
    kept = distinct_sources([portal, agency, other, *no_url])
    assert kept == [agency, other, *no_url]
    assert outlet_names(kept) == ["AP", "TASS", "Radio", "Radio2"]
    assert outlet_names([other, other]) == ["TASS"]


# -- rank ---------------------------------------------------------------------------------------


def test_rank_trades_outlets_for_hours() -> None:
    base = story_rank(NOW, 1)
    assert story_rank(NOW, 2) - base == pytest.approx(HOURS_PER_OUTLET_DOUBLING)
    four_older = story_rank(NOW - timedelta(hours=2 * HOURS_PER_OUTLET_DOUBLING), 4)
    assert four_older == pytest.approx(base)
    assert story_rank(NOW, 0) == base


def test_rank_of_a_story_ignores_claimed_future_dates() -> None:
    future = source("Spam", published=NOW + timedelta(days=3), seen=NOW)
    honest = source("AFP", published=NOW - timedelta(hours=1))
    story = build_story("s", [future, honest], NOW)
    assert rank_of(story) == pytest.approx(story_rank(NOW - timedelta(hours=1), 2))
    alone = build_story("f", [future], NOW)
    assert rank_of(alone) == pytest.approx(story_rank(NOW, 1))


# -- marks --------------------------------------------------------------------------------------


def test_marks() -> None:
    old = NOW - timedelta(hours=11)
    first_poll = [source("AFP", published=old, seen=NOW), source("AP", published=old, seen=NOW)]
    assert freshness(build_story("a", first_poll, NOW), NOW) is None
    fresh = [source("AFP", published=NOW - FRESH_WINDOW / 2)]
    assert freshness(build_story("b", fresh, NOW), NOW) == "new"
    joined = [
        source("AFP", published=old, seen=old),
        source("AP", published=old, seen=NOW - timedelta(minutes=10)),
    ]
    assert freshness(build_story("c", joined, NOW), NOW) == "updated"
    same_cycle = [
        source("AFP", published=old, seen=NOW - timedelta(minutes=10)),
        source("AP", published=old, seen=NOW - timedelta(minutes=10) + UPDATE_GRACE / 2),
    ]
    assert freshness(build_story("d", same_cycle, NOW), NOW) is None
    later = NOW + 2 * FRESH_WINDOW
    assert freshness(build_story("e", joined, NOW), later) is None


def test_a_card_names_three_outlets_then_counts_the_rest() -> None:
    names = ["AFP", "Reuters", "TASS", "AP", "RFE/RL"]
    story = build_story("s", [source(n, url=f"https://{n}.example/1") for n in names], NOW)
    card = story_card(story, NOW)
    # Sources at one time are listed by feed URL.
    assert card.outlets == ["AFP", "AP", "Reuters"]
    assert card.more_outlets == 2 and card.outlet_count == 5


# -- reasons ------------------------------------------------------------------------------------


def test_a_join_is_explained_in_one_sentence() -> None:
    evidence = {
        "rule": "score",
        "shared_terms": ["erdogan", "putin", "ankara", "syria"],
        "meaning": 0.8123,
        "same_event": True,
    }
    title = "Erdogan hosts Putin in Ankara for Syria talks"
    reason = join_reason(
        evidence, title=title, published=NOW, first_report=NOW - timedelta(minutes=40)
    )
    assert reason == (
        "Same event: shares Erdogan, Putin, Ankara; 40 min after the first report; meaning .81."
    )


@pytest.mark.parametrize(
    ("evidence", "sentence"),
    [
        (
            {"rule": "below_threshold", "score": 0.072, "candidate": "56dc"},
            "First report: started this story.",
        ),
        ({"rule": "no_candidate"}, "First report: started this story."),
        ({"rule": "same_url"}, "Same article address as a source already in the story."),
        ({"rule": "same_wire_text"}, "Same agency wire text as a source already in the story."),
        (
            {"rule": "manual_merge", "merged_from": "0123456789abcdef"},
            "Merged by hand from story 01234567.",
        ),
        (
            {"rule": "manual_split", "split_from": "fedcba9876543210"},
            "Moved here by hand from story fedcba98.",
        ),
        (
            {
                "rule": "story_merge",
                "merged_from": "abc",
                "matched": {"rule": "average_link", "link_terms": ["idlib"]},
            },
            "Came with story abc, which the matcher folded into this one. "
            "Same story: shares idlib; at the same time as the first report.",
        ),
    ],
)
def test_every_rule_reads_as_a_sentence(evidence: dict[str, Any], sentence: str) -> None:
    assert join_reason(evidence, title="Talks", published=NOW, first_report=NOW) == sentence


def test_words_for_gaps_and_terms() -> None:
    assert duration_words(timedelta(seconds=20)) == "under a minute"
    assert duration_words(timedelta(minutes=185)) == "3 h 5 min"
    assert duration_words(timedelta(hours=2)) == "2 h"
    assert duration_words(-timedelta(days=3)) == "3 days"
    assert spelled_as_in("idlib zone", "Talks on the Idlib  zone") == "Idlib  zone"
    assert spelled_as_in("art", "A party starts") == "art"


def test_the_earliest_report_says_so() -> None:
    reason = join_reason(
        {"rule": "score", "shared_terms": ["ankara"]},
        title="Talks in Ankara",
        published=NOW - timedelta(hours=1),
        first_report=NOW,
    )
    assert reason == "Same story: shares Ankara; the earliest report."


def test_times_in_words_become_dates_past_a_week() -> None:
    from aggregator.web.pages import RELATIVE_DAYS, relative

    assert relative(NOW - timedelta(days=RELATIVE_DAYS - 1), NOW) == "6 days ago"
    assert relative(NOW - timedelta(days=3356), NOW) == "21 Jul 2008"
    assert relative(NOW + timedelta(minutes=30), NOW) == "in 30 min"
