"""Tiny runs of the polling benchmarks, so they keep working as the pipeline changes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from aggregator.testing import feedgen
from benchmarks import ingest, peer, poll
from benchmarks.feedserver import FeedServer

REPO = Path(__file__).resolve().parents[1]


def _fields(line: str, prefix: str) -> dict[str, str]:
    assert line.startswith(prefix + " "), line
    return dict(part.split("=", 1) for part in line.removeprefix(prefix + " ").split())


def test_feeds_are_realistic_and_change_five_percent_per_cycle() -> None:
    base = time.time() - 86_400
    doc = feedgen.document(3, 0, base)
    assert 70_000 < len(doc.body) < 100_000
    assert doc.body.count(b"<item>") == feedgen.ENTRIES_PER_FEED
    assert doc.etag is not None and doc.last_modified is not None
    assert feedgen.document(3, 0, base) == doc
    changed = [i for i in range(1000) if feedgen.changes_at(i, 1)]
    assert len(changed) == 50
    before, after = feedgen.document(changed[0], 0, base), feedgen.document(changed[0], 1, base)
    assert after.etag != before.etag
    guids = re.compile(rb"<guid[^>]*>([^<]+)</guid>")
    new_guids = set(guids.findall(after.body)) - set(guids.findall(before.body))
    assert len(new_guids) == feedgen.NEW_PER_CHANGE
    assert feedgen.document(1, 1, base) == feedgen.document(1, 0, base)  # 1 + 1 not % 20


def test_server_answers_conditional_requests() -> None:
    with FeedServer(30, workers=1) as server:
        server.prepare(0, jobs=1)
        with httpx.Client() as client:
            first = client.get(server.url(3))
            assert first.status_code == 200 and first.content.count(b"<item>") == 50
            again = client.get(server.url(3), headers={"If-None-Match": first.headers["etag"]})
            assert again.status_code == 304
            plain = client.get(server.url(10))  # a feed without validators
            assert "etag" not in plain.headers
            assert client.get(server.url(10)).content == plain.content
            assert client.get(server.url(30)).status_code == 404
            server.prepare(1, jobs=1)
            moved = client.get(server.url(19), headers={"If-None-Match": '"13-0"'})
            assert moved.status_code == 200 and moved.headers["etag"] == '"13-1"'


def test_poll_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    assert poll.main(["--feeds", "8", "--runs", "1"]) == 0
    fields = _fields(capsys.readouterr().out.strip().splitlines()[-1], "poll")
    assert set(fields) == {"feeds", "steady_s", "first_entries_per_s", "peak_rss_mb"}
    assert fields["feeds"] == "8" and float(fields["first_entries_per_s"]) > 0


def test_ingest_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    assert ingest.main(["--smoke"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert "feedparser (sanitize, resolve)" in "\n".join(out)
    assert float(_fields(out[-1], "ingest")["entries_per_s"]) > 0


def test_peer_smoke() -> None:
    """Runs reader in its own venv; installing it needs PyPI, so skip when that is not there."""
    try:
        peer.ensure_reader(peer.DEFAULT_VENV)
    except (subprocess.CalledProcessError, OSError) as exc:
        pytest.skip(f"reader could not be installed into {peer.DEFAULT_VENV}: {exc}")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.peer", "--feeds", "4", "--runs", "1"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        check=True,
    )
    fields = _fields(done.stdout.strip().splitlines()[-1], "peer")
    assert fields["feeds"] == "4" and float(fields["speedup_first"]) > 0
