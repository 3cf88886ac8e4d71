"""The storage contract, run unchanged against SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from factories import make_entry
from pg import reset_schema
from sqlalchemy import event, func, inspect, select, text, update

from aggregator.exceptions import StorageError
from aggregator.storage import SqlStorage, Storage, migrations, open_storage, search
from aggregator.storage import writes as storage_writes
from aggregator.storage.engine import SQLITE_POOL_SIZE
from aggregator.storage.migrations import MIGRATIONS, latest_version
from aggregator.storage.schema import entries, metadata, schema_migrations, stories, story_entries
from aggregator.types import (
    Assignment,
    Entry,
    FeedRefresh,
    FeedSpec,
    FeedStateUpdate,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
FEED_A = "https://a.example/feed"
FEED_B = "https://b.example/feed"
FEED_C = "https://c.example/feed"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/nested/dir/aggregator.db"
    url: str = request.getfixturevalue("pg_url")
    reset_schema(url)
    return url


@pytest.fixture
def store(db_url: str) -> Iterator[SqlStorage]:
    storage = open_storage(db_url)
    typed: Storage = storage  # SqlStorage satisfies the protocol (checked by mypy)
    assert typed is storage
    yield storage
    storage.close()


def entry(
    feed: str,
    entry_id: str,
    title: str = "Title",
    *,
    published: datetime = T0,
    content_hash: str = "h1",
    url: str | None = None,
) -> Entry:
    return make_entry(
        feed,
        entry_id,
        title,
        summary=f"summary of {title}",
        url=url or f"{feed}/{entry_id}",
        published=published,
        content_hash=content_hash,
    )


def ok_state(polled: datetime = T0, **kw: Any) -> FeedStateUpdate:
    values: dict[str, Any] = {"status": 200, "error": None, "etag": '"e1"'} | kw
    return FeedStateUpdate(last_polled=polled, next_due=polled + timedelta(minutes=15), **values)


def new(
    e: Entry, story: str, *, fresh: bool = True, score: float = 1.0
) -> tuple[Entry, Assignment]:
    return (e, Assignment(story_id=story, new_story=fresh, score=score, evidence={"why": story}))


def setup_feeds(store: SqlStorage) -> None:
    store.sync_feeds(
        [
            FeedSpec(FEED_A, name="Outlet A", tags=("world",), priority=5),
            FeedSpec(FEED_B, tags=("tech",)),
            FeedSpec(FEED_C, name="Outlet C", tags=("world", "tech"), priority=1),
        ],
        T0,
    )


def count(store: SqlStorage, table: Any) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


# -- migrations ------------------------------------------------------------------------------


def test_migrations_applied_once_and_recorded(store: SqlStorage, db_url: str) -> None:
    assert store.schema_version() == latest_version()
    with store.engine.connect() as conn:
        rows = conn.execute(select(schema_migrations).order_by(schema_migrations.c.version)).all()
    assert [(r.version, r.name) for r in rows] == [(m.version, m.name) for m in MIGRATIONS]
    assert all(r.applied_at.tzinfo is UTC for r in rows)

    again = open_storage(db_url)
    try:
        assert again.migrate() == []
        with again.engine.connect() as conn:
            reread = conn.execute(select(schema_migrations).order_by("version")).all()
        assert reread == rows
    finally:
        again.close()


# The tables FTS5 keeps for an external-content table (its text stays in ``entries``).
FTS5_SHADOW_TABLES = ("data", "idx", "config", "docsize")


def test_migrated_database_matches_schema_module(store: SqlStorage) -> None:
    """The migrated database has what ``schema.py`` describes, and the search objects of
    ``search.py`` (which SQLAlchemy's metadata cannot describe) on each backend."""
    inspector = inspect(store.engine)
    search_tables: set[str] = set()
    if store.dialect == "sqlite":
        search_tables = {search.FTS_TABLE} | {
            f"{search.FTS_TABLE}_{shadow}" for shadow in FTS5_SHADOW_TABLES
        }
    assert set(inspector.get_table_names()) == set(metadata.tables) | search_tables
    for name, table in metadata.tables.items():
        assert {c["name"] for c in inspector.get_columns(name)} == set(table.columns.keys()), name
        stored_indexes = {ix["name"] for ix in inspector.get_indexes(name)}
        assert {ix.name for ix in table.indexes} <= stored_indexes, name
    with store.engine.connect() as conn:
        if store.dialect == "sqlite":
            rows = conn.execute(text("SELECT type, name, tbl_name, sql FROM sqlite_master"))
            objects = {(kind, name): (table, sql) for kind, name, table, sql in rows}
            fts = objects[("table", search.FTS_TABLE)][1]
            assert "content='entries'" in fts and "remove_diacritics 0" in fts
            for trigger in search.FTS_TRIGGERS:
                assert objects[("trigger", trigger)][0] == "entries", trigger
        else:
            (definition,) = conn.execute(
                text("SELECT indexdef FROM pg_indexes WHERE indexname = :name"),
                {"name": search.PG_SEARCH_INDEX},
            ).scalars()
            assert "USING gin" in definition and "to_tsvector('simple'" in definition


def test_database_newer_than_code_is_refused(store: SqlStorage, db_url: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(schema_migrations.insert().values(version=999, name="future", applied_at=T0))
    with pytest.raises(StorageError, match="newer"):
        open_storage(db_url)


def test_unsupported_url_is_refused() -> None:
    with pytest.raises(StorageError, match="unsupported"):
        open_storage("mysql://localhost/x")


# -- feeds -----------------------------------------------------------------------------------


def test_sync_feeds_inserts_updates_and_deactivates(store: SqlStorage) -> None:
    setup_feeds(store)
    a = store.get_feed(FEED_A)
    assert a is not None
    assert (a.name, a.tags, a.priority, a.active, a.next_due) == (
        "Outlet A",
        ("world",),
        5,
        True,
        T0,
    )
    assert a.interval == timedelta(minutes=15)
    store.store_refresh(FeedRefresh(FEED_B, ok_state(), (new(entry(FEED_B, "b1"), "s1"),)))

    later = T0 + timedelta(hours=1)
    store.sync_feeds([FeedSpec(FEED_A, name="Renamed", interval=timedelta(minutes=5))], later)
    assert [f.url for f in store.list_feeds()] == [FEED_A]
    everything = {f.url: f for f in store.list_feeds(include_inactive=True)}
    assert set(everything) == {FEED_A, FEED_B, FEED_C}
    assert not everything[FEED_B].active and not everything[FEED_C].active
    renamed = everything[FEED_A]
    assert (renamed.name, renamed.tags, renamed.priority) == ("Renamed", (), 0)
    assert renamed.interval == timedelta(minutes=5)
    assert renamed.next_due == T0  # an existing feed keeps its schedule
    # A removed feed's entries and stories stay.
    assert store.get_story("s1") is not None
    assert store.due_feeds(later) == [renamed]

    setup_feeds(store)
    assert len(store.list_feeds()) == 3


def test_due_feeds(store: SqlStorage) -> None:
    setup_feeds(store)
    store.store_refresh(FeedRefresh(FEED_A, ok_state()))  # next due T0 + 15 min
    store.sync_feeds([FeedSpec(FEED_A), FeedSpec(FEED_B)], T0)  # C inactive
    assert [f.url for f in store.due_feeds(T0)] == [FEED_B]
    assert [f.url for f in store.due_feeds(T0 + timedelta(minutes=15))] == [FEED_B, FEED_A]


def test_failures_counter_and_validators_kept_on_error(store: SqlStorage) -> None:
    setup_feeds(store)
    store.store_refresh(
        FeedRefresh(FEED_A, ok_state(etag='"e1"', last_modified="Wed", body_hash="b1", title="A"))
    )
    for n in (1, 2):
        polled = T0 + timedelta(minutes=n)
        failed = FeedStateUpdate(polled, polled + timedelta(minutes=30), 503, "HTTP 503")
        store.store_refresh(FeedRefresh(FEED_A, failed))
        state = store.get_feed(FEED_A)
        assert state is not None
        assert (state.failures, state.status, state.error) == (n, 503, "HTTP 503")
        assert (state.etag, state.last_modified, state.body_hash) == ('"e1"', "Wed", "b1")
        assert state.title == "A" and state.last_polled == polled

    store.store_refresh(FeedRefresh(FEED_A, ok_state(T0 + timedelta(hours=1), etag=None)))
    state = store.get_feed(FEED_A)
    assert state is not None
    assert (state.failures, state.error, state.etag, state.title) == (0, None, None, "A")


def test_refresh_of_unknown_feed_inserts_it(store: SqlStorage) -> None:
    store.store_refresh(FeedRefresh(FEED_A, ok_state()))
    state = store.get_feed(FEED_A)
    assert state is not None and state.active and state.last_polled == T0


# -- store_refresh ---------------------------------------------------------------------------


def test_store_refresh_writes_state_entries_and_stories(store: SqlStorage) -> None:
    setup_feeds(store)
    e1, e2 = entry(FEED_A, "a1", "Quake"), entry(FEED_A, "a2", "Vote")
    store.store_refresh(FeedRefresh(FEED_A, ok_state(), (new(e1, "s1"), new(e2, "s2"))))
    assert store.entry_hashes(FEED_A, ["a1", "a2", "zz"]) == {"a1": "h1", "a2": "h1"}
    assert store.entry_hashes(FEED_B, ["a1"]) == {}
    state = store.get_feed(FEED_A)
    assert (
        state is not None and state.etag == '"e1"' and state.next_due == T0 + timedelta(minutes=15)
    )

    joined = entry(FEED_B, "b1", "Quake!", published=T0 + timedelta(minutes=3))
    polled = T0 + timedelta(minutes=5)
    store.store_refresh(FeedRefresh(FEED_B, ok_state(polled), (new(joined, "s1", fresh=False),)))
    story = store.get_story("s1")
    assert story is not None
    assert [(s.feed_url, s.entry_id) for s in story.sources] == [(FEED_A, "a1"), (FEED_B, "b1")]
    assert story.updated == polled
    assert count(store, stories) == 2


def test_failed_refresh_leaves_nothing_behind(store: SqlStorage) -> None:
    setup_feeds(store)
    good = new(entry(FEED_A, "a1"), "s1")
    # A title the schema refuses: the entries' insert fails after the state and the stories
    # were already written in the same transaction.
    untitled = new(replace(entry(FEED_A, "a2"), title=None), "s2")  # type: ignore[arg-type]
    with pytest.raises(StorageError) as info:
        store.store_refresh(FeedRefresh(FEED_A, ok_state(), (good, untitled)))
    assert info.value.__cause__ is not None
    state = store.get_feed(FEED_A)
    assert state is not None
    assert (state.last_polled, state.etag, state.next_due) == (None, None, T0)
    assert (count(store, entries), count(store, stories), count(store, story_entries)) == (0, 0, 0)


def test_exception_mid_refresh_rolls_back(store: SqlStorage, monkeypatch: Any) -> None:
    setup_feeds(store)

    def crash(*_args: object) -> None:
        raise RuntimeError("crash before commit")

    monkeypatch.setattr(storage_writes, "touch_stories", crash)
    refresh = FeedRefresh(FEED_A, ok_state(), (new(entry(FEED_A, "a1"), "s1"),))
    with pytest.raises(RuntimeError):
        store.store_refresh(refresh)
    state = store.get_feed(FEED_A)
    assert state is not None and state.last_polled is None
    assert count(store, entries) == 0

    monkeypatch.undo()
    store.store_refresh(refresh)
    assert count(store, entries) == 1


def test_replaying_a_refresh_is_harmless(store: SqlStorage) -> None:
    setup_feeds(store)
    refresh = FeedRefresh(
        FEED_A, ok_state(), (new(entry(FEED_A, "a1"), "s1"), new(entry(FEED_A, "a2"), "s2"))
    )
    store.store_refresh(refresh)
    before = store.recent_stories(10)
    store.store_refresh(refresh)
    assert store.recent_stories(10) == before
    assert (count(store, entries), count(store, stories), count(store, story_entries)) == (2, 2, 2)

    # The same entries offered again as new with different (freshly minted) stories keep their
    # story, and no empty story is created.
    store.store_refresh(FeedRefresh(FEED_A, ok_state(), (new(entry(FEED_A, "a1"), "s9"),)))
    assert count(store, stories) == 2
    assert store.get_story("s9") is None


def test_changed_entry_updated_in_place_keeps_story(store: SqlStorage) -> None:
    setup_feeds(store)
    store.store_refresh(FeedRefresh(FEED_A, ok_state(), (new(entry(FEED_A, "a1", "Old"), "s1"),)))
    edited = entry(FEED_A, "a1", "New headline", content_hash="h2")
    edited = Entry(**{**_fields(edited), "first_seen": T0 + timedelta(hours=5)})
    polled = T0 + timedelta(hours=1)
    store.store_refresh(FeedRefresh(FEED_A, ok_state(polled), changed_entries=(edited,)))
    assert store.entry_hashes(FEED_A, ["a1"]) == {"a1": "h2"}
    story = store.get_story("s1")
    assert story is not None
    assert story.title == "New headline" and story.updated == polled
    (stored,) = store.entries_since(T0)
    assert stored.story_id == "s1"
    assert stored.entry.first_seen == T0  # first_seen is when we first saw it, never rewritten
    assert count(store, entries) == 1


def _fields(e: Entry) -> dict[str, Any]:
    return {name: getattr(e, name) for name in Entry.__slots__}


def test_bulk_refresh_uses_a_bounded_number_of_statements(store: SqlStorage) -> None:
    setup_feeds(store)
    big = tuple(new(entry(FEED_A, f"a{i}"), f"s{i}") for i in range(BULK_ENTRIES))
    statements = _count_statements(store)
    store.store_refresh(FeedRefresh(FEED_A, ok_state(), big))
    assert len(statements) <= MAX_REFRESH_STATEMENTS, statements
    statements.clear()
    assert len(store.recent_stories(BULK_ENTRIES)) == BULK_ENTRIES
    assert len(statements) <= MAX_LIST_STATEMENTS, statements


# 1200 entries: more than two IN chunks (500 ids each), so chunking is exercised too.
BULK_ENTRIES = 1200
# Measured 16 on SQLite, 15 on PostgreSQL (BEGIN, state, link and merge lookups, inserts, story
# touches, and the new rank: 3 chunks of aggregates and one executemany); a per-row pattern would
# need thousands. The slack covers driver batching.
MAX_REFRESH_STATEMENTS = 20
# Measured 5: BEGIN, the story heads, 3 chunks of sources; one query per story would be 1200.
MAX_LIST_STATEMENTS = 8


def _count_statements(store: SqlStorage) -> list[str]:
    seen: list[str] = []

    def record(_c: Any, _cur: Any, statement: str, *_rest: Any) -> None:
        seen.append(statement.split(None, 1)[0])

    event.listen(store.engine, "before_cursor_execute", record)
    return seen


# -- reading ---------------------------------------------------------------------------------


def test_datetimes_round_trip_as_utc(store: SqlStorage) -> None:
    setup_feeds(store)
    plus_two = timezone(timedelta(hours=2))
    published = datetime(2024, 5, 1, 14, 30, 15, 123456, tzinfo=plus_two)
    store.store_refresh(
        FeedRefresh(FEED_A, ok_state(), (new(entry(FEED_A, "a1", published=published), "s1"),))
    )
    (stored,) = store.entries_since(datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC))
    assert stored.entry.published == published
    assert stored.entry.published.tzinfo is UTC
    assert stored.entry.published.hour == 12
    # Just after it: excluded, so the comparison is by instant, not by stored text.
    assert store.entries_since(published + timedelta(microseconds=1)) == []
    with pytest.raises(ValueError, match="naive"):
        store.due_feeds(datetime(2024, 5, 1))


def test_window_page_reads_the_window_page_by_page_in_key_order(store: SqlStorage) -> None:
    setup_feeds(store)
    same_time = [entry(FEED_B, "b2"), entry(FEED_A, "a9"), entry(FEED_B, "b1")]
    store.store_refresh(FeedRefresh(FEED_B, ok_state(), (new(same_time[0], "s1"),)))
    store.store_refresh(FeedRefresh(FEED_A, ok_state(), (new(same_time[1], "s1", fresh=False),)))
    store.store_refresh(FeedRefresh(FEED_B, ok_state(), (new(same_time[2], "s2"),)))
    earlier = entry(FEED_C, "c1", published=T0 - timedelta(hours=1))
    too_old = entry(FEED_C, "c0", published=T0 - timedelta(days=2))
    store.store_refresh(FeedRefresh(FEED_C, ok_state(), (new(earlier, "s3"), new(too_old, "s4"))))
    since = T0 - timedelta(days=1)

    pages, after = [], None
    while page := store.window_page(since, after, 2):
        pages.append([(e.key, story_id) for e, story_id in page])
        last = page[-1][0]
        after = (last.published, last.feed_url, last.entry_id)
    # Oldest first, then by feed and entry id; never the entry outside the window; every
    # entry exactly once across pages, ties in published time included.
    assert pages == [
        [((FEED_C, "c1"), "s3"), ((FEED_A, "a9"), "s1")],
        [((FEED_B, "b1"), "s2"), ((FEED_B, "b2"), "s1")],
    ]
    assert store.window_page(since, None, 10)[1][0] == same_time[1]  # the whole entry


def test_window_start_is_where_the_newest_entries_begin(store: SqlStorage) -> None:
    setup_feeds(store)
    times = [T0 - timedelta(hours=h) for h in (3, 2, 2, 1)]
    items = [entry(FEED_A, f"a{n}", published=when) for n, when in enumerate(times)]
    store.store_refresh(
        FeedRefresh(FEED_A, ok_state(), tuple(new(e, f"s{n}") for n, e in enumerate(items)))
    )
    since = T0 - timedelta(days=1)
    assert store.window_start(since, 1) == T0 - timedelta(hours=1)
    assert store.window_start(since, 2) == T0 - timedelta(hours=2)
    assert store.window_start(since, 3) == T0 - timedelta(hours=2)  # ties: both are kept
    assert store.window_start(since, 4) == T0 - timedelta(hours=3)
    assert store.window_start(since, 5) == since  # fewer entries than the bound
    assert store.window_start(T0 - timedelta(minutes=90), 2) == T0 - timedelta(minutes=90)


def test_entries_since_names_feeds_and_orders_oldest_first(store: SqlStorage) -> None:
    setup_feeds(store)
    store.store_refresh(
        FeedRefresh(FEED_B, ok_state(title="B's title"), (new(entry(FEED_B, "b1"), "s1"),))
    )
    early = entry(FEED_A, "a1", published=T0 - timedelta(hours=1))
    store.store_refresh(FeedRefresh(FEED_A, ok_state(), (new(early, "s1", fresh=False),)))
    store.store_refresh(
        FeedRefresh(
            FEED_C, ok_state(), (new(entry(FEED_C, "c1", published=T0 - timedelta(days=2)), "s2"),)
        )
    )
    got = store.entries_since(T0 - timedelta(days=1))
    assert [(s.entry.entry_id, s.feed_name, s.feed_priority) for s in got] == [
        ("a1", "Outlet A", 5),
        ("b1", "B's title", 0),
    ]
    assert all(s.story_id == "s1" for s in got)


def _three_stories(store: SqlStorage) -> None:
    setup_feeds(store)
    t = [T0 + timedelta(minutes=m) for m in (1, 2, 3)]
    store.store_refresh(FeedRefresh(FEED_A, ok_state(t[0]), (new(entry(FEED_A, "a1"), "one"),)))
    store.store_refresh(
        FeedRefresh(
            FEED_B,
            ok_state(t[1]),
            (new(entry(FEED_B, "b1"), "one", fresh=False), new(entry(FEED_B, "b2"), "two")),
        )
    )
    store.store_refresh(FeedRefresh(FEED_C, ok_state(t[2]), (new(entry(FEED_C, "c1"), "three"),)))


def test_recent_stories_order_min_sources_and_tag(store: SqlStorage) -> None:
    _three_stories(store)
    # "one" was touched at t1, "two" at t1 too (tie broken by id, descending), "three" at t2.
    assert [s.id for s in store.recent_stories(10)] == ["three", "two", "one"]
    assert [s.id for s in store.recent_stories(2)] == ["three", "two"]
    assert [s.id for s in store.recent_stories(10, min_sources=2)] == ["one"]
    assert [s.id for s in store.recent_stories(10, tag="world")] == ["three", "one"]
    assert [s.id for s in store.recent_stories(10, tag="tech")] == ["three", "two", "one"]
    assert [s.id for s in store.recent_stories(10, tag="tech", min_sources=2)] == ["one"]
    assert store.recent_stories(10, tag="sport") == []
    assert store.recent_stories(0) == []
    one = store.recent_stories(10, min_sources=2)[0]
    assert len(one.sources) == 2
    assert one.title == "Title"
    assert one.sources[0].feed_name in {"Outlet A", FEED_B}


def test_get_story_round_trips_evidence(store: SqlStorage) -> None:
    setup_feeds(store)
    evidence = {"title": 0.91, "terms": ["séisme", "tokyo"], "nested": {"ok": True, "n": None}}
    store.store_refresh(
        FeedRefresh(FEED_B, ok_state(), (new(entry(FEED_B, "b1", "B says"), "s1"),))
    )
    a1 = entry(FEED_A, "a1", "A says", published=T0 + timedelta(minutes=9))
    store.store_refresh(
        FeedRefresh(FEED_A, ok_state(), ((a1, Assignment("s1", False, 0.875, evidence)),))
    )
    story = store.get_story("s1")
    assert story is not None
    source = {s.entry_id: s for s in story.sources}["a1"]
    assert (source.score, dict(source.evidence)) == (0.875, evidence)
    assert source.url == f"{FEED_A}/a1" and source.priority == 5
    assert story.title == "A says"  # the higher-priority outlet gives the headline
    assert story.first_published == T0
    assert store.get_story("nope") is None


# -- corrections -----------------------------------------------------------------------------


def test_split_moves_the_entry_and_is_remembered(store: SqlStorage) -> None:
    _three_stories(store)
    later = T0 + timedelta(hours=1)
    store.record_split(FEED_B, "b1", "split1", later)
    one, moved = store.get_story("one"), store.get_story("split1")
    assert one is not None and moved is not None
    assert [s.entry_id for s in one.sources] == ["a1"]
    assert [s.entry_id for s in moved.sources] == ["b1"]
    assert one.updated == later
    (fix,) = store.corrections()
    assert (fix.kind, fix.feed_url, fix.entry_id, fix.story_id, fix.target_story_id) == (
        "split",
        FEED_B,
        "b1",
        "one",
        "split1",
    )
    assert fix.created == later
    with pytest.raises(LookupError):
        store.record_split(FEED_B, "nope", "x", later)
    with pytest.raises(ValueError, match="in use"):
        store.record_split(FEED_A, "a1", "two", later)


def test_merge_moves_entries_and_redirects(store: SqlStorage) -> None:
    _three_stories(store)
    later = T0 + timedelta(hours=1)
    store.record_merge("one", "two", later)
    merged = store.get_story("one")
    assert merged is not None
    assert sorted(s.entry_id for s in merged.sources) == ["a1", "b1", "b2"]
    assert store.get_story("two") == merged  # old links keep working
    assert [s.id for s in store.recent_stories(10)] == ["one", "three"]
    (fix,) = store.corrections()
    assert (fix.kind, fix.story_id, fix.target_story_id, fix.entry_id) == (
        "merge",
        "two",
        "one",
        None,
    )

    # A matcher that still believes in "two" is redirected to "one".
    store.store_refresh(
        FeedRefresh(FEED_C, ok_state(later), (new(entry(FEED_C, "c2"), "two", fresh=False),))
    )
    merged = store.get_story("one")
    assert merged is not None and len(merged.sources) == 4

    with pytest.raises(ValueError, match="already merged"):
        store.record_merge("three", "two", later)
    with pytest.raises(ValueError, match="itself"):
        store.record_merge("one", "one", later)
    with pytest.raises(LookupError):
        store.record_merge("one", "nope", later)


# -- SQLite specifics ------------------------------------------------------------------------


def test_a_file_uri_opens_the_database_it_names(tmp_path: Any) -> None:
    path = tmp_path / "named.db"
    storage = open_storage(f"sqlite:///file:{path}?mode=rwc&uri=true")
    try:
        setup_feeds(storage)
        assert storage.engine.pool.size() == SQLITE_POOL_SIZE  # type: ignore[attr-defined]
    finally:
        storage.close()
    assert path.exists()


def test_sqlite_file_keeps_few_connections_open(tmp_path: Any) -> None:
    storage = open_storage(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        assert storage.engine.pool.size() == SQLITE_POOL_SIZE  # type: ignore[attr-defined]
    finally:
        storage.close()


def test_sqlite_file_is_wal_and_intact(tmp_path: Any) -> None:
    path = tmp_path / "deep" / "folder" / "db.sqlite"
    storage = open_storage(f"sqlite:///{path}")
    try:
        setup_feeds(storage)
        storage.store_refresh(FeedRefresh(FEED_A, ok_state(), (new(entry(FEED_A, "a1"), "s1"),)))
        with storage.engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
            assert conn.execute(text("PRAGMA synchronous")).scalar_one() == 1  # NORMAL
            assert conn.execute(text("PRAGMA busy_timeout")).scalar_one() > 0
            assert conn.execute(text("PRAGMA integrity_check")).scalar_one() == "ok"
            assert conn.execute(text("PRAGMA foreign_key_check")).all() == []
    finally:
        storage.close()
    assert path.exists()


def test_upgrade_from_version_1_keeps_data(db_url: str, monkeypatch: Any) -> None:
    monkeypatch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:1])
    old = open_storage(db_url)
    try:
        assert old.schema_version() == 1
        assert "claimed_by" not in {c["name"] for c in inspect(old.engine).get_columns("feeds")}
        old.sync_feeds([FeedSpec(FEED_A, name="A", interval=timedelta(seconds=60))], T0)
    finally:
        old.close()
    monkeypatch.undo()

    upgraded = open_storage(db_url)
    try:
        assert upgraded.schema_version() == migrations.latest_version() == 6
        (feed,) = upgraded.claim_due_feeds("w1", T0, timedelta(minutes=5), 10)
        assert (feed.url, feed.name, feed.interval) == (FEED_A, "A", timedelta(seconds=60))
    finally:
        upgraded.close()


# -- several workers -------------------------------------------------------------------------

LEASE = timedelta(minutes=5)


@pytest.fixture
def second(db_url: str, store: SqlStorage) -> Iterator[SqlStorage]:
    """Another worker: its own storage object (and pool) on the same database."""
    other = open_storage(db_url)
    yield other
    other.close()


def test_claims_are_exclusive_and_leases_expire(store: SqlStorage, second: SqlStorage) -> None:
    setup_feeds(store)
    first = store.claim_due_feeds("w1", T0, LEASE, 2)
    assert [f.url for f in first] == [FEED_A, FEED_B]
    rest = second.claim_due_feeds("w2", T0, LEASE, 5)
    assert [f.url for f in rest] == [FEED_C]
    assert store.claim_due_feeds("w1", T0 + timedelta(minutes=1), LEASE, 5) == []
    assert store.claim_due_feeds("w1", T0, LEASE, 0) == []

    # w1 polls A (which releases it and moves it forward) and crashes holding B.
    store.store_refresh(FeedRefresh(FEED_A, ok_state(T0 + timedelta(minutes=1))))
    second.store_refresh(FeedRefresh(FEED_C, ok_state(T0 + timedelta(minutes=1))))
    after_lease = T0 + LEASE
    retaken = second.claim_due_feeds("w2", after_lease, LEASE, 5)
    assert [f.url for f in retaken] == [FEED_B]
    # Within w2's lease nobody gets B; the polled feeds are not due before their next_due.
    just_before = after_lease + LEASE - timedelta(seconds=1)
    assert store.claim_due_feeds("w1", just_before, LEASE, 5) == []


# Feeds and claimers of the concurrent test: enough rounds that claims overlap in time.
CONCURRENT_FEEDS = 40
CLAIMERS = 4


def test_concurrent_claimers_never_share_a_feed(store: SqlStorage, second: SqlStorage) -> None:
    store.sync_feeds([FeedSpec(f"https://f{i:02}.example/") for i in range(CONCURRENT_FEEDS)], T0)
    claimed: dict[str, list[str]] = {}
    start = threading.Barrier(CLAIMERS)

    def work(name: str, storage: SqlStorage) -> None:
        start.wait()
        mine: list[str] = []
        while batch := storage.claim_due_feeds(name, T0, LEASE, 3):
            mine += [f.url for f in batch]
        claimed[name] = mine

    workers = [
        threading.Thread(target=work, args=(f"w{i}", store if i % 2 else second))
        for i in range(CLAIMERS)
    ]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=60)
    every = [url for urls in claimed.values() for url in urls]
    assert len(claimed) == CLAIMERS
    assert len(every) == len(set(every)) == CONCURRENT_FEEDS


def test_matching_lock_serialises_workers(store: SqlStorage, second: SqlStorage) -> None:
    setup_feeds(store)
    inside = threading.Event()
    order: list[str] = []

    def other_worker() -> None:
        inside.wait(timeout=10)
        with second.matching_lock():
            order.append("second in")
            # Everything the first holder stored is visible once we hold the lock.
            order.append(f"sees {len(second.entries_since(T0))}")

    thread = threading.Thread(target=other_worker)
    thread.start()
    with store.matching_lock():
        inside.set()
        with store.matching_lock():  # re-entrant in the same thread
            store.store_refresh(FeedRefresh(FEED_A, ok_state(), (new(entry(FEED_A, "a1"), "s1"),)))
        thread.join(timeout=LOCK_WAIT_S)
        assert thread.is_alive(), "the second worker got the lock while it was held"
        order.append("first out")
    thread.join(timeout=10)
    assert order == ["first out", "second in", "sees 1"]


# How long the second worker is given to (wrongly) get a held lock; it normally tries at once.
LOCK_WAIT_S = 0.5


def test_failed_store_inside_matching_lock_undoes_only_itself(store: SqlStorage) -> None:
    setup_feeds(store)
    with store.matching_lock():
        store.store_refresh(FeedRefresh(FEED_A, ok_state(), (new(entry(FEED_A, "a1"), "s1"),)))
        untitled = replace(entry(FEED_B, "b1"), title=None)  # type: ignore[arg-type]
        with pytest.raises(StorageError):
            store.store_refresh(FeedRefresh(FEED_B, ok_state(), (new(untitled, "s2"),)))
        store.store_refresh(FeedRefresh(FEED_C, ok_state(), (new(entry(FEED_C, "c1"), "s3"),)))
    assert sorted(s.id for s in store.recent_stories(10)) == ["s1", "s3"]
    feed_b = store.get_feed(FEED_B)
    assert feed_b is not None and feed_b.last_polled is None


def test_publish_lock_admits_one_worker(store: SqlStorage, second: SqlStorage) -> None:
    with store.publish_lock() as mine:
        assert mine
        with second.publish_lock() as theirs:
            assert not theirs
    with second.publish_lock() as theirs:
        assert theirs


def test_gone_feed_is_never_due_nor_claimed(store: SqlStorage) -> None:
    store.sync_feeds([FeedSpec(FEED_A), FeedSpec(FEED_B)], T0)
    state = FeedStateUpdate(last_polled=T0, next_due=T0, status=410, error="HTTP 410 Gone")
    store.store_refresh(FeedRefresh(FEED_A, replace(state, gone=True)))
    later = T0 + timedelta(days=30)
    assert [f.url for f in store.due_feeds(later)] == [FEED_B]
    assert [f.url for f in store.claim_due_feeds("w", later, timedelta(minutes=5), 10)] == [FEED_B]
    gone = store.get_feed(FEED_A)
    assert gone is not None and gone.gone and gone.status == 410


def test_adaptive_interval_round_trip(store: SqlStorage) -> None:
    store.sync_feeds([FeedSpec(FEED_A, interval=timedelta(minutes=15))], T0)
    ok = FeedStateUpdate(last_polled=T0, next_due=T0, status=200, error=None)
    store.store_refresh(FeedRefresh(FEED_A, replace(ok, poll_interval=timedelta(minutes=7))))
    feed = store.get_feed(FEED_A)
    assert feed is not None and feed.effective_interval == timedelta(minutes=7)
    # A poll that learnt nothing new about the rate keeps the adapted interval.
    store.store_refresh(FeedRefresh(FEED_A, ok))
    feed = store.get_feed(FEED_A)
    assert feed is not None and feed.poll_interval == timedelta(minutes=7)
    assert feed.interval == timedelta(minutes=15)


def test_entries_after_returns_what_others_stored_in_write_order(
    store: SqlStorage, second: SqlStorage
) -> None:
    setup_feeds(store)
    _, start = second.entries_after(0)
    assert start == 0 == second.newest_seq()
    store.store_refresh(FeedRefresh(FEED_A, ok_state(), (new(entry(FEED_A, "a1"), "s1"),)))
    store.store_refresh(
        FeedRefresh(FEED_B, ok_state(), (new(entry(FEED_B, "b1"), "s1", fresh=False),))
    )
    seen, newest = second.entries_after(start)
    assert [(s.entry.entry_id, s.story_id) for s in seen] == [("a1", "s1"), ("b1", "s1")]
    assert newest == 2 == second.newest_seq()
    assert second.entries_after(newest) == ([], newest)
    edited = replace(entry(FEED_A, "a1"), title="edited", content_hash="h2")
    store.store_refresh(FeedRefresh(FEED_A, ok_state(), changed_entries=(edited,)))
    seen, newest = second.entries_after(newest)
    assert [(s.entry.entry_id, s.entry.title) for s in seen] == [("a1", "edited")]
    assert newest == 3 == second.newest_seq()


def test_story_merges_in_a_refresh_are_applied_once(store: SqlStorage) -> None:
    setup_feeds(store)
    store.store_refresh(FeedRefresh(FEED_A, ok_state(), (new(entry(FEED_A, "a1"), "old"),)))
    refresh = FeedRefresh(
        FEED_B,
        ok_state(),
        (new(entry(FEED_B, "b1"), "young"),),
        story_merges=(("old", "young"),),
    )
    store.store_refresh(refresh)
    store.store_refresh(refresh)  # replayed after a crash: nothing new, no error
    story = store.get_story("old")
    assert story is not None
    assert sorted(s.entry_id for s in story.sources) == ["a1", "b1"]
    assert [(c.kind, c.story_id, c.target_story_id) for c in store.corrections()] == [
        ("merge", "young", "old")
    ]
    # A later merge naming the retired story follows it to the survivor.
    store.store_refresh(
        FeedRefresh(
            FEED_C,
            ok_state(),
            (new(entry(FEED_C, "c1"), "third"),),
            story_merges=(("young", "third"),),
        )
    )
    story = store.get_story("old")
    assert story is not None and len(story.sources) == 3
    # The index asks only for what was recorded since it last looked.
    first, second = store.corrections()
    assert store.corrections(after=first.id) == [second]
    assert store.corrections(after=second.id) == []
    assert store.newest_correction_id() == second.id
    assert store.corrections(kind="split") == []
    assert store.corrections(kind="merge") == [first, second]
    # Chains are followed to the surviving story; ids never merged are left out.
    assert store.surviving_stories(["young", "third", "old", "unknown"]) == {
        "young": "old",
        "third": "old",
    }


def test_the_window_names_the_stories_that_survived_merges(store: SqlStorage) -> None:
    """A link written while a merge by hand moved its story's entries may still name the merged
    story: the index loads the window with the survivor instead of replaying every merge."""
    setup_feeds(store)
    assert store.newest_correction_id() == 0
    store.store_refresh(FeedRefresh(FEED_A, ok_state(), (new(entry(FEED_A, "a1"), "old"),)))
    store.store_refresh(FeedRefresh(FEED_B, ok_state(), (new(entry(FEED_B, "b1"), "young"),)))
    store.record_merge("old", "young", T0)
    with store.engine.begin() as conn:  # the link a racing write left behind
        conn.execute(
            update(story_entries).where(story_entries.c.entry_id == "b1").values(story_id="young")
        )
    page = store.window_page(T0 - timedelta(days=1), None, 10)
    assert sorted((e.entry_id, story) for e, story in page) == [("a1", "old"), ("b1", "old")]


def test_store_refreshes_writes_a_batch_all_or_none(store: SqlStorage) -> None:
    setup_feeds(store)
    polled = T0 + timedelta(hours=1)
    batch = [FeedRefresh(url, ok_state(polled, status=304)) for url in (FEED_A, FEED_B)]
    store.store_refreshes(batch)
    assert all(f.last_polled == polled for f in store.list_feeds() if f.url != FEED_C)
    stray = FeedRefresh(FEED_C, ok_state(polled), (new(entry(FEED_A, "x"), "s"),))
    later = polled + timedelta(hours=1)
    with pytest.raises(ValueError, match="entries of other feeds"):
        store.store_refreshes([FeedRefresh(FEED_A, ok_state(later)), stray])
    feed_a = store.get_feed(FEED_A)
    assert feed_a is not None and feed_a.last_polled == polled  # the batch was rolled back


def test_store_refreshes_batches_states_as_single_writes_would(store: SqlStorage) -> None:
    """The grouped state writes of a batch give what one store_refresh per feed gives:
    failures counted, validators kept on error, unknown feeds inserted, a feed named twice
    left with its later state."""
    setup_feeds(store)
    store.store_refresh(FeedRefresh(FEED_B, ok_state(etag='"b1"', title="B")))
    polled = T0 + timedelta(hours=1)
    failed = FeedStateUpdate(polled, polled + timedelta(minutes=30), 503, "HTTP 503")
    unknown = "https://new.example/feed"
    batch = [
        FeedRefresh(FEED_A, ok_state(polled, status=304, title="A")),
        FeedRefresh(FEED_B, failed),
        FeedRefresh(unknown, ok_state(polled, etag='"n1"')),
        FeedRefresh(FEED_C, ok_state(polled, etag='"c1"')),
    ]
    store.store_refreshes(batch)
    store.store_refreshes([FeedRefresh(FEED_B, failed)])
    a, b, c, n = (store.get_feed(u) for u in (FEED_A, FEED_B, FEED_C, unknown))
    assert a is not None and (a.status, a.title, a.last_polled) == (304, "A", polled)
    assert b is not None and (b.failures, b.error, b.etag, b.title) == (2, "HTTP 503", '"b1"', "B")
    assert c is not None and c.etag == '"c1"' and c.name == "Outlet C"
    assert n is not None and n.active and n.etag == '"n1"' and n.failures == 0

    later = polled + timedelta(minutes=5)
    store.store_refreshes(
        [FeedRefresh(FEED_A, ok_state(later, etag='"a1"')), FeedRefresh(FEED_A, failed)]
    )
    a = store.get_feed(FEED_A)
    assert a is not None and (a.failures, a.error, a.etag) == (1, "HTTP 503", '"a1"')


def test_requested_polls_make_every_pollable_feed_due_now(store: SqlStorage) -> None:
    """``aggregator poll`` beside a running service: every feed it would poll becomes due."""
    store.sync_feeds([FeedSpec(FEED_A), FeedSpec(FEED_B), FeedSpec(FEED_C)], T0)
    store.store_refresh(FeedRefresh(FEED_A, ok_state(T0)))  # next due in 15 minutes
    gone = FeedStateUpdate(last_polled=T0, next_due=T0, status=410, error="HTTP 410 Gone")
    store.store_refresh(FeedRefresh(FEED_B, replace(gone, gone=True)))
    store.sync_feeds([FeedSpec(FEED_A), FeedSpec(FEED_B)], T0)  # C no longer configured
    now = T0 + timedelta(minutes=1)
    assert [f.url for f in store.due_feeds(now)] == []
    assert store.request_polls(now) == 1
    assert [f.url for f in store.due_feeds(now)] == [FEED_A]
    feed_a = store.get_feed(FEED_A)
    assert feed_a is not None and feed_a.next_due == now
    # A feed due earlier keeps its place at the head of the queue.
    assert store.request_polls(now + timedelta(minutes=1)) == 1
    feed_a = store.get_feed(FEED_A)
    assert feed_a is not None and feed_a.next_due == now
