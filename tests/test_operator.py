"""What an operator meets at the command line (issue #16): a clean Ctrl-C, exit codes that say
whether the command did its job, errors that name the setting or command that fixes them, names
and id prefixes accepted wherever they are shown."""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from servers import LoopbackServer, Reply
from test_cli import (
    SERVICE_START_SECONDS,
    aggregator,
    demo_server,
    free_port,
    start_service,
    write_config,
)

from aggregator.cli.demo import DEMO_FEEDS
from aggregator.storage import open_storage
from aggregator.storage.schema import stories

__all__ = ["demo_server"]  # the fixture, imported for the tests below

RSS = """<?xml version="1.0"?><rss version="2.0"><channel><title>Daily Planet</title>
<link>http://planet.example/</link>{items}</channel></rss>"""
ITEM = "<item><title>Story {n}</title><link>http://planet.example/{n}</link></item>"


def planet_feed(items: int = 2) -> bytes:
    return RSS.format(items="".join(ITEM.format(n=n) for n in range(items))).encode()


def test_ctrl_c_stops_the_service_without_a_traceback_and_a_second_run_names_the_first(
    tmp_path: Path,
) -> None:
    write_config(tmp_path, [])
    port = free_port()
    # A terminal's Ctrl-C signals the whole foreground process group: the service and every
    # child it spawned (the match index process above all).
    proc = start_service(tmp_path, port, start_new_session=True)
    try:
        deadline = time.monotonic() + SERVICE_START_SECONDS
        while True:
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the service did not become healthy"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        # The same port and the same database: the lock is what the operator needs to hear of.
        second = aggregator("run", "--listen", f"127.0.0.1:{port}", cwd=tmp_path)
        assert second.returncode == 1
        assert f"is being polled by process {proc.pid}" in second.stderr
        assert "in use" not in second.stderr.replace("is being polled", "")
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    assert "service stopped" in err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert proc.returncode in (0, 130)


def test_poll_exits_1_when_every_feed_failed_and_names_allow_networks(tmp_path: Path) -> None:
    (tmp_path / "feeds.yml").write_text("feeds:\n  - url: http://127.0.0.1:9/feed.xml\n")
    polled = aggregator("poll", cwd=tmp_path, env={"COLUMNS": "300"})
    assert polled.returncode == 1
    assert "refused to connect to 127.0.0.1 (loopback address)" in polled.stdout
    assert "settings.allow_networks" in polled.stderr
    assert "every feed failed" in polled.stderr
    health = aggregator("feeds", cwd=tmp_path, env={"COLUMNS": "400"})
    assert "settings.allow_networks" in health.stdout
    added = aggregator("feeds", "add", "http://127.0.0.1:9/other.xml", cwd=tmp_path)
    assert added.returncode == 1 and "settings.allow_networks" in added.stderr


def test_poll_exits_0_when_some_feeds_were_read(
    demo_server: LoopbackServer, tmp_path: Path
) -> None:
    write_config(tmp_path, [demo_server.url("/tass.xml"), "http://127.0.0.1:9/feed.xml"])
    polled = aggregator("poll", cwd=tmp_path)
    assert polled.returncode == 0, polled.stderr
    assert "1 errors" in polled.stdout


def test_inspect_exits_1_when_a_feed_could_not_be_read(
    demo_server: LoopbackServer, tmp_path: Path
) -> None:
    write_config(tmp_path, [])
    good = aggregator("inspect", demo_server.url("/ap.xml"), cwd=tmp_path)
    assert good.returncode == 0, good.stderr
    bad = aggregator("inspect", demo_server.url("/ap.xml"), demo_server.url("/no"), cwd=tmp_path)
    assert bad.returncode == 1
    lines = [json.loads(line) for line in bad.stdout.splitlines()]
    assert len(lines) == 3 and "404" in lines[-1]["error"]
    assert "1 of 2 feeds could not be read" in bad.stderr


def test_feeds_add_records_the_title_and_refuses_a_malformed_feed(tmp_path: Path) -> None:
    write_config(tmp_path, [])
    with LoopbackServer() as server:
        server.route("/planet.xml", Reply(body=planet_feed()))
        broken = planet_feed().replace(b"</item>", b"</itm>", 1)
        server.route("/broken.xml", Reply(body=broken))
        added = aggregator("feeds", "add", server.url("/planet.xml"), cwd=tmp_path)
        assert added.returncode == 0, added.stderr
        assert "as 'Daily Planet'" in added.stdout
        assert "name: Daily Planet" in (tmp_path / "feeds.yml").read_text()
        refused = aggregator("feeds", "add", server.url("/broken.xml"), cwd=tmp_path)
        assert refused.returncode == 2
        assert "is malformed" in refused.stderr and "--force" in refused.stderr
        assert "broken.xml" not in (tmp_path / "feeds.yml").read_text()
        forced = aggregator("feeds", "add", "--force", server.url("/broken.xml"), cwd=tmp_path)
        assert forced.returncode == 0, forced.stderr


def test_feeds_add_without_a_scheme_suggests_one(tmp_path: Path) -> None:
    write_config(tmp_path, [])
    result = aggregator("feeds", "add", "127.0.0.1:8765/x.xml", cwd=tmp_path)
    assert result.returncode == 2
    assert "did you mean http://127.0.0.1:8765/x.xml ?" in result.stderr
    result = aggregator("feeds", "add", "news.example/rss", cwd=tmp_path)
    assert "did you mean https://news.example/rss ?" in result.stderr


def test_feeds_remove_accepts_the_name_the_feed_list_shows(tmp_path: Path) -> None:
    with LoopbackServer() as server:
        server.route("/planet.xml", Reply(body=planet_feed()))
        write_config(tmp_path, [server.url("/planet.xml")])  # no name: shown by its title
        assert aggregator("poll", cwd=tmp_path).returncode == 0
    shown = aggregator("feeds", cwd=tmp_path, env={"COLUMNS": "300"})
    assert "Daily Planet" in shown.stdout
    removed = aggregator("feeds", "remove", "Daily Planet", cwd=tmp_path)
    assert removed.returncode == 0, removed.stderr
    assert "planet.xml" not in (tmp_path / "feeds.yml").read_text()
    missing = aggregator("feeds", "remove", "Daily Planet", cwd=tmp_path)
    assert missing.returncode == 2 and "no feed has the URL or name" in missing.stderr


def test_import_opml_lists_what_it_skipped(tmp_path: Path) -> None:
    (tmp_path / "feeds.yml").write_text("feeds:\n  - url: https://known.example/rss\n")
    opml = tmp_path / "in.opml"
    opml.write_text(
        '<?xml version="1.0"?>\n<opml version="2.0"><head/><body>\n'
        '<outline text="New" xmlUrl="https://new.example/rss"/>\n'
        '<outline text="Known" xmlUrl="https://known.example/rss"/>\n'
        '<outline text="Local" xmlUrl="file:///etc/passwd"/>\n'
        "</body></opml>\n"
    )
    result = aggregator("feeds", "import-opml", str(opml), cwd=tmp_path, env={"COLUMNS": "300"})
    assert result.returncode == 0, result.stderr
    assert "skipped https://known.example/rss: already in feeds.yml" in result.stdout
    assert "skipped file:///etc/passwd: not an http or https URL" in result.stdout
    assert "imported 1 new feeds" in result.stdout and "skipped 2" in result.stdout


def test_story_accepts_a_unique_id_prefix(demo_server: LoopbackServer, tmp_path: Path) -> None:
    write_config(tmp_path, [demo_server.url(f"/{n}.xml") for n in DEMO_FEEDS])
    assert aggregator("poll", cwd=tmp_path).returncode == 0
    listed = aggregator("stories", "--json", "--limit", "50", cwd=tmp_path)
    ids = [json.loads(line)["id"] for line in listed.stdout.splitlines()]
    unique = next(i[:6] for i in ids if sum(j.startswith(i[:6]) for j in ids) == 1)
    shown = aggregator("story", unique, cwd=tmp_path, env={"COLUMNS": "300"})
    assert shown.returncode == 0, shown.stderr
    assert "score " in shown.stdout
    # Two ids sharing a prefix: the prefix is refused, naming both.
    storage = open_storage(f"sqlite:///{tmp_path / 'storage' / 'aggregator.db'}")
    now = datetime.now(UTC)
    with storage.engine.begin() as conn:
        for story_id in ("da750f0000000001", "da750f0000000002"):
            conn.execute(stories.insert().values(id=story_id, created=now, updated=now))
    storage.close()
    ambiguous = aggregator("story", "da750f", cwd=tmp_path)
    assert ambiguous.returncode == 2
    assert "several story ids (da750f0000000001, da750f0000000002)" in ambiguous.stderr


@pytest.mark.parametrize("args", [(), ("stories",), ("feeds", "add")])
def test_help_shows_no_type_for_flags(args: tuple[str, ...], tmp_path: Path) -> None:
    result = aggregator(*args, "--help", cwd=tmp_path, env={"COLUMNS": "200"})
    assert result.returncode == 0
    assert "--help" in result.stdout and "<bool>" not in result.stdout
