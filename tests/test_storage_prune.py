"""``Storage.prune``: the retention and per-feed bounds, and what follows from removing entries
(links, search, ranks, empty stories, corrections, the feed's horizon); on SQLite and PostgreSQL
(``test_storage``'s fixtures)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
import test_storage
from sqlalchemy import func, select, text
from test_storage import FEED_A, FEED_B, FEED_C, T0, count, entry, new, ok_state, setup_feeds

from aggregator.storage import PruneResult, SqlStorage, prune
from aggregator.storage.schema import entries, stories, story_entries
from aggregator.stories import rank_of
from aggregator.types import Entry, FeedRefresh

db_url = test_storage.db_url
store = test_storage.store

MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)
RETENTION = timedelta(days=90)
NOW = T0 + timedelta(hours=1)


def stored_ids(store: SqlStorage, feed_url: str) -> list[str]:
    with store.engine.connect() as conn:
        stmt = select(entries.c.entry_id).where(entries.c.feed_url == feed_url)
        return sorted(str(e) for e in conn.execute(stmt).scalars())


def stored_stories(store: SqlStorage) -> set[str]:
    with store.engine.connect() as conn:
        return {str(sid) for sid in conn.execute(select(stories.c.id)).scalars()}


def own_stories(store: SqlStorage, made: list[Entry]) -> None:
    """Store each entry in a story of its own, named after the entry."""
    for e in made:
        store.store_refresh(FeedRefresh(e.feed_url, ok_state(), (new(e, f"s-{e.entry_id}"),)))


def prune_now(store: SqlStorage, *, max_entries: int = 5000, now: Any = NOW) -> PruneResult:
    return store.prune(now, retention=RETENTION, max_entries_per_feed=max_entries)


def test_a_feed_keeps_its_newest_entries_and_others_are_untouched(store: SqlStorage) -> None:
    setup_feeds(store)
    flood = [entry(FEED_A, f"a{i:02}", published=T0 + i * MINUTE) for i in range(10)]
    others = [entry(FEED_B, f"b{i}", published=T0 - DAY + i * MINUTE) for i in range(3)]
    own_stories(store, flood + others)

    assert prune_now(store, max_entries=4) == PruneResult(entries=6, stories=6)
    assert stored_ids(store, FEED_A) == ["a06", "a07", "a08", "a09"]
    assert stored_ids(store, FEED_B) == ["b0", "b1", "b2"]
    assert stored_stories(store) == {f"s-{e.entry_id}" for e in flood[6:] + others}
    feed_a, feed_b = store.get_feed(FEED_A), store.get_feed(FEED_B)
    assert feed_a is not None and feed_b is not None
    # The horizon: the newest publication time among the entries removed.
    assert feed_a.retained_since == flood[5].published
    assert feed_b.retained_since is None


def test_newest_is_by_published_then_first_seen_then_entry_id(store: SqlStorage) -> None:
    setup_feeds(store)
    seen_late = replace(entry(FEED_A, "a-seen-late"), first_seen=T0 + MINUTE)
    made = [entry(FEED_A, "late", published=T0 + MINUTE), seen_late]
    made += [entry(FEED_A, "y-same"), entry(FEED_A, "x-same")]
    own_stories(store, made)
    assert prune_now(store, max_entries=3).entries == 1
    assert stored_ids(store, FEED_A) == ["a-seen-late", "late", "y-same"]


def test_entries_first_seen_before_the_retention_go(store: SqlStorage) -> None:
    setup_feeds(store)
    old = entry(FEED_A, "old", published=NOW - RETENTION - DAY)
    edge = entry(FEED_A, "edge", published=NOW - RETENTION)  # first seen exactly at the cutoff
    fresh = entry(FEED_B, "fresh", published=NOW - DAY)
    own_stories(store, [old, edge, fresh])

    assert prune_now(store) == PruneResult(entries=1, stories=1)
    assert stored_ids(store, FEED_A) == ["edge"]
    assert stored_ids(store, FEED_B) == ["fresh"]
    feed = store.get_feed(FEED_A)
    assert feed is not None and feed.retained_since == old.published


def test_pruning_twice_removes_nothing_more(store: SqlStorage) -> None:
    setup_feeds(store)
    own_stories(store, [entry(FEED_A, f"a{i}", published=T0 + i * MINUTE) for i in range(5)])
    assert prune_now(store, max_entries=2) == PruneResult(entries=3, stories=3)
    assert prune_now(store, max_entries=2) == PruneResult()
    assert stored_ids(store, FEED_A) == ["a3", "a4"]


def test_many_entries_are_pruned_batch_by_batch(store: SqlStorage, monkeypatch: Any) -> None:
    monkeypatch.setattr(prune, "PRUNE_BATCH", 3)
    setup_feeds(store)
    flood = [entry(FEED_A, f"a{i:02}", published=T0 + i * MINUTE) for i in range(11)]
    links = tuple(new(e, "one", fresh=i == 0) for i, e in enumerate(flood))
    store.store_refresh(FeedRefresh(FEED_A, ok_state(), links))

    assert prune_now(store, max_entries=2) == PruneResult(entries=9, stories=0)
    assert stored_ids(store, FEED_A) == ["a09", "a10"]
    story = store.get_story("one")
    assert story is not None and len(story.sources) == 2
    feed = store.get_feed(FEED_A)
    assert feed is not None and feed.retained_since == flood[8].published


def test_a_partly_pruned_story_keeps_a_correct_rank(store: SqlStorage) -> None:
    setup_feeds(store)
    # Story "one": A's early report (to be pruned by A's bound), B's and C's later ones.
    early = entry(FEED_A, "a-early", published=T0 - DAY)
    later = [entry(FEED_A, f"a{i}", published=T0 + i * MINUTE) for i in range(2)]
    store.store_refresh(FeedRefresh(FEED_A, ok_state(), (new(early, "one"),)))
    joining = [entry(FEED_B, "b1", published=T0), entry(FEED_C, "c1", published=T0 + MINUTE)]
    for e in joining:
        store.store_refresh(FeedRefresh(e.feed_url, ok_state(), (new(e, "one", fresh=False),)))
    own_stories(store, later)
    before = store.get_story("one")
    assert before is not None and len(before.sources) == 3

    assert prune_now(store, max_entries=2) == PruneResult(entries=1, stories=0)
    after = store.get_story("one")
    assert after is not None
    assert sorted(s.entry_id for s in after.sources) == ["b1", "c1"]
    with store.engine.connect() as conn:
        rank = conn.execute(select(stories.c.rank).where(stories.c.id == "one")).scalar_one()
        links = conn.execute(select(func.count()).select_from(story_entries)).scalar_one()
    assert rank == rank_of(after) != rank_of(before)
    # The pruned entry's link went with it; every other link stayed.
    assert links == count(store, entries) == 4
    if store.dialect == "sqlite":
        with store.engine.connect() as conn:
            assert conn.execute(text("PRAGMA foreign_key_check")).all() == []


def test_search_no_longer_finds_pruned_entries(store: SqlStorage) -> None:
    setup_feeds(store)
    gone = entry(FEED_A, "gone", "Zanzibar ferry capsizes", published=T0)
    kept = entry(FEED_A, "kept", "Quorn harvest record", published=T0 + MINUTE)
    own_stories(store, [gone, kept])
    assert [s.id for s in store.front_page(10, query="zanzibar")] == ["s-gone"]

    prune_now(store, max_entries=1)
    assert store.front_page(10, query="zanzibar") == []
    assert store.count_stories(query="zanzibar") == 0
    assert [s.id for s in store.front_page(10, query="quorn")] == ["s-kept"]


def test_corrections_keep_resolving_after_pruning(store: SqlStorage) -> None:
    setup_feeds(store)
    # A's old reports (past the retention) in "x", "y" and "solo"; B's in "x"; y merged into x.
    a_old = [entry(FEED_A, f"a-old{i}", published=NOW - RETENTION - DAY) for i in range(3)]
    for e, story_id in zip(a_old, ("x", "y", "solo"), strict=True):
        store.store_refresh(FeedRefresh(FEED_A, ok_state(), (new(e, story_id),)))
    b1 = entry(FEED_B, "b1")
    store.store_refresh(FeedRefresh(FEED_B, ok_state(), (new(b1, "x", fresh=False),)))
    store.record_merge("x", "y", T0)
    # A split: B's second report leaves "x" for "split".
    b2 = entry(FEED_B, "b2", published=T0 + MINUTE)
    store.store_refresh(FeedRefresh(FEED_B, ok_state(), (new(b2, "x", fresh=False),)))
    store.record_split(FEED_B, "b2", "split", T0)

    # A's old reports go; "solo" is left empty and removed, the others stay.
    assert prune_now(store) == PruneResult(entries=3, stories=1)
    assert stored_stories(store) == {"x", "y", "split"}
    merged = store.get_story("y")
    assert merged is not None and merged.id == "x"
    assert [s.entry_id for s in merged.sources] == ["b1"]
    assert [c.kind for c in store.corrections()] == ["merge", "split"]

    # Everything goes: "x" and "split", named by corrections, stay although empty, and a
    # report the matcher still assigns to the retired "y" lands in "x".
    later = NOW + RETENTION
    assert store.prune(later, retention=RETENTION, max_entries_per_feed=1).entries == 2
    assert stored_stories(store) == {"x", "y", "split"}
    assert store.get_story("y") is None  # x has no entry left: nothing to show, no error
    late = entry(FEED_C, "c1", published=later)
    store.store_refresh(FeedRefresh(FEED_C, ok_state(later), (new(late, "y", fresh=False),)))
    revived = store.get_story("y")
    assert revived is not None and revived.id == "x"
    assert [s.entry_id for s in revived.sources] == ["c1"]


def test_a_story_pruned_while_the_matcher_held_it_is_stored_again(store: SqlStorage) -> None:
    setup_feeds(store)
    own_stories(store, [entry(FEED_A, f"a{i}", published=T0 + i * MINUTE) for i in range(2)])
    prune_now(store, max_entries=1)
    assert "s-a0" not in stored_stories(store)

    joining = entry(FEED_B, "b1", published=T0)
    store.store_refresh(FeedRefresh(FEED_B, ok_state(NOW), (new(joining, "s-a0", fresh=False),)))
    story = store.get_story("s-a0")
    assert story is not None and [s.entry_id for s in story.sources] == ["b1"]


def test_the_horizon_never_moves_back(store: SqlStorage) -> None:
    setup_feeds(store)
    own_stories(store, [entry(FEED_A, f"a{i}", published=T0 + i * MINUTE) for i in range(3)])
    prune_now(store, max_entries=1)
    # An older entry arrives later (first seen now) and is pruned in turn.
    older = entry(FEED_A, "older", published=T0 - DAY)
    store.store_refresh(FeedRefresh(FEED_A, ok_state(NOW), (new(older, "s-older"),)))
    assert prune_now(store, max_entries=1).entries == 1
    feed = store.get_feed(FEED_A)
    assert feed is not None and feed.retained_since == T0 + MINUTE


@pytest.mark.parametrize(
    ("retention", "max_entries"), [(timedelta(0), 10), (RETENTION, 0), (-DAY, 10)]
)
def test_bounds_must_be_positive(store: SqlStorage, retention: timedelta, max_entries: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        store.prune(NOW, retention=retention, max_entries_per_feed=max_entries)
