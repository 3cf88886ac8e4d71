"""Full-text search (``front_page(query=...)``, ``count_stories(query=...)``): one contract,
checked on SQLite (FTS5) and PostgreSQL (tsvector) alike (``test_storage``'s fixtures)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import test_storage
from factories import make_entry
from sqlalchemy import delete, text
from test_storage import FEED_A, FEED_B, FEED_C, T0, new, ok_state, setup_feeds

from aggregator.exceptions import StorageError
from aggregator.storage import SqlStorage, migrations, open_storage, search
from aggregator.storage.schema import entries
from aggregator.types import Entry, FeedRefresh

db_url = test_storage.db_url
store = test_storage.store


def article(feed: str, entry_id: str, title: str, summary: str = "", minutes: int = 0) -> Entry:
    return make_entry(
        feed,
        entry_id,
        title,
        summary=summary,
        published=T0 + timedelta(minutes=minutes),
        content_hash="h1",
    )


def put(store: SqlStorage, story_id: str, *items: Entry) -> None:
    """Store ``items`` as the one story ``story_id``."""
    for n, item in enumerate(items):
        linked = new(item, story_id, fresh=n == 0)
        store.store_refresh(FeedRefresh(item.feed_url, ok_state(), (linked,)))


def found(store: SqlStorage, query: str, **filters: Any) -> list[str]:
    stories = store.front_page(50, query=query, **filters)
    assert store.count_stories(query=query, **filters) == len(stories) or "offset" in filters
    return sorted(story.id for story in stories)


def _fill(store: SqlStorage) -> None:
    setup_feeds(store)
    put(store, "cafe", article(FEED_A, "a1", "Café in Zürich opens", "A new place"))
    put(store, "plain", article(FEED_B, "b1", "CAFE prices rise", "Coffee costs more"))
    put(store, "school", article(FEED_B, "b2", "ÉCOLE closes", "Teachers strike"))
    put(store, "party", article(FEED_B, "b3", "Party conference", "Delegates meet"))
    put(
        store,
        "lab",
        article(FEED_A, "a2", "State-of-the-art lab", "See example.com, v3.5 of the tool"),
        article(FEED_C, "c1", "Lab opens", "Researchers cheer"),
    )
    put(store, "quake", article(FEED_C, "c2", "Quake hits", "Tokyo shaken; a OR b near c"))


def test_words_match_whole_case_blind_and_accent_true(store: SqlStorage) -> None:
    _fill(store)
    assert found(store, "café") == found(store, "CAFÉ") == ["cafe"]
    assert found(store, "cafe") == ["plain"]  # accents count, both ways
    assert found(store, "zürich") == ["cafe"] and found(store, "zurich") == []
    assert found(store, "école") == ["school"]
    assert found(store, "art") == ["lab"]  # "State-of-the-art", never "party"
    assert found(store, "part") == []
    assert found(store, "example") == found(store, "com") == ["lab"]  # punctuation splits
    assert found(store, "v3") == found(store, "5") == ["lab"] and found(store, "3") == []
    # Every word, in the title or the summary of one entry; no stemming.
    assert found(store, "quake tokyo") == ["quake"]
    assert found(store, "quake paris") == []
    assert found(store, "quakes") == []
    # One matching entry is enough for its story, whatever the others say.
    assert found(store, "researchers") == ["lab"]


@pytest.mark.parametrize(
    "query",
    [
        '"a" OR b*) NEAR(',
        'quake"',
        "quake*",
        "NEAR(quake tokyo)",
        "title:quake",
        "^quake",
        "-tokyo quake",
        "quake AND",
        "'; DROP TABLE entries; --",
        "quake\x00tokyo",
        "quake & !tokyo | <-> :*",
        "{quake}",
    ],
)
def test_hostile_queries_are_words_and_never_raise(store: SqlStorage, query: str) -> None:
    _fill(store)
    words = set(search.query_words(query))
    expected = ["quake"] if words <= {"a", "or", "b", "near", "c", "quake", "tokyo"} else []
    assert found(store, query) == expected
    assert store.count_stories() == 6  # nothing was dropped


def test_queries_without_words_search_nothing(store: SqlStorage) -> None:
    _fill(store)
    everything = found(store, "")
    assert len(everything) == 6
    for query in ("   ", "!!! ***", '"', "x" * (search.MAX_WORD_CHARS + 1)):
        assert found(store, query) == everything
    assert sorted(s.id for s in store.front_page(50, query=None)) == everything


def test_search_combines_with_tag_min_sources_and_paging(store: SqlStorage) -> None:
    _fill(store)
    put(store, "lab2", article(FEED_B, "b9", "Another lab", minutes=-600))
    assert found(store, "lab") == ["lab", "lab2"]
    assert found(store, "lab", min_sources=2) == ["lab"]
    assert found(store, "lab", tag="world") == ["lab"]
    assert found(store, "lab", tag="tech") == ["lab", "lab2"]
    assert store.count_stories(query="lab", tag="sport") == 0
    first, second = (store.front_page(1, offset=n, query="lab") for n in (0, 1))
    assert [s.id for s in first + second] == [s.id for s in store.front_page(2, query="lab")]
    assert store.front_page(1, offset=2, query="lab") == []


def test_an_edited_entry_is_found_by_its_new_words_only(store: SqlStorage) -> None:
    _fill(store)
    edited = replace(article(FEED_B, "b3", "Election called", "Voters decide"), content_hash="h2")
    store.store_refresh(FeedRefresh(FEED_B, ok_state(), changed_entries=(edited,)))
    assert found(store, "election voters") == ["party"]
    assert found(store, "party") == found(store, "delegates") == []


def test_a_deleted_entry_is_gone_from_results(store: SqlStorage) -> None:
    _fill(store)
    with store.engine.begin() as conn:
        conn.execute(delete(entries).where(entries.c.entry_id == "a2"))
    assert found(store, "state art") == []
    assert found(store, "lab") == ["lab"]  # the story's other entry still says "lab"
    if store.dialect == "sqlite":
        with store.engine.begin() as conn:  # the FTS index agrees with its content table
            conn.execute(
                text(
                    f"INSERT INTO {search.FTS_TABLE}({search.FTS_TABLE}) VALUES ('integrity-check')"
                )
            )


def test_query_words() -> None:
    assert search.query_words("Straße  STRASSE") == ["straße", "strasse"]
    assert search.query_words("ﬁre foo_bar quake, quake!") == ["fire", "foo", "bar", "quake"]
    many = " ".join(f"w{n}" for n in range(search.MAX_QUERY_WORDS + 3))
    assert search.query_words(many) == [f"w{n}" for n in range(search.MAX_QUERY_WORDS)]
    long_word = "y" * (search.MAX_WORD_CHARS + 1)
    assert search.query_words(f"{long_word} ok {'z' * search.MAX_WORD_CHARS}") == [
        "ok",
        "z" * search.MAX_WORD_CHARS,
    ]
    assert search.query_words(None) == search.query_words("") == []
    assert search.fts5_query(['a"b', "c"]) == '"a""b" "c"'


def test_existing_entries_are_searchable_after_the_migration(db_url: str, monkeypatch: Any) -> None:
    monkeypatch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:4])
    old = open_storage(db_url)
    try:
        setup_feeds(old)
        put(old, "quake", article(FEED_C, "c2", "Quake hits", "Tokyo shaken"))
    finally:
        old.close()
    monkeypatch.undo()
    upgraded = open_storage(db_url)
    try:
        assert found(upgraded, "tokyo") == ["quake"]
    finally:
        upgraded.close()


def test_postgresql_search_uses_the_index(store: SqlStorage) -> None:
    if store.dialect != "postgresql":
        pytest.skip("the GIN index is PostgreSQL's")
    _fill(store)
    words = search.query_words("quake tokyo")
    with store.engine.connect() as conn:
        stmt = search.matching_story_ids(conn, words)
        conn.execute(text("SET enable_seqscan = off"))
        sql = stmt.compile(conn, compile_kwargs={"literal_binds": True})
        plan = "\n".join(conn.execute(text(f"EXPLAIN {sql}")).scalars())
    assert search.PG_SEARCH_INDEX in plan, plan


def test_sqlite_without_fts5_is_refused_clearly(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(search, "FTS5_MODULE", "no_such_fts_module")
    with pytest.raises(StorageError, match="lacks the FTS5 module"):
        open_storage(f"sqlite:///{tmp_path / 'db.sqlite'}")
