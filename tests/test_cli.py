"""The command line, run as a real subprocess the way users run it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from servers import LoopbackServer, Reply

from aggregator.cli.demo import DEMO_FEEDS, _feed_bytes
from tests.child import python_output

# A generous bound for a subprocess to start, poll loopback feeds and publish on a busy machine.
SERVICE_START_SECONDS = 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def aggregator(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60):
    return subprocess.run(
        [sys.executable, "-m", "aggregator", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def start_service(cwd: Path, port: int, **popen: Any) -> subprocess.Popen[str]:
    """``aggregator run`` on 127.0.0.1:``port`` in a subprocess, its output piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "aggregator", "run", "--listen", f"127.0.0.1:{port}"],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


@pytest.fixture
def demo_server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as srv:
        for name in DEMO_FEEDS:
            srv.route(f"/{name}.xml", Reply(body=_feed_bytes(name), etag=f'"{name}"'))
        yield srv


def write_config(folder: Path, urls: list[str]) -> Path:
    feeds = "\n".join(f"  - url: {u}" for u in urls)
    path = folder / "feeds.yml"
    path.write_text(f"settings:\n  allow_networks: ['127.0.0.0/8']\nfeeds:\n{feeds}\n")
    return path


def test_wrong_feeds_yml_exits_2_with_the_line_and_key(tmp_path: Path) -> None:
    (tmp_path / "feeds.yml").write_text(
        "settings:\n  interval: 15m\nfeeds:\n  - url: https://a.example/rss\n"
        "    interval: 5 minutes\n"
    )
    result = aggregator("check", cwd=tmp_path)
    assert result.returncode == 2
    assert (
        "feeds.yml:5: feeds[0].interval: '5 minutes' is not a duration like 15m or 1h"
        in result.stderr
    )


def test_check_accepts_the_shipped_feeds_yml() -> None:
    repo = Path(__file__).resolve().parents[1]
    result = aggregator("--config", str(repo / "feeds.yml"), "check", cwd=repo)
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


def test_config_from_environment_variable(tmp_path: Path) -> None:
    bad = tmp_path / "elsewhere.yml"
    bad.write_text("feeds:\n  - url: ftp://x.example/\n")
    result = aggregator("check", cwd=tmp_path, env={"AGGREGATOR_CONFIG": str(bad)})
    assert result.returncode == 2
    assert "elsewhere.yml:2: feeds[0].url" in result.stderr


def test_demo_prints_the_merged_ankara_story_citing_every_outlet(tmp_path: Path) -> None:
    result = aggregator("demo", cwd=tmp_path, env={"COLUMNS": "300"})
    assert result.returncode == 0, result.stderr
    block = result.stdout.split("\n\n")
    ankara = [b for b in block if "Ankara" in b and "5 source(s)" in b]
    assert len(ankara) == 1, result.stdout
    for outlet in ("TASS", "Reuters", "AFP", "Associated Press", "Radio Free Europe"):
        assert outlet in ankara[0]
    # The phone call three days earlier is a different event.
    assert "phone call" not in ankara[0]


def test_demo_serve_shows_the_front_page_and_story_pages(tmp_path: Path) -> None:
    """`aggregator demo --serve` as a user runs it: pages readable, Ctrl-C stops it cleanly."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "aggregator", "demo", "--serve", "--listen", f"127.0.0.1:{port}"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        front = _wait_for(base + "/")
        assert "Putin" in front.text and "Reuters" in front.text
        story = front.text.split('href="/stories/', 1)[1].split('"', 1)[0]
        page = httpx.get(f"{base}/stories/{story}", timeout=10)
        assert page.status_code == 200 and "First report: started this story." in page.text
        atom = httpx.get(base + "/feed.atom", timeout=10)
        assert f'href="{base}/feed.atom"' in atom.text or f"{base}/" in atom.text
    finally:
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=SERVICE_START_SECONDS)
    assert process.returncode == 0, stderr
    assert f"serving the demo at http://127.0.0.1:{port}/" in stdout
    assert "Traceback" not in stderr


def _wait_for(url: str) -> httpx.Response:
    deadline = time.monotonic() + SERVICE_START_SECONDS
    while True:
        try:
            return httpx.get(url, timeout=5)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_poll_stories_story_and_feeds(demo_server: LoopbackServer, tmp_path: Path) -> None:
    urls = [demo_server.url(f"/{n}.xml") for n in DEMO_FEEDS]
    write_config(tmp_path, urls)
    polled = aggregator("poll", cwd=tmp_path)
    assert polled.returncode == 0, polled.stderr
    assert "5 feeds polled" in polled.stdout
    for name in ("merged.atom", "merged.rss", "merged.json"):
        assert (tmp_path / "storage" / name).stat().st_size > 0

    listed = aggregator("stories", "--json", "--limit", "50", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    stories = [json.loads(line) for line in listed.stdout.splitlines()]
    biggest = max(stories, key=lambda s: len(s["sources"]))
    assert len(biggest["sources"]) == 5

    shown = aggregator("story", biggest["id"], cwd=tmp_path, env={"COLUMNS": "300"})
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.count("score ") == 5
    missing = aggregator("story", "nope", cwd=tmp_path)
    assert missing.returncode == 2 and "no story with id 'nope'" in missing.stderr

    health = aggregator("feeds", cwd=tmp_path, env={"COLUMNS": "300"})
    assert health.returncode == 0, health.stderr
    assert health.stdout.count("200") >= 5


def test_inspect_prints_json_lines_and_errors(demo_server: LoopbackServer, tmp_path: Path) -> None:
    write_config(tmp_path, [])
    sample = tmp_path / "sample.xml"
    sample.write_bytes(_feed_bytes("tass"))
    result = aggregator(
        "inspect",
        demo_server.url("/ap.xml"),
        str(sample),
        demo_server.url("/missing"),
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr  # one feed could not be read
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert sum(1 for x in lines if x.get("feed") == demo_server.url("/ap.xml")) == 2
    assert sum(1 for x in lines if x.get("feed") == str(sample)) == 3
    (error,) = [x for x in lines if "error" in x]
    assert error["feed"] == demo_server.url("/missing") and "404" in error["error"]
    assert all(x["published"].endswith("+00:00") for x in lines if "error" not in x)


def test_run_serves_until_sigterm_and_records_fetch_errors(
    demo_server: LoopbackServer, tmp_path: Path
) -> None:
    unreachable = "http://127.0.0.1:9/feed.xml"
    write_config(tmp_path, [demo_server.url("/tass.xml"), unreachable])
    port = free_port()
    proc = start_service(tmp_path, port)
    try:
        deadline = time.monotonic() + SERVICE_START_SECONDS
        output = tmp_path / "storage" / "merged.json"
        while time.monotonic() < deadline:
            if output.exists() and json.loads(output.read_text())["items"]:
                break
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.2)
        else:
            pytest.fail("the service published nothing")
        time.sleep(1.0)
        assert proc.poll() is None  # the unreachable feed did not stop it
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
        assert page.status_code == 200 and "Putin" in page.text
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
        assert health.status_code == 200
        # A second process polling the same SQLite database would match against an index
        # blind to the service's entries: `poll` asks the service to poll everything now.
        polls_before = len(demo_server.requests_to("/tass.xml"))
        second = aggregator("poll", cwd=tmp_path, env={"COLUMNS": "300"})
        assert second.returncode == 0, second.stderr
        assert f"process {proc.pid} (python -m aggregator run" in second.stdout
        assert "asked it to poll all 2 feeds now" in second.stdout
        deadline = time.monotonic() + SERVICE_START_SECONDS
        while len(demo_server.requests_to("/tass.xml")) == polls_before:
            assert time.monotonic() < deadline, "the service did not poll the feed again"
            time.sleep(0.2)
        assert proc.poll() is None
        # A second service on the same database is refused, naming the first.
        other = aggregator("run", "--listen", f"127.0.0.1:{free_port()}", cwd=tmp_path)
        assert other.returncode == 1
        assert f"is being polled by process {proc.pid} (python -m aggregator run" in other.stderr
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "service stopped" in err
    assert "127.0.0.1:9" in err and "error=" in err
    status = aggregator("feeds", cwd=tmp_path, env={"COLUMNS": "300"})
    assert "refused" in status.stdout.lower()


def test_run_refuses_a_bad_listen_address(tmp_path: Path) -> None:
    write_config(tmp_path, [])
    result = aggregator("run", "--listen", "localhost:99999", cwd=tmp_path)
    assert result.returncode == 2
    assert "--listen: 'localhost:99999' has port '99999'" in result.stderr


def test_split_and_merge_are_recorded_and_shown(
    demo_server: LoopbackServer, tmp_path: Path
) -> None:
    write_config(tmp_path, [demo_server.url(f"/{n}.xml") for n in DEMO_FEEDS])
    assert aggregator("poll", cwd=tmp_path).returncode == 0
    listed = aggregator("stories", "--json", "--limit", "50", cwd=tmp_path)
    stories = [json.loads(line) for line in listed.stdout.splitlines()]
    ankara = max(stories, key=lambda s: len(s["sources"]))
    tass = next(s for s in ankara["sources"] if "tass.com" in s["url"])

    split = aggregator("split", tass["url"], cwd=tmp_path)
    assert split.returncode == 0, split.stderr
    new_id = split.stdout.split()[-1]
    after = aggregator("stories", "--json", "--limit", "50", cwd=tmp_path)
    by_id = {s["id"]: s for s in map(json.loads, after.stdout.splitlines())}
    assert len(by_id[ankara["id"]]["sources"]) == 4
    assert [s["url"] for s in by_id[new_id]["sources"]] == [tass["url"]]

    merged = aggregator("merge", ankara["id"], new_id, cwd=tmp_path)
    assert merged.returncode == 0, merged.stderr
    final = aggregator("stories", "--json", "--limit", "50", cwd=tmp_path)
    ids = [json.loads(line)["id"] for line in final.stdout.splitlines()]
    assert new_id not in ids
    missing = aggregator("split", "https://nowhere.example/", cwd=tmp_path)
    assert missing.returncode == 2 and "no entry" in missing.stderr


def test_feeds_add_and_remove_keep_comments(demo_server: LoopbackServer, tmp_path: Path) -> None:
    config = write_config(tmp_path, [])
    config.write_text("# my sources\n" + config.read_text())
    added = aggregator("feeds", "add", demo_server.url("/ap.xml"), "--name", "AP", cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    assert "# my sources" in config.read_text() and "AP" in config.read_text()
    again = aggregator("feeds", "add", demo_server.url("/ap.xml"), cwd=tmp_path)
    assert again.returncode == 2 and "already configured" in again.stderr
    removed = aggregator("feeds", "remove", "AP", cwd=tmp_path)
    assert removed.returncode == 0, removed.stderr
    assert demo_server.url("/ap.xml") not in config.read_text()
    assert aggregator("check", cwd=tmp_path).returncode == 0


def test_feeds_yml_edits_apply_while_the_service_runs(
    demo_server: LoopbackServer, tmp_path: Path
) -> None:
    config = write_config(tmp_path, [demo_server.url("/tass.xml")])
    port = free_port()
    proc = start_service(tmp_path, port)

    def requested(path: str) -> int:
        return sum(1 for r in demo_server.requests if r.path == path)

    def feeds_table() -> str:
        return aggregator("feeds", cwd=tmp_path, env={"COLUMNS": "300"}).stdout

    def wait_for(condition: Any, what: str) -> None:
        limit = time.monotonic() + SERVICE_START_SECONDS
        while not condition():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            if time.monotonic() > limit:
                pytest.fail(f"timed out waiting until {what}")
            time.sleep(0.2)

    try:
        wait_for(lambda: requested("/tass.xml") >= 1, "the configured feed is polled")
        # An invalid edit is refused and the service keeps running the last valid config.
        config.write_text(config.read_text() + "  - url: not a url\n")
        time.sleep(3)
        assert proc.poll() is None
        write_config(tmp_path, [demo_server.url("/ap.xml")])
        # Stored, not only requested: a SIGTERM between the two would drop that poll.
        wait_for(lambda: "Associated Press" in feeds_table(), "the added feed is polled")
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "feeds.yml:5: feeds[1].url" in err and "keeping the last valid configuration" in err
    assert "reloaded" in err
    listed = feeds_table()
    assert "Associated Press" in listed
    assert "TASS" not in listed  # a removed feed is no longer listed


def test_the_command_entry_point_imports_nothing_heavy() -> None:
    # Spawned workers run the main script again: its imports are paid by every worker.
    script = (
        "import sys\n"
        "from aggregator.entry import main\n"
        "heavy = {'aggregator.cli', 'typer', 'rich', 'starlette', 'httpx', 'sqlalchemy'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    assert python_output(script).strip() == "[]"
