"""What a loaded story carries: its sources' summaries, and at most ``MAX_SOURCES_LOADED``
sources with the rest counted; run against SQLite and PostgreSQL (``test_storage``'s fixtures)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import test_storage
from test_storage import FEED_A, FEED_B, FEED_C, T0, entry, new, ok_state, setup_feeds

from aggregator.storage import SqlStorage, listing
from aggregator.types import FeedRefresh

# The storage contract's fixtures: every test here runs on SQLite and on PostgreSQL.
db_url = test_storage.db_url
store = test_storage.store


def test_sources_carry_the_entry_summary(store: SqlStorage) -> None:
    setup_feeds(store)
    store.store_refresh(FeedRefresh(FEED_A, ok_state(), (new(entry(FEED_A, "a1", "Quake"), "s1"),)))
    story = store.get_story("s1")
    assert story is not None
    assert [s.summary for s in story.sources] == ["summary of Quake"]
    (listed,) = store.recent_stories(10)
    assert listed.sources[0].summary == "summary of Quake"


# A bound small enough to keep the test fast; the story exceeds it by EXTRA sources.
SMALL_BOUND = 6
EXTRA = 5


def test_a_story_loads_its_earliest_sources_and_counts_the_rest(
    store: SqlStorage, monkeypatch: Any
) -> None:
    monkeypatch.setattr(listing, "MAX_SOURCES_LOADED", SMALL_BOUND)
    setup_feeds(store)
    feeds = (FEED_C, FEED_B, FEED_A)
    # Several sources share a published time, so the (feed URL, entry id) tie-break counts.
    made = [
        entry(feeds[n % 3], f"e{n:02}", published=T0 + timedelta(minutes=(n * 7) % 5))
        for n in range(SMALL_BOUND + EXTRA)
    ]
    for feed in feeds:
        mine = [e for e in made if e.feed_url == feed]
        first = feed == feeds[0]
        items = tuple(new(e, "big", fresh=first and e is mine[0]) for e in mine)
        store.store_refresh(FeedRefresh(feed, ok_state(), items))
    store.store_refresh(FeedRefresh(FEED_A, ok_state(), (new(entry(FEED_A, "x"), "small"),)))

    earliest = sorted(made, key=lambda e: (e.published, e.feed_url, e.entry_id))[:SMALL_BOUND]
    big = store.get_story("big")
    assert big is not None
    assert [s.entry_id for s in big.sources] == [e.entry_id for e in earliest]
    assert big.more_sources == EXTRA
    listed = {s.id: s for s in store.recent_stories(10)}
    assert listed["big"] == big
    assert (len(listed["small"].sources), listed["small"].more_sources) == (1, 0)


def _evidence(store: SqlStorage, story_id: str) -> dict[str, tuple[float, dict[str, Any]]]:
    story = store.get_story(story_id)
    assert story is not None
    return {s.entry_id: (s.score, dict(s.evidence)) for s in story.sources}


def test_a_manual_split_says_so_in_the_moved_entry(store: SqlStorage) -> None:
    setup_feeds(store)
    store.store_refresh(FeedRefresh(FEED_A, ok_state(), (new(entry(FEED_A, "a1"), "one"),)))
    joined = new(entry(FEED_B, "b1"), "one", fresh=False, score=0.75)
    store.store_refresh(FeedRefresh(FEED_B, ok_state(), (joined,)))
    store.record_split(FEED_B, "b1", "alone", T0 + timedelta(hours=1))
    assert _evidence(store, "alone") == {
        "b1": (0.75, {"rule": "manual_split", "split_from": "one", "matched": {"why": "one"}})
    }
    assert _evidence(store, "one") == {"a1": (1.0, {"why": "one"})}  # the stayer is untouched


def test_a_manual_merge_and_a_matcher_merge_say_so_in_the_moved_entries(
    store: SqlStorage,
) -> None:
    setup_feeds(store)
    store.store_refresh(FeedRefresh(FEED_A, ok_state(), (new(entry(FEED_A, "a1"), "one"),)))
    two = (new(entry(FEED_B, "b1"), "two", score=0.5), new(entry(FEED_B, "b2"), "two", fresh=False))
    store.store_refresh(FeedRefresh(FEED_B, ok_state(), two))
    store.record_merge("one", "two", T0 + timedelta(hours=1))
    by_hand = {"rule": "manual_merge", "merged_from": "two", "matched": {"why": "two"}}
    assert _evidence(store, "one") == {
        "a1": (1.0, {"why": "one"}),
        "b1": (0.5, by_hand),
        "b2": (1.0, by_hand),
    }

    # The matcher merges a new story into "one" during a refresh; the earlier merge's evidence
    # is kept inside the new one's "matched" when an entry moves twice.
    three = FeedRefresh(
        FEED_C,
        ok_state(),
        (new(entry(FEED_C, "c1"), "three", score=0.25),),
        story_merges=(("one", "three"),),
    )
    store.store_refresh(three)
    matcher = {"rule": "story_merge", "merged_from": "three", "matched": {"why": "three"}}
    assert _evidence(store, "one")["c1"] == (0.25, matcher)
    store.record_split(FEED_C, "c1", "out", T0 + timedelta(hours=2))
    store.record_merge("out", "one", T0 + timedelta(hours=3))
    twice = {"rule": "manual_merge", "merged_from": "one", "matched": by_hand}
    assert _evidence(store, "out")["b1"] == (0.5, twice)
