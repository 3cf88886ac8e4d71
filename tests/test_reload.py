"""Live reload of feeds.yml, with a real file edited on disk and real SQLite storage."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aggregator.config import Config, load_config
from aggregator.exceptions import StorageError
from aggregator.reload import ConfigWatcher
from aggregator.storage import open_storage

# Short enough that the tests take a fraction of a second; the service uses 2 s.
FAST = 0.02
# Generous bound for a reload to be noticed on a busy machine.
WAIT = 5.0

FEEDS = """\
# news feeds
settings:
  storage: {db}
feeds:
  - url: https://alpha.example/feed.xml   # first
    name: Alpha
  - url: https://beta.example/rss
    interval: 30m
"""


def _write(path: Path, text: str) -> None:
    # Replace the file the way editors do (write a new file, rename over the old one).
    temp = path.with_suffix(".tmp")
    temp.write_text(text, encoding="utf-8")
    temp.replace(path)


@pytest.fixture
def feeds_yml(tmp_path: Path) -> Path:
    path = tmp_path / "feeds.yml"
    path.write_text(FEEDS.format(db=tmp_path / "db.sqlite"), encoding="utf-8")
    return path


class Recorder:
    """An ``on_change`` that remembers each configuration and lets a test wait for the next."""

    def __init__(self) -> None:
        self.configs: list[Config] = []
        self.changed = asyncio.Event()

    async def __call__(self, config: Config) -> None:
        self.configs.append(config)
        self.changed.set()

    async def next(self) -> Config:
        await asyncio.wait_for(self.changed.wait(), WAIT)
        self.changed.clear()
        return self.configs[-1]


async def test_edit_on_disk_is_applied(feeds_yml: Path) -> None:
    recorder = Recorder()
    watcher = ConfigWatcher(feeds_yml, recorder, interval=FAST, current=load_config(feeds_yml))
    task = asyncio.create_task(watcher.run())
    try:
        await asyncio.sleep(FAST * 5)
        assert recorder.configs == []  # the file as it was at start is already applied
        text = feeds_yml.read_text()
        _write(feeds_yml, text + "  - url: https://gamma.example/atom\n    tags: [world]\n")
        config = await recorder.next()
        assert [f.url for f in config.feeds][-1] == "https://gamma.example/atom"
        assert config.feeds[-1].tags == ("world",)
        assert watcher.config is config
    finally:
        watcher.stop()
        await asyncio.wait_for(task, WAIT)


async def test_invalid_edit_is_logged_and_last_valid_config_kept(
    feeds_yml: Path, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()
    first = load_config(feeds_yml)
    watcher = ConfigWatcher(feeds_yml, recorder, interval=FAST, current=first)
    bad = feeds_yml.read_text().replace("interval: 30m", "interval: 5 minutes")
    _write(feeds_yml, bad)
    with caplog.at_level(logging.ERROR, logger="aggregator.reload"):
        assert await watcher.check() is False
        assert await watcher.check() is False  # the same bad version is reported once
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [
        f"{feeds_yml}:8: feeds[1].interval: '5 minutes' is not a duration like 15m or 1h;"
        " keeping the last valid configuration"
    ]
    assert watcher.config is first and recorder.configs == []
    assert watcher.last_error is not None and watcher.last_error.startswith(f"{feeds_yml}:8:")

    _write(feeds_yml, bad.replace("5 minutes", "45m"))
    assert await watcher.check() is True
    assert recorder.configs[-1].feeds[1].interval.total_seconds() == 45 * 60
    assert watcher.last_error is None


async def test_touch_without_change_does_not_reload(feeds_yml: Path) -> None:
    calls: list[Config] = []
    watcher = ConfigWatcher(feeds_yml, calls.append, interval=FAST)
    _write(feeds_yml, feeds_yml.read_text())  # new inode and mtime, same bytes
    assert await watcher.check() is False
    _write(feeds_yml, feeds_yml.read_text().replace("Alpha", "Alpha Wire"))
    assert await watcher.check() is True  # a plain function works as on_change too
    assert calls[-1].feeds[0].name == "Alpha Wire"


async def test_deleted_file_keeps_running(
    feeds_yml: Path, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[Config] = []
    watcher = ConfigWatcher(feeds_yml, calls.append, interval=FAST)
    text = feeds_yml.read_text()
    feeds_yml.unlink()
    with caplog.at_level(logging.ERROR, logger="aggregator.reload"):
        assert await watcher.check() is False
    assert "file not found" in caplog.text
    _write(feeds_yml, text.replace("Alpha", "Back"))
    assert await watcher.check() is True
    assert calls[-1].feeds[0].name == "Back"


async def test_failed_apply_is_retried(feeds_yml: Path) -> None:
    attempts: list[Config] = []

    def flaky(config: Config) -> None:
        attempts.append(config)
        if len(attempts) == 1:
            raise StorageError("database is locked")

    watcher = ConfigWatcher(feeds_yml, flaky, interval=FAST)
    _write(feeds_yml, feeds_yml.read_text().replace("30m", "20m"))
    assert await watcher.check() is False
    assert watcher.config is None
    assert await watcher.check() is True  # same content, applied on the next look
    assert len(attempts) == 2


async def test_reload_syncs_storage(feeds_yml: Path) -> None:
    """The wiring the service uses: added feeds due now, removed ones inactive."""
    config = load_config(feeds_yml)
    storage = open_storage(config.settings.storage_url)
    start = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    storage.sync_feeds(config.feeds, start)
    later = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)

    def apply(new: Config) -> None:
        storage.sync_feeds(new.feeds, later)

    try:
        watcher = ConfigWatcher(feeds_yml, apply, interval=FAST, current=config)
        text = feeds_yml.read_text()
        edited = text.replace("  - url: https://beta.example/rss\n    interval: 30m\n", "")
        _write(feeds_yml, edited + "  - url: https://gamma.example/atom\n    interval: 1h\n")
        assert await watcher.check() is True
        active = {f.url: f for f in storage.list_feeds()}
        assert set(active) == {"https://alpha.example/feed.xml", "https://gamma.example/atom"}
        assert active["https://gamma.example/atom"].next_due == later
        assert active["https://gamma.example/atom"].interval.total_seconds() == 3600
        everything = {f.url: f for f in storage.list_feeds(include_inactive=True)}
        assert everything["https://beta.example/rss"].active is False
    finally:
        storage.close()


def test_interval_must_be_positive(feeds_yml: Path) -> None:
    with pytest.raises(ValueError, match="interval must be positive"):
        ConfigWatcher(feeds_yml, lambda _c: None, interval=0)
