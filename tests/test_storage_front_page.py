"""``front_page`` and ``count_stories``: stories by stored rank, paged and filtered, and
``min_sources`` counted in outlets; on SQLite and PostgreSQL (``test_storage``'s fixtures)."""

from __future__ import annotations

from datetime import datetime, timedelta

import test_storage
from test_storage import FEED_A, FEED_B, FEED_C, T0, entry, new, ok_state, setup_feeds

from aggregator.storage import SqlStorage
from aggregator.stories import rank_of
from aggregator.types import FeedRefresh, Story

db_url = test_storage.db_url
store = test_storage.store

HOUR = timedelta(hours=1)

# story id -> the feeds reporting it and when; ranks (first report hour + 6 h per doubling of
# outlets): mid2 T0+3h, new1 T0, old3 T0-2.5h, tie_b = tie_a T0-5h, same_feed T0-6h.
STORIES: dict[str, tuple[tuple[str, ...], datetime]] = {
    "old3": ((FEED_A, FEED_B, FEED_C), T0 - 12 * HOUR),
    "new1": ((FEED_B,), T0),
    "mid2": ((FEED_B, FEED_C), T0 - 3 * HOUR),
    "tie_a": ((FEED_B,), T0 - 5 * HOUR),
    "tie_b": ((FEED_B,), T0 - 5 * HOUR),
    "same_feed": ((FEED_A, FEED_A), T0 - 6 * HOUR),
}
BY_RANK = ["mid2", "new1", "old3", "tie_b", "tie_a", "same_feed"]


def _fill(store: SqlStorage) -> None:
    setup_feeds(store)
    for story_id, (feeds, when) in STORIES.items():
        for n, feed in enumerate(feeds):
            item = new(entry(feed, f"{story_id}-{n}", published=when), story_id, fresh=n == 0)
            store.store_refresh(FeedRefresh(feed, ok_state(), (item,)))


def _ids(stories: list[Story]) -> list[str]:
    return [story.id for story in stories]


def test_front_page_orders_by_rank_then_id_and_pages(store: SqlStorage) -> None:
    _fill(store)
    page = store.front_page(10)
    assert _ids(page) == BY_RANK
    ranks = [rank_of(story) for story in page]
    assert ranks == sorted(ranks, reverse=True)
    assert rank_of(page[3]) == rank_of(page[4])  # the tie goes to the higher id

    pages = [store.front_page(2, offset=offset) for offset in (0, 2, 4, 6)]
    assert [_ids(p) for p in pages] == [BY_RANK[0:2], BY_RANK[2:4], BY_RANK[4:6], []]
    assert store.front_page(0) == [] and store.front_page(-1) == []
    assert store.count_stories() == len(BY_RANK)


def test_min_sources_counts_outlets_not_entries(store: SqlStorage) -> None:
    _fill(store)
    assert _ids(store.front_page(10, min_sources=2)) == ["mid2", "old3"]
    assert _ids(store.front_page(10, min_sources=3)) == ["old3"]
    assert store.count_stories(min_sources=2) == 2
    assert store.count_stories(min_sources=4) == 0
    # Two entries of one feed are one outlet, in recent_stories too.
    assert "same_feed" not in _ids(store.recent_stories(10, min_sources=2))
    assert sorted(_ids(store.recent_stories(10, min_sources=2))) == ["mid2", "old3"]


def test_tag_filters_and_combines(store: SqlStorage) -> None:
    _fill(store)
    world = ["mid2", "old3", "same_feed"]  # a source from A or C
    assert _ids(store.front_page(10, tag="world")) == world
    assert store.count_stories(tag="world") == len(world)
    assert _ids(store.front_page(1, offset=1, tag="world", min_sources=2)) == ["old3"]
    assert store.count_stories(tag="world", min_sources=2) == 2
    assert store.front_page(10, tag="sport") == []
    assert store.count_stories(tag="sport") == 0


def test_a_story_emptied_by_a_merge_is_never_listed_nor_counted(store: SqlStorage) -> None:
    _fill(store)
    store.record_merge("old3", "tie_a", T0)
    assert "tie_a" not in _ids(store.front_page(10))
    assert store.count_stories() == len(BY_RANK) - 1
    (old3,) = [s for s in store.front_page(10) if s.id == "old3"]
    assert len(old3.sources) == 4
