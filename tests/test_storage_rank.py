"""The stored front-page rank: kept equal to ``rank_of(story)`` by every write that changes a
story's members or an entry's dates, and backfilled by its migration; on SQLite and PostgreSQL
(``test_storage``'s fixtures)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import test_storage
from sqlalchemy import insert, select
from test_storage import FEED_A, FEED_B, FEED_C, T0, entry, new, ok_state, setup_feeds

from aggregator.storage import SqlStorage, migrations, open_storage
from aggregator.storage.schema import entries, stories, story_entries
from aggregator.stories import rank_of
from aggregator.types import Entry, FeedRefresh

db_url = test_storage.db_url
store = test_storage.store

HOUR = timedelta(hours=1)


def stored_ranks(storage: SqlStorage) -> dict[str, float]:
    with storage.engine.connect() as conn:
        return {
            str(sid): float(rank)
            for sid, rank in conn.execute(select(stories.c.id, stories.c.rank))
        }


def assert_ranks_current(storage: SqlStorage) -> dict[str, float]:
    """Every listed story's stored rank is ``rank_of`` it; returns the stored ranks."""
    ranks = stored_ranks(storage)
    listed = storage.recent_stories(100)
    assert listed
    for story in listed:
        assert ranks[story.id] == rank_of(story), story.id
    return ranks


def test_rank_follows_new_links_and_changed_dates(store: SqlStorage) -> None:
    setup_feeds(store)
    store.store_refresh(FeedRefresh(FEED_A, ok_state(), (new(entry(FEED_A, "a1"), "s1"),)))
    alone = assert_ranks_current(store)["s1"]

    joined = entry(FEED_B, "b1", published=T0 + HOUR)
    store.store_refresh(FeedRefresh(FEED_B, ok_state(), (new(joined, "s1", fresh=False),)))
    with_two = assert_ranks_current(store)["s1"]
    assert with_two > alone  # a second outlet lifts it

    # A second entry of the same outlet adds no outlet: the rank stays.
    same_feed = entry(FEED_B, "b2", published=T0 + HOUR)
    store.store_refresh(FeedRefresh(FEED_B, ok_state(), (new(same_feed, "s1", fresh=False),)))
    assert assert_ranks_current(store)["s1"] == with_two

    # The outlet corrects its date to earlier than every other: the story counts from then.
    earlier = replace(joined, published=T0 - HOUR, content_hash="h2")
    store.store_refresh(FeedRefresh(FEED_B, ok_state(), changed_entries=(earlier,)))
    assert assert_ranks_current(store)["s1"] < with_two


def test_rank_follows_splits_and_merges(store: SqlStorage) -> None:
    setup_feeds(store)
    a1, b1 = entry(FEED_A, "a1"), entry(FEED_B, "b1", published=T0 + HOUR)
    c1 = entry(FEED_C, "c1", published=T0 + 2 * HOUR)
    store.store_refresh(FeedRefresh(FEED_A, ok_state(), (new(a1, "one"),)))
    store.store_refresh(FeedRefresh(FEED_B, ok_state(), (new(b1, "one", fresh=False),)))
    store.store_refresh(FeedRefresh(FEED_C, ok_state(), (new(c1, "two"),)))
    before = assert_ranks_current(store)

    store.record_split(FEED_B, "b1", "split", T0 + 3 * HOUR)
    after_split = assert_ranks_current(store)
    assert after_split["one"] < before["one"]
    assert set(after_split) == {"one", "two", "split"}

    store.record_merge("two", "split", T0 + 4 * HOUR)
    after_merge = assert_ranks_current(store)
    assert after_merge["two"] > after_split["two"]

    # The matcher's own merge during a refresh.
    d1 = entry(FEED_A, "a2", published=T0 - HOUR)
    merging = FeedRefresh(FEED_A, ok_state(), (new(d1, "three"),), story_merges=(("two", "three"),))
    store.store_refresh(merging)
    assert assert_ranks_current(store)["two"] != after_merge["two"]


def test_rank_is_backfilled_by_its_migration(db_url: str, monkeypatch: Any) -> None:
    monkeypatch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:3])
    old = open_storage(db_url)
    try:
        setup_feeds(old)
        # Rows as version 3 wrote them (today's writes would set the rank it lacks).
        links = [(entry(FEED_A, "a1"), "s1"), (entry(FEED_A, "a2", published=T0 + HOUR), "s2")]
        links.append((entry(FEED_B, "b1", published=T0 + 2 * HOUR), "s1"))
        with old.engine.begin() as conn:
            for story_id in ("s1", "s2"):
                conn.execute(insert(stories).values(id=story_id, created=T0, updated=T0))
            for made, story_id in links:
                row = {name: getattr(made, name) for name in Entry.__slots__}
                conn.execute(insert(entries).values(row))
                link = {"story_id": story_id, "score": 1.0, "evidence": {}}
                conn.execute(
                    insert(story_entries).values(
                        feed_url=made.feed_url, entry_id=made.entry_id, **link
                    )
                )
    finally:
        old.close()
    monkeypatch.undo()

    upgraded = open_storage(db_url)
    try:
        ranks = assert_ranks_current(upgraded)
        assert set(ranks) == {"s1", "s2"}
    finally:
        upgraded.close()
