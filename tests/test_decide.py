from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from factories import make_entry

from aggregator.refresh.decide import decide_changes
from aggregator.types import Entry

T0 = datetime(2017, 9, 28, 12, tzinfo=UTC)


def entry(entry_id: str, content_hash: str = "h", minutes: int = 0) -> Entry:
    return make_entry(
        "https://example.com/feed",
        entry_id,
        f"title {entry_id}",
        published=T0 + timedelta(minutes=minutes),
        first_seen=T0,
        content_hash=content_hash,
    )


CASES = {
    "all new on first poll": ([entry("a"), entry("b")], {}, ["a", "b"], [], 0, 0),
    "unchanged entries are skipped": ([entry("a", "h1")], {"a": "h1"}, [], [], 1, 0),
    "an edit by the outlet is a change": ([entry("a", "h2")], {"a": "h1"}, [], ["a"], 0, 0),
    "a duplicate guid keeps the first copy": (
        [entry("a", "first"), entry("a", "second")],
        {},
        ["a"],
        [],
        0,
        1,
    ),
    "duplicate of a stored entry does not count twice": (
        [entry("a", "h1"), entry("a", "h9")],
        {"a": "h1"},
        [],
        [],
        1,
        1,
    ),
    "new entries come back oldest first": (
        [entry("late", minutes=30), entry("early", minutes=5)],
        {},
        ["early", "late"],
        [],
        0,
        0,
    ),
}


# The retention horizon (``FeedState.retained_since``): entries not stored and published at or
# before it were pruned, or are as old as what was, and are not stored again.
HORIZON = T0 + timedelta(minutes=10)

HORIZON_CASES = {
    "no horizon: nothing is skipped": (
        [entry("old", minutes=-60), entry("new", minutes=20)],
        {},
        None,
        ["old", "new"],
        [],
        0,
    ),
    "a new entry published before the horizon is skipped": (
        [entry("old", minutes=5), entry("new", minutes=20)],
        {},
        HORIZON,
        ["new"],
        [],
        1,
    ),
    "a new entry published at the horizon is skipped": (
        [entry("edge", minutes=10)],
        {},
        HORIZON,
        [],
        [],
        1,
    ),
    "a new entry published just after the horizon is stored": (
        [entry("after", minutes=11)],
        {},
        HORIZON,
        ["after"],
        [],
        0,
    ),
    "a stored entry before the horizon is still updated when edited": (
        [entry("kept", "h2", minutes=5)],
        {"kept": "h1"},
        HORIZON,
        [],
        ["kept"],
        0,
    ),
    "a stored entry before the horizon counts as unchanged, not pruned": (
        [entry("kept", "h1", minutes=5)],
        {"kept": "h1"},
        HORIZON,
        [],
        [],
        0,
    ),
    "a duplicate of a pruned entry counts once as pruned": (
        [entry("old", minutes=5), entry("old", minutes=5)],
        {},
        HORIZON,
        [],
        [],
        1,
    ),
}


@pytest.mark.parametrize("name", list(HORIZON_CASES))
def test_decide_changes_with_a_retention_horizon(name: str) -> None:
    entries, known, horizon, new, changed, pruned = HORIZON_CASES[name]
    result = decide_changes(entries, known, horizon)
    assert [e.entry_id for e in result.new] == new
    assert [e.entry_id for e in result.changed] == changed
    assert result.pruned == pruned


@pytest.mark.parametrize("name", list(CASES))
def test_decide_changes(name: str) -> None:
    entries, known, new, changed, unchanged, duplicates = CASES[name]
    result = decide_changes(entries, known)
    assert [e.entry_id for e in result.new] == new
    assert [e.entry_id for e in result.changed] == changed
    assert result.unchanged == unchanged
    assert result.duplicates == duplicates


def test_first_copy_of_duplicate_is_kept() -> None:
    result = decide_changes([entry("a", "first"), entry("a", "second")], {})
    assert result.new[0].content_hash == "first"
