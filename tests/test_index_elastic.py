"""The match index comes back into the service process once idle (``index_elastic``): it keeps
the window, its child stops, and matches the child made before are matched again."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import pytest
from test_story_index import (
    ANKARA,
    ANKARA_AGAIN,
    ANKARA_THIRD,
    NOW,
    OTHER,
    OTHER_AGAIN,
    WINDOW,
    entry,
    feats,
    store,
)

from aggregator.exceptions import StorageError
from aggregator.refresh.index import LocalStoryIndex
from aggregator.refresh.index_elastic import ElasticStoryIndex
from aggregator.refresh.index_process import StoryIndexProcess
from aggregator.storage import SqlStorage

# Seconds a test waits for the index to come back (a load of a few entries takes well under one).
WAIT_S = 60.0


def elastic(
    storage: SqlStorage,
    *,
    idle_seconds: float = 0.0,
    max_entries: int = 100,
    load: Callable[[], LocalStoryIndex] | None = None,
) -> tuple[ElasticStoryIndex, StoryIndexProcess]:
    child = StoryIndexProcess(storage, WINDOW, lambda: NOW)
    index = ElasticStoryIndex(
        child,
        load or (lambda: LocalStoryIndex(storage, WINDOW, NOW)),
        lambda: NOW,
        idle_seconds=idle_seconds,
        max_entries=max_entries,
    )
    return index, child


def wait_back(index: ElasticStoryIndex) -> None:
    deadline = time.monotonic() + WAIT_S
    while index.in_own_process:
        assert time.monotonic() < deadline, "the index did not come back"
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_an_idle_index_comes_back_with_its_window_and_its_child_stops(storage: SqlStorage) -> None:
    first = entry("afp", "1", ANKARA)
    index, child = elastic(storage, idle_seconds=0.3)
    pid = child.pid
    assert pid is not None and index.pid == pid
    try:
        before = index.match(feats(first), [])
        store(storage, [first], before)
        assert index.in_own_process  # the match above was less than the idle time ago
        wait_back(index)
        assert index.pid is None
        # A match the child made and nobody stored yet is for another index: matched again.
        assert before.generation != index.generation
        again = index.match(feats(entry("tass", "1", ANKARA_AGAIN)), [])
        assert again.generation == index.generation
    finally:
        index.close()
    assert again.assignments[0].story_id == before.assignments[0].story_id
    deadline = time.monotonic() + WAIT_S
    while alive(pid):  # the child exits once told to stop; reaped by its Process
        assert time.monotonic() < deadline, "the index process did not stop"
        time.sleep(0.05)


def test_what_the_child_stored_while_the_index_loaded_is_caught_up(storage: SqlStorage) -> None:
    late = entry("reuters", "1", OTHER)
    children: list[StoryIndexProcess] = []

    def load() -> LocalStoryIndex:
        local = LocalStoryIndex(storage, WINDOW, NOW)
        # The service stores a feed the child matched before the takeover, after this load.
        store(storage, [late], children[0].match(feats(late), []))
        return local

    index, child = elastic(storage, load=load)
    children.append(child)
    try:
        wait_back(index)
        twin = index.match(feats(entry("ap", "1", OTHER_AGAIN)), [])
    finally:
        index.close()
    assert not twin.assignments[0].new_story  # it joined the caught-up report's story


def test_a_match_while_the_index_loads_keeps_the_child(storage: SqlStorage) -> None:
    loads: list[LocalStoryIndex] = []
    holder: list[ElasticStoryIndex] = []

    def load() -> LocalStoryIndex:
        local = LocalStoryIndex(storage, WINDOW, NOW)
        loads.append(local)
        if len(loads) == 1:  # a backlog begins while the first load runs
            holder[0].match(feats(entry("afp", "2", ANKARA_THIRD)), [])
        return local

    index, _child = elastic(storage, load=load)
    holder.append(index)
    try:
        wait_back(index)  # the next idle time, the next load: that one takes over
    finally:
        index.close()
    assert len(loads) >= 2


def test_a_load_that_fails_keeps_the_child_and_is_tried_again_later(
    storage: SqlStorage, caplog: pytest.LogCaptureFixture
) -> None:
    loads: list[float] = []

    def load() -> LocalStoryIndex:
        loads.append(time.monotonic())
        if len(loads) == 1:
            raise StorageError("database is locked")
        return LocalStoryIndex(storage, WINDOW, NOW)

    index, child = elastic(storage, idle_seconds=2.0, load=load)
    try:
        wait_back(index)
        assert child.pid is None  # stopped once the second load took over
    finally:
        index.close()
    assert "stays in its process for now: database is locked" in caplog.text
    assert loads[1] - loads[0] >= 2.0  # after another idle time, not at the next look (1 s)


def test_a_window_too_large_to_load_twice_stays_in_its_process(storage: SqlStorage) -> None:
    index, child = elastic(storage, max_entries=1)
    try:
        for n, title in enumerate((ANKARA, OTHER)):
            item = entry("afp", str(n), title)
            store(storage, [item], index.match(feats(item), []))
        time.sleep(2.5)  # past the idle time, and more than one look at it
        assert index.in_own_process
        assert child.entries() == 2
    finally:
        index.close()


@pytest.mark.parametrize("workers", [None, 0, 2])
def test_only_auto_lets_the_index_come_back(workers: int | None) -> None:
    from aggregator.refresh.workers import describe, index_comes_back

    assert index_comes_back(workers) is (workers is None)
    line = describe(workers, index_own_process=True)
    assert ("for a backlog" in line) is (workers is None)
