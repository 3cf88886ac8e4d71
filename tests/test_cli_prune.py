"""``aggregator prune`` as a real subprocess: what it removes and prints, its exit codes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from factories import make_entry
from test_cli import aggregator

from aggregator.storage import open_storage
from aggregator.types import Assignment, FeedRefresh, FeedSpec, FeedStateUpdate

FEED = "https://outlet.example/feed"


def write_config(folder: Path, settings: str) -> None:
    (folder / "feeds.yml").write_text(f"settings:\n{settings}feeds:\n  - url: {FEED}\n")


def fill(folder: Path, count: int) -> None:
    now = datetime.now(UTC)
    storage = open_storage(f"sqlite:///{folder / 'storage' / 'aggregator.db'}")
    try:
        storage.sync_feeds([FeedSpec(FEED)], now)
        made = [
            make_entry(FEED, f"e{i}", f"t{i}", published=now - timedelta(hours=i), content_hash="h")
            for i in range(count)
        ]
        state = FeedStateUpdate(last_polled=now, next_due=now, status=200, error=None)
        links = tuple((e, Assignment(f"s{i}", True, 1.0)) for i, e in enumerate(made))
        storage.store_refresh(FeedRefresh(FEED, state, links))
    finally:
        storage.close()


def test_prune_removes_what_is_past_the_bounds_and_says_how_much(tmp_path: Path) -> None:
    write_config(tmp_path, "  max_entries_per_feed: 2\n")
    fill(tmp_path, 5)
    done = aggregator("prune", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        "pruned 3 entries and 3 stories left empty (retention 90d, at most 2 entries per feed)\n"
    )
    again = aggregator("prune", cwd=tmp_path)
    assert again.returncode == 0 and again.stdout.startswith("pruned 0 entries and 0 stories")
    stories = aggregator("stories", "--json", cwd=tmp_path)
    assert stories.stdout.count('"id"') == 2


def test_prune_exits_2_on_a_bad_setting_and_1_when_storage_fails(tmp_path: Path) -> None:
    write_config(tmp_path, "  max_entries_per_feed: 0\n")
    bad = aggregator("prune", cwd=tmp_path)
    assert bad.returncode == 2
    assert "feeds.yml:2: settings.max_entries_per_feed: 0 is too small" in bad.stderr

    (tmp_path / "not-a-database").write_text("plain text, not SQLite")
    write_config(tmp_path, "  storage: not-a-database\n")
    broken = aggregator("prune", cwd=tmp_path)
    assert broken.returncode == 1
    assert broken.stderr.startswith("cannot open storage:")
