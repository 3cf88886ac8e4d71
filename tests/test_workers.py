"""Several ``aggregator run`` workers sharing one PostgreSQL database, one of them SIGKILLed.

300 feeds on a loopback farm that logs every request: 30 groups of 10 feeds, each group
reporting one event with word-for-word identical headlines. Three workers run with the same
feeds.yml (an interval long enough that each feed is due once during the test). One worker is
killed mid-run. Then: every feed was polled; no feed was fetched twice except those the killed
worker held, and those only after their lease expired; exactly 30 stories of 10 sources each;
the published files hold all of them.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from feedfarm import FarmServer, FeedFarm
from pg import throwaway_database

from aggregator.service import lease_for

FEEDS = 300
GROUP_SIZE = 10
WORKERS = 3
# Each response waits this long, so the work is spread over a few seconds and the kill finds
# the victim with feeds claimed but not yet stored.
RESPONSE_DELAY_S = 0.2
DEADLINE_S = 3
TIMEOUT_S = 2
CONCURRENCY = 8
# The victim is killed once the farm has answered this many requests: about a third of the run.
KILL_AFTER_REQUESTS = 100
# Bounds on a busy 2-core machine: workers importing and connecting; the whole run including
# the killed worker's lease running out.
START_S = 30.0
FINISH_S = 75.0
# A request counts as "after the lease" with this much tolerance for the clock conversion
# between the database's wall time and the server's monotonic stamps.
CLOCK_SLACK_S = 0.05


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def database() -> Iterator[str]:
    with throwaway_database("aggregator_workers") as url:
        yield url


def worker(folder: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "aggregator", "run", "--listen", f"127.0.0.1:{free_port()}"],
            cwd=folder,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


def claims_of(url: str, name: str) -> dict[str, datetime]:
    """``{feed URL: claim expiry}`` of the feeds ``name`` holds and has not stored yet."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT url, claim_expires FROM feeds WHERE claimed_by = %s", (name,)
        ).fetchall()
    return {str(u): expires for u, expires in rows}


def polled(url: str) -> dict[str, int | None]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT url, status FROM feeds WHERE last_polled IS NOT NULL")
        return {str(u): status for u, status in rows.fetchall()}


def test_three_workers_share_the_feeds_and_survive_a_sigkill(database: str, tmp_path: Path) -> None:
    lease = lease_for(
        deadline=timedelta(seconds=DEADLINE_S), concurrency=CONCURRENCY, per_host=CONCURRENCY
    )
    assert lease < timedelta(seconds=FINISH_S / 2), "the lease must run out within the test"
    with FarmServer() as server:
        farm = FeedFarm(
            server,
            count=FEEDS,
            entries=1,
            group_size=GROUP_SIZE,
            start=datetime.now(UTC) - timedelta(hours=1),
            delay=RESPONSE_DELAY_S,
        )
        settings = {
            "storage": database,
            "deadline": f"{DEADLINE_S}s",
            "timeout": f"{TIMEOUT_S}s",
            "concurrency": str(CONCURRENCY),
            "per_host": str(CONCURRENCY),
        }
        farm.write_config(tmp_path, settings, interval="1h")
        logs = [tmp_path / f"worker{i}.log" for i in range(WORKERS)]
        procs = [worker(tmp_path, log) for log in logs]
        try:
            limit = time.monotonic() + START_S
            while len(server.requests) < KILL_AFTER_REQUESTS:
                assert all(p.poll() is None for p in procs), [x.read_text() for x in logs]
                assert time.monotonic() < limit, "the workers polled too little"
                time.sleep(0.01)
            victim = procs[0]
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=10)
            killed_at = time.monotonic()
            held = claims_of(database, f"{socket.gethostname()}:{victim.pid}")
            # Wall-clock lease expiries, as the farm's monotonic request stamps.
            offset = time.monotonic() - datetime.now(UTC).timestamp()

            limit = time.monotonic() + FINISH_S
            while len(polled(database)) < FEEDS:
                assert all(p.poll() is None for p in procs[1:]), [x.read_text() for x in logs]
                assert time.monotonic() < limit, f"{len(polled(database))} of {FEEDS} polled"
                time.sleep(0.2)
            output = tmp_path / "storage" / "merged.json"
            while len(json.loads(output.read_text())["items"]) < FEEDS // GROUP_SIZE:
                assert time.monotonic() < limit, "the stories were not all published"
                time.sleep(0.2)
        finally:
            for proc in procs[1:]:
                proc.send_signal(signal.SIGTERM)
            codes = [proc.wait(timeout=30) for proc in procs[1:]]
        assert codes == [0] * (WORKERS - 1), [x.read_text() for x in logs]

        # Every feed polled once, with success; repeats only for the victim's unfinished
        # claims, and only once their lease had run out.
        assert set(polled(database).values()) == {200}
        requests = farm.requests()
        assert all(times for times in requests.values())
        repeated = {url: times for url, times in requests.items() if len(times) > 1}
        assert set(repeated) <= set(held), sorted(set(repeated) - set(held))[:5]
        assert all(len(times) == 2 for times in repeated.values()), repeated
        for url, expiry in held.items():
            expires = expiry.timestamp() + offset
            later = [t for t in requests[url] if t > killed_at]
            assert all(t >= expires - CLOCK_SLACK_S for t in later), (url, later, expires)

    with psycopg.connect(database) as conn:
        sizes = conn.execute(
            "SELECT count(*) FROM story_entries GROUP BY story_id ORDER BY 1"
        ).fetchall()
        entries = conn.execute("SELECT count(*) FROM entries").fetchone()
    assert entries == (FEEDS,)
    assert [n for (n,) in sizes] == [GROUP_SIZE] * (FEEDS // GROUP_SIZE)
    items = json.loads((tmp_path / "storage" / "merged.json").read_text())["items"]
    assert sorted(i["_aggregator"]["source_count"] for i in items) == [GROUP_SIZE] * len(sizes)
