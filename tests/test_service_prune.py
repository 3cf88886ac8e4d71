"""The service prunes storage at start and every ``PRUNE_INTERVAL``, off the event loop; a
failure is logged, shows in ``/healthz`` when it repeats, and never stops the service."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from factories import make_entry
from test_hostile_service import NOW, _Runtime, _Updater, healthz, make_config

from aggregator.config import format_duration
from aggregator.exceptions import StorageError
from aggregator.health import REPEATED_FAILURES
from aggregator.service import PRUNE_INTERVAL, Service
from aggregator.storage import PruneResult, open_storage
from aggregator.storage.sql import SqlStorage
from aggregator.types import Assignment, FeedRefresh, FeedSpec, FeedStateUpdate

FEED = "https://outlet.example/feed"
KEPT = 3  # settings.max_entries_per_feed in these tests
STORED = 5


class _StoppingUpdater(_Updater):
    """What ``Service.run`` also uses of an updater when it stops."""

    async def drain(self) -> None:
        return None


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[Service, _Runtime]]:
    config = make_config(tmp_path, f"feeds:\n  - url: {FEED}\n")
    config = replace(config, settings=replace(config.settings, max_entries_per_feed=KEPT))
    storage = open_storage(config.settings.storage_url)
    assert isinstance(storage, SqlStorage)
    runtime = _Runtime(config, storage)
    runtime.failing = False
    runtime.updater = _StoppingUpdater()
    try:
        yield Service(runtime), runtime  # type: ignore[arg-type]
    finally:
        storage.close()


def fill(storage: SqlStorage, count: int = STORED) -> None:
    storage.sync_feeds([FeedSpec(FEED)], NOW)
    made = [
        make_entry(FEED, f"e{i}", f"t{i}", published=NOW - timedelta(minutes=i), content_hash="h")
        for i in range(count)
    ]
    state = FeedStateUpdate(last_polled=NOW, next_due=NOW, status=200, error=None)
    links = tuple((e, Assignment(f"s{e.entry_id}", True, 1.0)) for e in made)
    storage.store_refresh(FeedRefresh(FEED, state, links))


def service_log(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "aggregator.service"]


async def test_a_prune_that_removed_something_logs_one_line_and_republishes(
    service: tuple[Service, _Runtime], caplog: pytest.LogCaptureFixture
) -> None:
    svc, runtime = service
    fill(runtime.storage)
    with caplog.at_level(logging.INFO, logger="aggregator.service"):
        assert await svc.prune() == PruneResult(entries=STORED - KEPT, stories=STORED - KEPT)
        assert await svc.prune() == PruneResult()  # nothing more: no second line
    assert service_log(caplog) == [
        f"pruned {STORED - KEPT} entries and {STORED - KEPT} stories left empty "
        f"(retention 90d, at most {KEPT} entries per feed)"
    ]
    assert svc._dirty  # the published files may list a removed story


async def test_pruning_runs_off_the_event_loop(service: tuple[Service, _Runtime]) -> None:
    svc, runtime = service
    threads: list[threading.Thread] = []
    real = runtime.storage.prune

    def spy(now: datetime, **bounds: Any) -> PruneResult:
        threads.append(threading.current_thread())
        return real(now, **bounds)

    runtime.storage.prune = spy  # type: ignore[method-assign]
    await svc.prune()
    assert threads and threads[0] is not threading.main_thread()


async def test_a_failing_prune_is_logged_reported_and_retried(
    service: tuple[Service, _Runtime], caplog: pytest.LogCaptureFixture
) -> None:
    svc, runtime = service
    fill(runtime.storage)
    real = runtime.storage.prune

    def refused(now: datetime, **bounds: Any) -> PruneResult:
        raise StorageError("prune: database is locked")

    runtime.storage.prune = refused  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="aggregator.service"):
        for _ in range(REPEATED_FAILURES):
            assert await svc.prune() is None
    assert service_log(caplog)[0] == (
        f"pruning failed (1 in a row; next attempt in {format_duration(PRUNE_INTERVAL)}): "
        "prune: database is locked"
    )
    response = await healthz(svc)
    assert response.status_code == 503
    assert response.json()["problems"] == [
        f"pruning failed {REPEATED_FAILURES} times in a row: prune: database is locked"
    ]
    runtime.storage.prune = real  # type: ignore[method-assign]
    assert await svc.prune() == PruneResult(entries=STORED - KEPT, stories=STORED - KEPT)
    assert (await healthz(svc)).status_code == 200


async def test_a_bug_while_pruning_is_logged_with_its_traceback_not_fatal(
    service: tuple[Service, _Runtime], caplog: pytest.LogCaptureFixture
) -> None:
    svc, runtime = service

    def buggy(now: datetime, **bounds: Any) -> PruneResult:
        raise RuntimeError("a bug")

    runtime.storage.prune = buggy  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="aggregator.service"):
        assert await svc.prune() is None
    (record,) = [r for r in caplog.records if r.name == "aggregator.service"]
    assert record.exc_info is not None


async def test_the_service_prunes_at_start_and_every_interval(
    service: tuple[Service, _Runtime],
) -> None:
    svc, runtime = service
    calls: list[datetime] = []

    def counted(now: datetime, **bounds: Any) -> PruneResult:
        calls.append(now)
        return PruneResult()

    runtime.storage.prune = counted  # type: ignore[method-assign]
    running = asyncio.create_task(svc.run())
    for _ in range(100):
        if calls:
            break
        await asyncio.sleep(0.02)
    assert len(calls) == 1  # at start, not again before the interval
    svc.stop()
    await asyncio.wait_for(running, 10)

    # The loop itself, with a short interval: again and again until the service stops.
    svc._stopping.clear()
    loop = asyncio.create_task(svc._prune_every(timedelta(seconds=0.01)))
    while len(calls) < 4:
        await asyncio.sleep(0.01)
    svc.stop()
    await asyncio.wait_for(loop, 10)
