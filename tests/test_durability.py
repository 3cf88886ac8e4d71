"""Crash safety: ``aggregator poll`` killed with SIGKILL at random moments, again and again.

Thirty small feeds (twenty entries each, in groups of three feeds reporting identical events)
are served by a loopback farm whose documents are a known function of a version number. Before
each run some feeds publish a new version; the run is killed after a seeded random delay from
its first request, so the kill lands while feeds are being fetched, matched, stored or
published. After every kill the database and the published files must be whole and consistent;
after all of them, one undisturbed poll must give exactly the expected stories.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from feedfarm import FarmServer, FeedFarm

SEED = 20261129
KILLS = 20
FEEDS = 30
ENTRIES = 20
GROUP_SIZE = 3
# Share of feeds that publish a new version before each run: enough that every run stores
# new and edited entries, few enough that 304s and unchanged feeds are in the mix too.
BUMP_FRACTION = 0.4
# The kill comes this long after the run's first request, uniformly. A whole undisturbed cycle
# of these feeds takes about 0.6 s from first request to published files (measured on a busy
# 2-core machine), so the window covers fetching, storing and publishing, and its tail a
# finished run.
KILL_WINDOW_S = (0.0, 0.8)
# Bounds for a subprocess to start and reach the server, and for a whole undisturbed poll.
FIRST_REQUEST_S = 30.0
POLL_S = 60.0
# Helper processes notice their parent's death within this long, or not at all. A parse
# worker still starting up (importing the package, ~1-3 s on a loaded 2-core machine) when
# the service dies exits as soon as its initializer runs, so the bound leaves room for that.
ORPHAN_GRACE_S = 10.0
# At least this many kills must land before the run ended by itself, or the test proves little.
MIN_MID_CYCLE_KILLS = KILLS // 2


@dataclass
class Farm:
    folder: Path
    farm: FeedFarm

    @property
    def db(self) -> Path:
        return self.folder / "storage" / "aggregator.db"


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Farm]:
    with FarmServer() as server:
        start = datetime.now(UTC) - timedelta(hours=2)
        farm = FeedFarm(server, count=FEEDS, entries=ENTRIES, group_size=GROUP_SIZE, start=start)
        settings = {"concurrency": "16", "per_host": "16", "timeout": "5s", "deadline": "10s"}
        farm.write_config(tmp_path, settings, interval="1h")
        yield Farm(tmp_path, farm)


def poll(folder: Path) -> subprocess.Popen[str]:
    """Start ``aggregator poll`` in a session of its own, so the whole service (with any
    helper processes it starts) can be killed together; output goes to files, not pipes that
    a surviving helper would hold open."""
    with (folder / "poll.out").open("w") as out, (folder / "poll.err").open("w") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "aggregator", "poll"],
            cwd=folder,
            stdout=out,
            stderr=err,
            text=True,
            start_new_session=True,
        )


def wait_first_request(setup: Farm, proc: subprocess.Popen[str], before: int) -> None:
    limit = time.monotonic() + FIRST_REQUEST_S
    while len(setup.farm.server.requests) == before:
        assert proc.poll() is None, (setup.folder / "poll.err").read_text()
        assert time.monotonic() < limit, "the poll never reached the feed server"
        time.sleep(0.005)


def session_processes(session: int) -> list[str]:
    """The processes still alive in ``session`` (pgrep lists them by session id)."""
    found = subprocess.run(["pgrep", "-s", str(session)], capture_output=True, text=True)
    return found.stdout.split()


def kill_mid_cycle(setup: Farm, delay: float) -> bool:
    """Start a poll, SIGKILL it (its whole process group) ``delay`` seconds after its first
    request; True if it was still running when killed."""
    before = len(setup.farm.server.requests)
    proc = poll(setup.folder)
    try:
        wait_first_request(setup, proc, before)
        time.sleep(delay)
        running = proc.poll() is None
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=POLL_S)
    return running


def check_store(setup: Farm) -> None:
    """The invariants that must hold whenever the process died."""
    farm = setup.farm
    with sqlite3.connect(setup.db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        feeds = conn.execute("SELECT url, etag, body_hash FROM feeds").fetchall()
        stored = {
            (url, eid): (title, summary)
            for url, eid, title, summary in conn.execute(
                "SELECT feed_url, entry_id, title, summary FROM entries"
            )
        }
        links = conn.execute(
            "SELECT e.feed_url, e.entry_id, s.story_id FROM entries e"
            " LEFT JOIN story_entries s USING (feed_url, entry_id)"
        ).fetchall()
    by_url = {url: n for n, url in enumerate(farm.urls)}
    for url, etag, body_hash in feeds:
        if etag is None:
            assert body_hash is None, url  # validators are written together with the body
            continue
        n, version = farm.parse_etag(etag)
        assert by_url[url] == n
        assert body_hash == hashlib.sha256(farm.body(n, version)).hexdigest(), url
        # The stored state is never ahead of the entries: all of that version is stored.
        for item in farm.items(n, version):
            assert stored.get((url, item.guid)) == (item.title, item.summary), (url, item.guid)
    # Every entry belongs to exactly one story, and each event to one story only.
    assert len(links) == len({(u, e) for u, e, _ in links}) == len(stored)
    assert all(story is not None for _, _, story in links)
    stories_of_event: dict[tuple[int, str], set[str]] = defaultdict(set)
    events_of_story: dict[str, set[tuple[int, str]]] = defaultdict(set)
    for url, eid, story in links:
        event = (farm.group(by_url[url]), eid.split("-", 1)[1])
        stories_of_event[event].add(story)
        events_of_story[story].add(event)
    assert all(len(s) == 1 for s in stories_of_event.values()), "an event split in two stories"
    assert all(len(e) == 1 for e in events_of_story.values()), "two events merged"


def check_outputs(folder: Path) -> None:
    """The published files are whole documents whenever they exist."""
    out = folder / "storage"
    for name in ("merged.atom", "merged.rss"):
        if (out / name).exists():
            ET.parse(out / name)
    if (out / "merged.json").exists():
        json.loads((out / "merged.json").read_text())


def test_sigkill_at_random_moments_never_corrupts_or_splits(setup: Farm) -> None:
    rng = random.Random(SEED)
    landed = 0
    for _ in range(KILLS):
        setup.farm.bump(rng, BUMP_FRACTION)
        landed += kill_mid_cycle(setup, rng.uniform(*KILL_WINDOW_S))
        check_store(setup)
        check_outputs(setup.folder)
    assert landed >= MIN_MID_CYCLE_KILLS, landed

    # One undisturbed poll catches up with everything; a second one finds nothing to do.
    for expected in (None, "0 new entries, 0 updated, 0 errors"):
        done = poll(setup.folder)
        assert done.wait(timeout=POLL_S) == 0, (setup.folder / "poll.err").read_text()
        if expected is not None:
            stdout = (setup.folder / "poll.out").read_text()
            assert expected in stdout, stdout
    check_store(setup)
    check_outputs(setup.folder)

    farm = setup.farm
    with sqlite3.connect(setup.db) as conn:
        feeds = dict(conn.execute("SELECT url, etag FROM feeds"))
        per_story = conn.execute(
            "SELECT story_id, count(*) FROM story_entries GROUP BY story_id"
        ).fetchall()
        stored = {tuple(k) for k in conn.execute("SELECT feed_url, entry_id FROM entries")}
    # Every feed is at its current version, and holds exactly the events it ever served.
    for n, url in enumerate(farm.urls):
        assert feeds[url] == farm.etag(n, farm.version[n])
        ever = {(url, f"{farm.outlet(n)}-e{e}") for e in range(farm.version[n] + ENTRIES)}
        current = {(url, item.guid) for item in farm.items(n, farm.version[n])}
        mine = {key for key in stored if key[0] == url}
        assert current <= mine <= ever
    # Each story cites the same event from at most every feed of its group.
    assert all(1 <= count <= GROUP_SIZE for _, count in per_story)
    published = json.loads((setup.folder / "storage" / "merged.json").read_text())
    assert published["items"]


def test_sigkill_of_the_service_leaves_no_process_behind(setup: Farm) -> None:
    proc = poll(setup.folder)
    try:
        wait_first_request(setup, proc, 0)
        limit = time.monotonic() + FIRST_REQUEST_S
        while len(session_processes(proc.pid)) < 2:  # its helpers have started
            if proc.poll() is not None or time.monotonic() > limit:
                pytest.fail("the poll ended before any helper process was seen")
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)  # the service alone, as an OOM killer would
        proc.wait(timeout=POLL_S)
        limit = time.monotonic() + ORPHAN_GRACE_S
        while session_processes(proc.pid) and time.monotonic() < limit:
            time.sleep(0.1)
        assert session_processes(proc.pid) == []
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
