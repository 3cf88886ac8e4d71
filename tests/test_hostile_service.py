"""The service under hostile conditions of issue #19: what ``/healthz`` says when storing or
publishing keeps failing or a parse ran past its bound, the back-off of a failing publish
(a full disk was logged every 5 s), and claims a killed process left on an SQLite database.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import resource
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from aggregator.config import Config, load_config_text
from aggregator.health import OVERRUN_SHOWN_SECONDS, REPEATED_FAILURES, ServiceHealth
from aggregator.parse.budget import OVER_BUDGET
from aggregator.refresh.updater import RefreshResult
from aggregator.runtime import open_runtime
from aggregator.service import PUBLISH_RETRY_FIRST, PUBLISH_RETRY_MAX, Service, publish_retry_delay
from aggregator.storage import open_storage
from aggregator.storage.sql import SqlStorage
from aggregator.web import bind_socket, create_app, serve

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
DISK_FULL = OSError(errno.ENOSPC, "No space left on device")
TICKS = 10


def make_config(tmp_path: Path, feeds: str = "feeds: []\n") -> Config:
    text = f"settings:\n  storage: {tmp_path / 'db.sqlite'}\n  output: {tmp_path / 'out'}\n"
    return load_config_text(text + feeds, tmp_path / "feeds.yml")


class _Updater:
    async def reload_corrections(self) -> bool:
        return False

    async def expire(self, now: datetime) -> None:
        return None


class _Runtime:
    """What ``Service.tick`` and ``Service._publish`` use of a runtime, with a publisher that
    fails the way a full disk does until told otherwise."""

    def __init__(self, config: Config, storage: SqlStorage) -> None:
        self.config = config
        self.storage = storage
        self.updater = _Updater()
        self.clock: Callable[[], datetime] = lambda: NOW
        self.failing = True
        self.attempts = 0
        self.processes = "workers auto"  # what the start line names

    def publish_unless_busy(self, before: Callable[[], None]) -> int | None:
        self.attempts += 1
        if self.failing:
            raise DISK_FULL
        before()
        return 0


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[Service, _Runtime]]:
    config = make_config(tmp_path)
    storage = open_storage(config.settings.storage_url)
    assert isinstance(storage, SqlStorage)
    runtime = _Runtime(config, storage)
    try:
        yield Service(runtime), runtime  # type: ignore[arg-type]
    finally:
        storage.close()


async def healthz(service: Service) -> httpx.Response:
    runtime = service.runtime
    app = create_app(runtime.storage, settings=runtime.config.settings, health=service.health)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.get("/healthz")


def test_the_publish_retry_doubles_up_to_its_cap() -> None:
    assert publish_retry_delay(1) == PUBLISH_RETRY_FIRST
    assert publish_retry_delay(2) == PUBLISH_RETRY_FIRST * 2
    assert publish_retry_delay(3) == PUBLISH_RETRY_FIRST * 4
    assert publish_retry_delay(1000) == PUBLISH_RETRY_MAX


async def test_a_full_disk_is_retried_with_back_off_not_at_every_tick(
    service: tuple[Service, _Runtime], caplog: pytest.LogCaptureFixture
) -> None:
    svc, runtime = service
    svc._dirty = True
    with caplog.at_level(logging.ERROR, logger="aggregator.service"):
        for _ in range(TICKS):
            await svc.tick()
    assert runtime.attempts == 1
    errors = [r.getMessage() for r in caplog.records if r.name == "aggregator.service"]
    assert errors == [
        "publishing failed (1 in a row; next attempt in 5s): [Errno 28] No space left on device"
    ]
    assert svc._dirty  # nothing lost: published once the disk has room


async def test_healthz_is_degraded_while_publishing_fails_repeatedly(
    service: tuple[Service, _Runtime],
) -> None:
    svc, runtime = service
    for _ in range(REPEATED_FAILURES - 1):
        await svc._publish()
    assert (await healthz(svc)).status_code == 200  # once or twice is a passing hiccup
    await svc._publish()
    response = await healthz(svc)
    assert response.status_code == 503
    assert response.json() == {
        "status": "degraded",
        "db": "ok",
        "schema_version": response.json()["schema_version"],
        "problems": [
            f"publishing failed {REPEATED_FAILURES} times in a row:"
            " [Errno 28] No space left on device"
        ],
    }
    runtime.failing = False
    await svc._publish()
    assert (await healthz(svc)).json()["status"] == "ok"
    assert not svc._dirty


def result(error: str | None = None, *, storage_failed: bool = False) -> RefreshResult:
    return RefreshResult(
        "https://x.example/f", "X", None, 0, 0, error, 0.1, storage_failed=storage_failed
    )


async def test_healthz_is_degraded_while_storing_fails_repeatedly(
    service: tuple[Service, _Runtime],
) -> None:
    svc, _ = service
    for _ in range(REPEATED_FAILURES):
        svc._observe_health(result("database is locked", storage_failed=True))
    response = await healthz(svc)
    assert response.status_code == 503
    assert response.json()["problems"] == [
        f"storing failed {REPEATED_FAILURES} times in a row: X: database is locked"
    ]
    svc._observe_health(result("HTTP 500 Internal Server Error"))  # stored as the feed's error
    assert (await healthz(svc)).status_code == 200


async def test_healthz_reports_a_parse_past_its_bound_for_a_while(
    service: tuple[Service, _Runtime],
) -> None:
    svc, _ = service
    now = [0.0]
    svc.health = ServiceHealth(clock=lambda: now[0])
    message = f"{OVER_BUDGET} 20 s of CPU time"
    svc._observe_health(result(message))
    now[0] = 60.0
    response = await healthz(svc)
    assert response.status_code == 503
    assert response.json()["problems"] == [f"a parse ran past its bound 60 s ago: X: {message}"]
    now[0] = OVERRUN_SHOWN_SECONDS + 1
    assert (await healthz(svc)).status_code == 200


async def test_claims_left_by_a_killed_process_are_released_at_start_up(tmp_path: Path) -> None:
    feed = "https://outlet.example/feed"
    config = make_config(tmp_path, f"feeds:\n  - url: {feed}\n")
    storage = open_storage(config.settings.storage_url)
    try:
        storage.sync_feeds(config.feeds, NOW)
        # A process killed mid-poll: its claim would hold the feed for the whole lease.
        assert [f.url for f in storage.claim_due_feeds("gone:1", NOW, timedelta(hours=1), 5)] == [
            feed
        ]
        assert storage.claim_due_feeds("next:2", NOW, timedelta(hours=1), 5) == []
    finally:
        storage.close()
    async with open_runtime(config, clock=lambda: NOW) as runtime:
        claimed = runtime.storage.claim_due_feeds("next:2", NOW, timedelta(hours=1), 5)
    assert [f.url for f in claimed] == [feed]


# -- idle and slowloris clients of the web server ------------------------------------------------

# The bounds the test gives the server: short, so the test is quick.
HEAD_TIMEOUT = 1.0
CONNECTION_CAP = 50
# Idle sockets opened: well over the cap, and within the file descriptors this process has
# (each costs two here, the client's and the server's end).
IDLE_SOCKETS = min(300, resource.getrlimit(resource.RLIMIT_NOFILE)[0] // 4)
HEALTHZ_SECONDS = 1.0
# How late after the head deadline a slow client may still be connected (a busy machine).
CLOSE_MARGIN = 2.0


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), seconds) == b""
    except (TimeoutError, ConnectionError):
        return False


async def test_idle_and_slowloris_clients_are_timed_out_and_healthz_answers(
    tmp_path: Path,
) -> None:
    config = make_config(tmp_path)
    storage = open_storage(config.settings.storage_url)
    app = create_app(storage, settings=config.settings)
    sock = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    stop = asyncio.Event()
    server = asyncio.create_task(
        serve(
            app,
            "127.0.0.1",
            port,
            stop,
            sock=sock,
            head_timeout=HEAD_TIMEOUT,
            max_connections=CONNECTION_CAP,
        )
    )
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        await asyncio.sleep(0.2)
        for _ in range(IDLE_SOCKETS):
            idle.append(await asyncio.open_connection("127.0.0.1", port))
        started = time.monotonic()
        async with httpx.AsyncClient() as client:
            health = await client.get(f"http://127.0.0.1:{port}/healthz", timeout=HEALTHZ_SECONDS)
        assert health.status_code == 200
        assert time.monotonic() - started < HEALTHZ_SECONDS
        # Past the cap the longest-waiting connections were closed at once.
        evicted = [await closed_within(r, 0.05) for r, _ in idle[: IDLE_SOCKETS - CONNECTION_CAP]]
        assert all(evicted)
        # The rest are closed when their head deadline passes.
        assert await closed_within(idle[-1][0], HEAD_TIMEOUT + CLOSE_MARGIN)

        # A slowloris client: a request head one byte every 50 ms never completes in time.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: yes\r\n" * 100
        started = time.monotonic()
        with contextlib.suppress(ConnectionError):
            for byte in head:
                if reader.at_eof() or writer.is_closing():
                    break
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.05)
                if time.monotonic() - started > HEAD_TIMEOUT + CLOSE_MARGIN:
                    break
        assert await closed_within(reader, CLOSE_MARGIN)
        assert time.monotonic() - started < HEAD_TIMEOUT + 2 * CLOSE_MARGIN
        writer.close()
    finally:
        for _, writer in idle:
            writer.close()
        stop.set()
        await asyncio.wait_for(server, 10)
        storage.close()
