"""The match index kept in step with storage: one contract for the in-process index and the
index in a process of its own, the child's recovery, and the updater's pipelined matching
when storage refuses a refresh."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from factories import make_entry
from pg import throwaway_database

from aggregator.exceptions import StorageError
from aggregator.fetch import Fetcher
from aggregator.match.matcher import Matcher
from aggregator.match.text import Features, features
from aggregator.refresh.index import IndexDied, LocalStoryIndex, Matched, StoryIndex
from aggregator.refresh.index_elastic import ElasticStoryIndex
from aggregator.refresh.index_process import StoryIndexProcess
from aggregator.refresh.parse_pool import Parsed
from aggregator.refresh.updater import Updater
from aggregator.storage import SqlStorage, open_storage
from aggregator.types import Entry, FeedRefresh, FeedState, FeedStateUpdate, StoredEntry
from tests.child import python_output

NOW = datetime(2017, 9, 28, 18, 0, tzinfo=UTC)
WINDOW = timedelta(hours=48)
ANKARA = "Putin and Erdogan agree in Ankara to speed up delivery of S-400 missile systems"
ANKARA_AGAIN = "Erdogan and Putin in Ankara: S-400 missile systems delivery to be sped up"
ANKARA_THIRD = "Ankara talks: Putin, Erdogan agree on faster S-400 missile systems delivery"
# Long enough for the next feed's matching (milliseconds) to finish while the refusal waits.
REFUSAL_DELAY_S = 0.5
OTHER = "Heavy rain floods the streets of Lisbon as the river Tagus bursts its banks"
QUAKE = "Earthquake of magnitude 6 shakes central Chile; no damage is reported"
OTHER_AGAIN = "Lisbon streets flooded by heavy rain as the river Tagus bursts its banks"


def entry(feed: str, entry_id: str, title: str) -> Entry:
    return make_entry(
        f"https://{feed}.example/rss",
        entry_id,
        title,
        url=f"https://{feed}.example/{entry_id}",
        link=f"https://{feed}.example/{entry_id}",
        published=NOW - timedelta(hours=1),
        first_seen=NOW,
        content_hash=f"{feed}-{entry_id}-{title}",
    )


def store(storage: SqlStorage, entries: list[Entry], matched: Matched) -> None:
    """Store one feed's entries with their assignments, as the updater does."""
    pairs = tuple(zip(entries, matched.assignments, strict=True))
    storage.store_refresh(FeedRefresh(entries[0].feed_url, STATE, pairs, (), matched.merges))


def feats(*items: Entry) -> list[Features]:
    return [features(e) for e in items]


STATE = FeedStateUpdate(last_polled=NOW, next_due=NOW, status=200, error=None)


def feed_of(item: Entry) -> FeedState:
    return FeedState(item.feed_url, None, (), 0, timedelta(hours=1), True)


def parsed(item: Entry) -> Parsed:
    """What the parse worker hands the updater for a one-entry feed."""
    return Parsed(None, None, (item.published,), (item,), (features(item),))


def make_index(kind: str, storage: SqlStorage, max_entries: int | None = None) -> StoryIndex:
    if kind == "local":
        return LocalStoryIndex(storage, WINDOW, NOW, max_entries)
    child = StoryIndexProcess(storage, WINDOW, lambda: NOW, max_entries)
    if kind == "process":
        return child
    # "elastic": still in its process (the idle time is never reached); "handed back": the
    # index has come back into this process, a generation on.
    elastic = ElasticStoryIndex(
        child,
        lambda: LocalStoryIndex(storage, WINDOW, NOW, max_entries),
        lambda: NOW,
        idle_seconds=3600.0 if kind == "elastic" else 0.0,
    )
    deadline = time.monotonic() + 60
    while kind == "handed back" and elastic.in_own_process:
        assert time.monotonic() < deadline, "the index did not come back"
        time.sleep(0.05)
    return elastic


@pytest.fixture(params=["local", "process", "elastic", "handed back"])
def kind(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


def test_entries_join_the_story_and_a_new_index_loads_it_from_storage(
    kind: str, storage: SqlStorage
) -> None:
    first, second = entry("afp", "1", ANKARA), entry("tass", "1", ANKARA_AGAIN)
    index = make_index(kind, storage)
    try:
        a = index.match(feats(first), [])
        store(storage, [first], a)
        b = index.match(feats(second), [])
        store(storage, [second], b)
    finally:
        index.close()
    assert a.assignments[0].new_story and not b.assignments[0].new_story
    story = a.assignments[0].story_id
    assert b.assignments[0].story_id == story
    assert b.assignments[0].evidence  # the reason travels back with the assignment
    reloaded = make_index(kind, storage)
    try:
        third = reloaded.match(feats(entry("ap", "1", ANKARA_THIRD)), [])
        unrelated = reloaded.match(feats(entry("ap", "2", OTHER)), [])
    finally:
        reloaded.close()
    assert third.assignments[0].story_id == story
    assert unrelated.assignments[0].new_story


def test_a_rebuild_forgets_what_storage_does_not_hold(kind: str, storage: SqlStorage) -> None:
    stored, lost = entry("afp", "1", ANKARA), entry("tass", "1", OTHER)
    index = make_index(kind, storage)
    try:
        store(storage, [stored], index.match(feats(stored), []))
        index.match(feats(lost), [])  # matched, never stored
        before = index.generation
        index.rebuild(NOW)
        assert index.generation == before + 1
        joined = index.match(feats(entry("ap", "1", ANKARA_AGAIN)), [])
        alone = index.match(feats(entry("reuters", "1", OTHER + " overnight")), [])
    finally:
        index.close()
    assert not joined.assignments[0].new_story
    assert alone.assignments[0].new_story  # "lost" is gone from the rebuilt index
    assert joined.generation == alone.generation == before + 1


def test_the_window_expires_and_a_changed_entry_is_replaced(kind: str, storage: SqlStorage) -> None:
    first = entry("afp", "1", ANKARA)
    index = make_index(kind, storage)
    try:
        store(storage, [first], index.match(feats(first), []))
        edited = entry("afp", "1", OTHER)
        index.match([], feats(edited))  # the outlet rewrote it: now about Lisbon
        lisbon = index.match(feats(entry("tass", "1", OTHER + " overnight")), [])
        assert not lisbon.assignments[0].new_story
        index.expire(NOW + WINDOW + timedelta(hours=2))
        late = index.match(feats(entry("ap", "1", OTHER + " overnight")), [])
        assert late.assignments[0].new_story  # nothing left in the window to join
    finally:
        index.close()


def test_a_killed_index_process_is_started_again_from_storage(storage: SqlStorage) -> None:
    first = entry("afp", "1", ANKARA)
    index = StoryIndexProcess(storage, WINDOW, lambda: NOW)
    try:
        a = index.match(feats(first), [])
        store(storage, [first], a)
        pid = index.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        b = index.match(feats(entry("tass", "1", ANKARA_AGAIN)), [])
        assert index.pid not in (None, pid)
    finally:
        index.close()
    assert b.generation > a.generation  # matched against a fresh load
    assert b.assignments[0].story_id == a.assignments[0].story_id


def test_submitted_matches_are_answered_in_order(storage: SqlStorage) -> None:
    reports = [entry("afp", "1", ANKARA), entry("tass", "1", ANKARA_AGAIN), entry("ap", "1", OTHER)]
    index = StoryIndexProcess(storage, WINDOW, lambda: NOW)
    try:
        # All three are queued before the first answer: the child takes them in order.
        futures = [index.submit_match(feats(report), []) for report in reports]
        first, second, third = (f.result(timeout=30).assignments[0] for f in futures)
    finally:
        index.close()
    assert first.new_story and third.new_story
    assert second.story_id == first.story_id and not second.new_story


def test_calls_pending_when_the_index_process_dies_fail_with_index_died(
    storage: SqlStorage,
) -> None:
    index = StoryIndexProcess(storage, WINDOW, lambda: NOW)
    try:
        pid = index.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        pending = index.submit_match(feats(entry("afp", "1", ANKARA)), [])
        with pytest.raises(IndexDied):
            pending.result(timeout=30)
        # A blocking call starts a fresh child and is answered.
        assert index.match(feats(entry("afp", "1", ANKARA)), []).assignments[0].new_story
    finally:
        index.close()


def test_an_index_process_started_again_leaves_no_resource_tracker(storage: SqlStorage) -> None:
    """Each start of the child starts multiprocessing's resource tracker (about 12 MB), which
    the detached child does not need: a child started again after it died stops it too."""
    from multiprocessing import resource_tracker

    tracker = resource_tracker._resource_tracker
    index = StoryIndexProcess(storage, WINDOW, lambda: NOW)
    try:
        pid = index.pid
        assert pid is not None and tracker._pid is None
        os.kill(pid, signal.SIGKILL)
        assert index.match(feats(entry("afp", "1", ANKARA)), []).assignments[0].new_story
        assert index.pid not in (None, pid) and tracker._pid is None
    finally:
        index.close()


async def test_a_feed_matched_when_the_index_process_died_is_matched_again(
    storage: SqlStorage,
) -> None:
    index = StoryIndexProcess(storage, WINDOW, lambda: NOW)
    updater = Updater(storage, Fetcher(), match_window=WINDOW, index=index, clock=lambda: NOW)
    try:
        pid = index.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        report = entry("afp", "1", ANKARA)
        changes = await updater._match_and_store(feed_of(report), parsed(report), STATE)
        await updater.drain()
    finally:
        index.close()
    assert [e.key for e in changes.new] == [report.key]
    assert [s.entry.key for s in storage.entries_since(NOW - WINDOW)] == [report.key]


class FailingReads(SqlStorage):
    """A database that fails the index's reads named in ``failing``, once each, and answers
    ``entries_after`` only after ``delay`` seconds."""

    def __init__(self, inner: SqlStorage, *failing: str, delay: float = 0.0) -> None:
        super().__init__(inner.engine)
        self.failing = set(failing)
        self.delay = delay

    def _fail(self, method: str) -> None:
        if method in self.failing:
            self.failing.discard(method)
            raise StorageError(f"{method}: database disk image is malformed")

    def window_page(
        self, since: datetime, after: tuple[datetime, str, str] | None, limit: int
    ) -> list[tuple[Entry, str]]:
        self._fail("window_page")
        return super().window_page(since, after, limit)

    def entries_after(self, seq: int) -> tuple[list[StoredEntry], int]:
        time.sleep(self.delay)
        self._fail("entries_after")
        return super().entries_after(seq)


def test_an_index_process_whose_load_the_database_fails_says_why(storage: SqlStorage) -> None:
    with pytest.raises(StorageError, match="window_page: database disk image is malformed"):
        StoryIndexProcess(FailingReads(storage, "window_page"), WINDOW, lambda: NOW)


def test_the_index_process_reads_through_the_service_and_keeps_calls_queued_meanwhile(
    storage: SqlStorage,
) -> None:
    """The child asks the service for its reads over the pipe: a failed read is the call's
    StorageError, and a match queued while a read waits is answered after it, in order."""
    first, second = entry("afp", "1", ANKARA), entry("tass", "1", ANKARA_AGAIN)
    slow = FailingReads(storage, "entries_after", delay=0.3)
    index = StoryIndexProcess(slow, WINDOW, lambda: NOW)
    try:
        store(storage, [first], index.match(feats(first), []))
        with pytest.raises(StorageError, match="entries_after: database disk image"):
            index.catch_up()
        caught_up = index.submit("catch_up")
        matched = index.submit_match(feats(second), [])  # sent while the read waits
        assert caught_up.result(timeout=30) is None
        assert not matched.result(timeout=30).assignments[0].new_story
    finally:
        index.close()


def test_the_index_process_code_never_imports_the_storage_layer() -> None:
    """What the index process runs (its module, the index it loads, a match) loads neither
    SQLAlchemy nor ``aggregator.storage``: about 30 MB the child held for a few queries."""
    script = """
import sys
from datetime import UTC, datetime, timedelta
import aggregator.refresh.index_process
from aggregator.match.text import features
from aggregator.refresh.index import LocalStoryIndex
from aggregator.types import Entry

class NoRows:
    def newest_seq(self): return 0
    def newest_correction_id(self): return 0
    def corrections(self, after=0, kind=None): return []
    def surviving_stories(self, story_ids): return {}
    def window_start(self, since, max_entries): return since
    def window_page(self, since, after, limit): return []
    def entries_after(self, seq): return [], seq

now = datetime(2017, 9, 28, tzinfo=UTC)
index = LocalStoryIndex(NoRows(), timedelta(hours=48), now)
entry = Entry("https://afp.example/rss", "1", "Putin and Erdogan meet in Ankara", "", None,
              None, now, None, now, "hash")
index.match([features(entry)], [])
index.catch_up()
print(sorted(m for m in sys.modules if m.startswith(("sqlalchemy", "aggregator.storage"))))
"""
    assert python_output(script).strip() == "[]"


class RefusingStorage(SqlStorage):
    """Refuses the first refresh of one feed, as a full disk or a constraint would."""

    def __init__(self, inner: SqlStorage, refuse: str) -> None:
        super().__init__(inner.engine)
        self.refuse = refuse

    def store_refresh(self, refresh: FeedRefresh) -> None:
        if refresh.feed_url == self.refuse and not refresh.state_only:
            self.refuse = ""
            time.sleep(REFUSAL_DELAY_S)  # the next feed is matched meanwhile
            raise StorageError("database or disk is full")
        super().store_refresh(refresh)


async def test_after_a_refused_store_the_next_feed_is_matched_again(
    storage: SqlStorage,
) -> None:
    """Feed B is matched while feed A is stored, against an index holding A's new story. A is
    refused: B must not be stored under the story that never was, nor drift from the index."""

    refusing = RefusingStorage(storage, refuse="https://afp.example/rss")
    a, b = entry("afp", "1", ANKARA), entry("tass", "1", ANKARA_AGAIN)
    updater = Updater(refusing, Fetcher(), match_window=WINDOW, clock=lambda: NOW)

    async def refresh(item: Entry) -> object:
        return await updater._match_and_store(feed_of(item), parsed(item), STATE)

    outcomes = await asyncio.gather(refresh(a), refresh(b), return_exceptions=True)
    await updater.drain()
    assert isinstance(outcomes[0], StorageError)
    assert not isinstance(outcomes[1], BaseException)
    stored = list(refusing.entries_since(NOW - WINDOW))
    assert [s.entry.key for s in stored] == [b.key]
    story = stored[0].story_id
    assert refusing.get_story(story) is not None  # B's story exists: it was matched again
    # The index agrees with the database: a third report joins B's story.
    third = updater.index.match(feats(entry("ap", "1", ANKARA_THIRD)), [])
    assert third.assignments[0].story_id == story
    updater.index.close()


def test_an_index_with_an_entry_bound_loads_the_newest_stories_only(
    kind: str, storage: SqlStorage
) -> None:
    lisbon = replace(entry("afp", "3", OTHER), published=NOW - timedelta(hours=3))
    quake = replace(entry("afp", "2", QUAKE), published=NOW - timedelta(hours=2))
    ankara = entry("afp", "1", ANKARA)  # an hour ago
    index = make_index(kind, storage)
    try:
        store(storage, [lisbon, quake, ankara], index.match(feats(lisbon, quake, ankara), []))
    finally:
        index.close()
    ankara_again = entry("tass", "1", ANKARA_AGAIN)
    lisbon_again = replace(entry("tass", "3", OTHER_AGAIN), published=NOW)

    def joined(max_entries: int | None) -> list[bool]:
        index = make_index(kind, storage, max_entries)
        try:
            matched = index.match(feats(ankara_again, lisbon_again), [])
        finally:
            index.close()
        return [not a.new_story for a in matched.assignments]

    assert joined(None) == [True, True]
    # Room for two entries: the Lisbon story, updated longest ago, was not loaded.
    assert joined(2) == [True, False]


async def test_a_worker_on_postgresql_catches_up_with_others_not_with_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[Matcher, str, tuple[str, str]]] = []
    add_known, update_entry = Matcher.add_known, Matcher.update_entry

    def counted_add(self: Matcher, item: Entry, story_id: str) -> None:
        calls.append((self, "add", item.key))
        add_known(self, item, story_id)

    def counted_update(self: Matcher, item: Entry) -> None:
        calls.append((self, "update", item.key))
        update_entry(self, item)

    monkeypatch.setattr(Matcher, "add_known", counted_add)
    monkeypatch.setattr(Matcher, "update_entry", counted_update)
    first, second, third = (
        entry("afp", "1", ANKARA),
        entry("tass", "1", ANKARA_AGAIN),
        entry("ap", "1", ANKARA_THIRD),
    )
    lisbon = entry("afp", "9", OTHER)
    with throwaway_database() as url:
        # Each index reads through a connection of its own, as the index process does: it
        # cannot see what its worker stored until the matching lock's transaction commits.
        mine, theirs, my_reads = open_storage(url), open_storage(url), open_storage(url)
        try:
            my_index = LocalStoryIndex(my_reads, WINDOW, NOW)
            me = Updater(mine, Fetcher(), match_window=WINDOW, index=my_index, clock=lambda: NOW)
            other = Updater(theirs, Fetcher(), match_window=WINDOW, clock=lambda: NOW)
            for updater, item in ((me, first), (me, lisbon), (other, second), (me, third)):
                changes = await updater._match_and_store(feed_of(item), parsed(item), STATE)
                assert [e.key for e in changes.new] == [item.key]
            stored = {s.entry.key: s.story_id for s in mine.entries_since(NOW - WINDOW)}
            my_matcher = my_index._matcher
        finally:
            for opened in (mine, theirs, my_reads):
                opened.close()
    # My index read back only the other worker's report, once, and never my own.
    assert [(kind, key) for m, kind, key in calls if m is my_matcher] == [("add", second.key)]
    # The other worker's index read back mine (two), which it had not seen.
    assert [(kind, key) for m, kind, key in calls if m is not my_matcher] == [
        ("add", first.key),
        ("add", lisbon.key),
    ]
    assert stored[first.key] == stored[second.key] == stored[third.key]


async def test_an_index_process_on_postgresql_reads_through_its_workers_storage() -> None:
    """As the runtime builds it: the index process's reads are answered from the worker's
    own storage, whose thread holding the matching lock waits for the index meanwhile."""
    first, second, third = (
        entry("afp", "1", ANKARA),
        entry("tass", "1", ANKARA_AGAIN),
        entry("ap", "1", ANKARA_THIRD),
    )
    with throwaway_database() as url:
        mine, theirs = open_storage(url), open_storage(url)
        my_index = StoryIndexProcess(mine, WINDOW, lambda: NOW)
        try:
            me = Updater(mine, Fetcher(), match_window=WINDOW, index=my_index, clock=lambda: NOW)
            other = Updater(theirs, Fetcher(), match_window=WINDOW, clock=lambda: NOW)
            for updater, item in ((me, first), (other, second), (me, third)):
                changes = await updater._match_and_store(feed_of(item), parsed(item), STATE)
                assert [e.key for e in changes.new] == [item.key]
            stored = {s.entry.key: s.story_id for s in mine.entries_since(NOW - WINDOW)}
        finally:
            my_index.close()
            mine.close()
            theirs.close()
    # Catching up and matching under the lock, the reads answered meanwhile, neither waited
    # for ever nor split the event.
    assert stored[first.key] == stored[second.key] == stored[third.key]


def test_an_index_process_that_dies_while_loading_says_so(storage: SqlStorage) -> None:
    # The child exits before it can answer: its window start is not a time it can subtract.
    with pytest.raises(IndexDied, match=r"exited while loading the index \(exit code 1;"):
        StoryIndexProcess(storage, "not a duration", lambda: NOW)  # type: ignore[arg-type]


def test_a_load_resolves_stored_merges_instead_of_replaying_them(storage: SqlStorage) -> None:
    """Every matcher merge is a stored correction: a load reads the window's survivors and the
    splits, not every merge ever made, and keeps no alias for them."""
    first, other = entry("afp", "1", ANKARA), entry("ap", "2", OTHER)
    index = LocalStoryIndex(storage, WINDOW, NOW)
    a = index.match(feats(first), [])
    store(storage, [first], a)
    b = index.match(feats(other), [])
    store(storage, [other], b)
    left, kept = a.assignments[0].story_id, b.assignments[0].story_id
    # The entry is split out of its story, and that story is then merged into another.
    storage.record_split(first.feed_url, first.entry_id, "split-out", NOW)
    storage.record_merge(kept, left, NOW)
    reloaded = LocalStoryIndex(storage, WINDOW, NOW)
    matcher = reloaded._matcher
    assert matcher._alias == {}
    # The split still keeps the entry out of the story it left, now under the survivor's id.
    assert matcher._forbidden == {(first.key, kept)}
    assert matcher.story_of(first.key) == "split-out"
    assert reloaded.apply_corrections(NOW) is False  # nothing recorded since the load
