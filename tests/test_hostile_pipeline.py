"""Misbehaving feed servers next to good ones, through the real pipeline.

One scenario (module fixture) runs three poll cycles with ``open_runtime`` and
``Updater.refresh_many`` over a loopback server that serves good feeds beside a slow drip, an
endless body, lying lengths, a gzip bomb, redirect loops and redirects to private addresses,
moves, 304s, 410, 429s and 500s, an entity bomb and script injection. Each test then checks one
endpoint's recorded outcome (status and error text from storage), and that the cycle stayed
within the bounds the settings set (time from ``deadline``, memory from ``max_bytes``), while
the good feeds of the same cycles were stored and published. The command line (``feeds``,
``stories --json``) is run as a subprocess on the same files.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import subprocess
import sys
import time
import tracemalloc
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
from feedfarm import FarmServer, FeedFarm, Item, rss_document
from servers import Handler, LoopbackServer, Reply, drip, endless

from aggregator.config import load_config
from aggregator.refresh.schedule import JITTER_FRACTION
from aggregator.refresh.updater import RefreshResult
from aggregator.runtime import open_runtime
from aggregator.types import FeedState

DEADLINE_S = 2  # settings.deadline: what bounds the slowest endpoint
TIMEOUT_S = 1  # settings.timeout: per read; the drip (a byte every 0.5 s) stays under it
MAX_BYTES = 256 * 1024  # settings.max_bytes
DRIP_EVERY_S = 0.5
# A cycle is the deadline of its slowest fetch plus parsing and storing a dozen small feeds
# (about 0.3 s measured, several times that under tracemalloc on a busy 2-core machine).
CYCLE_SLACK_S = 3.0
# Peak traced memory of a cycle after the first (which also pays for lazy imports and statement
# caches, about 37 MiB); without the caps the gzip bomb alone would be 64 MiB and the endless
# body unbounded. Measured with the caps: about 1.5 MiB.
PEAK_MEMORY_BYTES = 16 * 1024 * 1024
BOMB_DECODED_BYTES = 64 * 1024 * 1024
INTERVAL = timedelta(minutes=10)  # every hostile feed's configured interval
RETRY_SECONDS = 3600  # Retry-After far longer than one backed-off interval, so it shows
RETRY_DATE_DELAY = timedelta(hours=2)
CYCLES = 3
# Subprocess bound for the read-only commands on a busy machine.
CLI_SECONDS = 60
GOOD_FEEDS = 4

_ALLOWED_TAGS = {"p", "ul", "li", "cite", "a", "time"}
_ALLOWED_ATTRS = {"href", "datetime", "class"}


def evil_feed() -> bytes:
    """Markup and script in every field, escaped once, twice and as CDATA."""
    return (
        b'<?xml version="1.0"?><rss version="2.0"><channel>'
        b"<title>&lt;script&gt;alert('channel')&lt;/script&gt;Evil outlet</title>"
        b"<link>javascript:alert(0)</link><description>d</description>"
        b"<item><guid>&lt;script&gt;alert(1)&lt;/script&gt;</guid>"
        b"<title>&lt;script&gt;alert('t')&lt;/script&gt;Harmless headline "
        b"&lt;img src=x onerror=alert(2)&gt;</title>"
        b'<description>&lt;p onclick="alert(3)"&gt;Body&lt;/p&gt;'
        b'&lt;iframe src="javascript:alert(4)"&gt;&lt;/iframe&gt; '
        b"&amp;lt;script&amp;gt;alert(5)&amp;lt;/script&amp;gt;</description>"
        b"<link>javascript:alert(6)</link><author>&lt;svg onload=alert(7)&gt;</author></item>"
        b"<item><guid>evil-2</guid><title><![CDATA[<script>alert(8)</script>Second <b>one]]>"
        b'</title><link>https://evil.example/a" onmouseover="alert(9)</link>'
        b"<description><![CDATA[<style>body{}</style><a href='javascript:x'>x</a>]]>"
        b"</description></item></channel></rss>"
    )


def entity_bomb() -> bytes:
    """A 10 KB entity referenced 10,000 times (100 MB expanded) and an external entity."""
    return (
        b'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY big "' + b"A" * 10_000 + b'">\n'
        b'<!ENTITY xxe SYSTEM "file:///etc/passwd">\n]>\n<rss version="2.0"><channel>'
        b"<title>Bomb " + b"&big;" * 10_000 + b"</title>"
        b"<item><title>Leak &xxe;</title><guid>1</guid></item></channel></rss>"
    )


def small_feed(name: str) -> bytes:
    now = datetime.now(UTC)
    return rss_document(
        name, [Item(f"{name}-1", f"Story from {name}", "Text.", f"https://{name}.example/1", now)]
    )


@dataclass
class Cycle:
    results: dict[str, RefreshResult]
    states: dict[str, FeedState]
    seconds: float
    peak_bytes: int
    requests: list[str]  # request paths, in arrival order


@dataclass
class Scenario:
    folder: Path
    server: LoopbackServer
    farm: FeedFarm
    cycles: list[Cycle]
    urls: dict[str, str]  # case name -> configured URL

    def state(self, case: str, cycle: int = 0) -> FeedState:
        return self.cycles[cycle].states[self.urls[case]]

    def result(self, case: str, cycle: int = 0) -> RefreshResult:
        return self.cycles[cycle].results[self.urls[case]]


def routes(server: LoopbackServer) -> dict[str, str]:
    """Install the hostile endpoints; return ``{case: path}``."""
    url = server.url
    feed = small_feed
    bomb = gzip.compress(b"\0" * BOMB_DECODED_BYTES)
    retry_date = format_datetime(datetime.now(UTC) + RETRY_DATE_DELAY, usegmt=True)
    # Generator bodies are used up by one response, so those routes build a Reply per request.
    table: dict[str, Reply | Handler] = {
        "/drip": lambda _r: Reply(body=drip(feed("drip"), every=DRIP_EVERY_S)),
        "/endless": lambda _r: Reply(body=endless(), chunked=True),
        "/short": lambda _r: Reply(body=iter([b"<rss><channel><title>cut"]), content_length=5000),
        "/huge": Reply(body=b"<rss/>", content_length=10 * MAX_BYTES),
        "/bomb": Reply(body=bomb, headers={"Content-Encoding": "gzip"}),
        "/loop-a": Reply.redirect(url("/loop-b")),
        "/loop-b": Reply.redirect(url("/loop-a")),
        "/private": Reply.redirect("http://10.0.0.1/feed.xml"),
        "/metadata": Reply.redirect("http://169.254.169.254/latest/meta-data/"),
        "/m301": Reply.redirect(url("/new301"), 301),
        "/new301": Reply(body=feed("new301")),
        "/m308": Reply.redirect(url("/new308"), 308),
        "/new308": Reply(body=feed("new308")),
        "/t302": Reply.redirect(url("/dest302"), 302),
        "/dest302": Reply(body=feed("dest302")),
        "/t307": Reply.redirect(url("/dest307"), 307),
        "/dest307": Reply(body=feed("dest307")),
        "/etag": Reply(body=feed("etag"), etag='"e1"'),
        "/lastmod": Reply(body=feed("lastmod"), last_modified="Thu, 28 Sep 2017 18:00:00 GMT"),
        "/gone": Reply(status=410),
        "/r429s": Reply(status=429, headers={"Retry-After": str(RETRY_SECONDS)}),
        "/r429d": Reply(status=429, headers={"Retry-After": retry_date}),
        "/r429g": Reply(status=429, headers={"Retry-After": "soon, maybe"}),
        "/e500": Reply(status=500),
        "/entities": Reply(body=entity_bomb()),
        "/evil": Reply(body=evil_feed()),
    }
    for path, reply in table.items():
        server.route(path, reply)
    destinations = {"/loop-b", "/new301", "/new308", "/dest302", "/dest307"}
    return {path.strip("/"): path for path in table if path not in destinations}


def write_config(
    folder: Path, server: LoopbackServer, farm: FeedFarm, cases: dict[str, str]
) -> Path:
    settings = {
        "deadline": f"{DEADLINE_S}s",
        "timeout": f"{TIMEOUT_S}s",
        "max_bytes": str(MAX_BYTES),
        "per_host": "64",  # every endpoint shares 127.0.0.1; per-host politeness would queue them
        "concurrency": "64",
    }
    path = farm.write_config(folder, settings)
    lines = [
        f"  - url: {server.url(p)}\n    interval: {int(INTERVAL.total_seconds())}s\n"
        + ("" if case == "evil" else f"    name: {case}\n")
        for case, p in cases.items()
    ]
    path.write_text(path.read_text() + "".join(lines))
    return path


async def run_cycles(config_path: Path, server: LoopbackServer) -> list[Cycle]:
    config = load_config(config_path)
    cycles = []
    seen = 0
    async with open_runtime(config) as runtime:
        for _ in range(CYCLES):
            feeds = runtime.storage.list_feeds()
            tracemalloc.start()
            started = time.monotonic()
            results = await runtime.updater.refresh_many(feeds)
            runtime.publish()
            seconds = time.monotonic() - started
            _current, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            requests = [r.path for r in server.requests[seen:]]
            seen += len(requests)
            states = {f.url: f for f in runtime.storage.list_feeds()}
            by_url = {r.feed_url: r for r in results}
            cycles.append(Cycle(by_url, states, seconds, peak, requests))
    return cycles


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    folder = tmp_path_factory.mktemp("hostile")
    with FarmServer() as server:
        farm = FeedFarm(server, count=GOOD_FEEDS, entries=3, group_size=2, start=datetime.now(UTC))
        cases = routes(server)
        config_path = write_config(folder, server, farm, cases)
        cycles = asyncio.run(run_cycles(config_path, server))
        urls = {case: server.url(path) for case, path in cases.items()}
        yield Scenario(folder, server, farm, cycles, urls)


def cli(folder: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "aggregator", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=CLI_SECONDS,
        env={**os.environ, "COLUMNS": "500"},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


# -- the whole cycle ----------------------------------------------------------------------------


def test_every_cycle_is_bounded_by_the_deadline(scenario: Scenario) -> None:
    for cycle in scenario.cycles:
        assert cycle.seconds < DEADLINE_S + CYCLE_SLACK_S, cycle.seconds


def test_memory_stays_bounded_despite_bombs_and_endless_bodies(scenario: Scenario) -> None:
    for cycle in scenario.cycles[1:]:
        assert {"/bomb", "/endless", "/entities", "/huge"} <= set(cycle.requests)
        assert cycle.peak_bytes < PEAK_MEMORY_BYTES, cycle.peak_bytes


def test_good_feeds_of_the_same_cycle_are_stored_and_published(scenario: Scenario) -> None:
    farm = scenario.farm
    first = scenario.cycles[0]
    for url in farm.urls:
        assert first.results[url].error is None and first.results[url].new == farm.entries
        assert first.states[url].status == 200 and first.states[url].failures == 0
    published = json.loads((scenario.folder / "storage" / "merged.json").read_text())
    good = [i for i in published["items"] if "outlet0" in json.dumps(i)]
    # Two groups of two feeds, three events each: outlet0's three events, each cited twice.
    assert len(good) == farm.entries
    assert all(i["_aggregator"]["source_count"] == farm.group_size for i in good)


# -- bodies that never end, lie or explode -----------------------------------------------------


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("drip", f"no response within {DEADLINE_S} s deadline"),
        ("endless", "body exceeds 256 KiB after decompression"),
        ("bomb", "body exceeds 256 KiB after decompression"),
        ("short", "connection closed before the response was complete"),
        ("huge", "Content-Length of 2.5 MiB exceeds the 256 KiB limit"),
    ],
)
def test_body_defences_record_the_reason(scenario: Scenario, case: str, error: str) -> None:
    state = scenario.state(case)
    assert state.error == error
    assert state.failures == 1 and state.body_hash is None and state.etag is None


def test_slow_drip_is_cut_at_the_deadline_not_later(scenario: Scenario) -> None:
    for cycle in range(CYCLES):
        seconds = scenario.result("drip", cycle).seconds
        assert DEADLINE_S <= seconds < DEADLINE_S + 1.0


def test_entity_bomb_is_neutralised_and_nothing_leaks(scenario: Scenario) -> None:
    state = scenario.state("entities")
    assert state.error is None and state.status == 200
    assert state.title == "Bomb"
    assert scenario.result("entities").new == 1
    stories = cli(scenario.folder, "stories", "--json", "--limit", "100")
    assert "Leak" in stories and "root:" not in stories and "AAAAAAAAAA" not in stories


# -- redirects ------------------------------------------------------------------------------------


def test_redirect_loop_is_refused(scenario: Scenario) -> None:
    loop_a = scenario.urls["loop-a"]
    assert scenario.state("loop-a").error == f"redirect loop: {loop_a} was already visited"


@pytest.mark.parametrize(
    ("case", "address", "kind"),
    [("private", "10.0.0.1", "private"), ("metadata", "169.254.169.254", "link-local")],
)
def test_redirect_to_a_private_address_is_refused_not_connected(
    scenario: Scenario, case: str, address: str, kind: str
) -> None:
    assert scenario.state(case).error == (
        f"refused to connect to {address} ({kind} address) for host {address}"
    )
    # A connection attempt to an unroutable address would have waited for the connect timeout.
    assert scenario.result(case).seconds < TIMEOUT_S


@pytest.mark.parametrize("case", ["m301", "m308"])
def test_permanent_redirect_moves_the_feed(scenario: Scenario, case: str) -> None:
    new = scenario.server.url("/new" + case[1:])
    first, second = scenario.state(case, 0), scenario.state(case, 1)
    assert first.moved_to == new and first.error is None and first.status == 200
    assert second.moved_to == new
    # The next cycle asks the new address directly and never the old one.
    assert "/" + case not in scenario.cycles[1].requests
    assert "/new" + case[1:] in scenario.cycles[1].requests
    row = next(line for line in cli(scenario.folder, "feeds").splitlines() if f" {case} " in line)
    assert f"moved permanently to {new}" in row


@pytest.mark.parametrize("case", ["t302", "t307"])
def test_temporary_redirect_does_not_move_the_feed(scenario: Scenario, case: str) -> None:
    assert scenario.state(case).moved_to is None and scenario.state(case).error is None
    assert "/" + case in scenario.cycles[1].requests


# -- conditional requests and status codes ----------------------------------------------------


@pytest.mark.parametrize(("case", "etag"), [("etag", '"e1"'), ("lastmod", None)])
def test_304_keeps_the_validators_and_adds_nothing(
    scenario: Scenario, case: str, etag: str | None
) -> None:
    first, second = scenario.state(case, 0), scenario.state(case, 1)
    assert first.status == 200 and second.status == 304 and second.error is None
    assert second.etag == etag and second.body_hash == first.body_hash
    assert second.last_modified == first.last_modified
    assert scenario.result(case, 1).unchanged_body and scenario.result(case, 1).new == 0


def test_410_marks_the_feed_gone_and_it_is_not_polled_again(scenario: Scenario) -> None:
    state = scenario.state("gone")
    assert state.gone and state.status == 410
    message = "HTTP 410 Gone: the publisher removed this feed; it is no longer polled"
    assert state.error == message
    assert "/gone" not in scenario.cycles[1].requests + scenario.cycles[2].requests
    row = next(line for line in cli(scenario.folder, "feeds").splitlines() if " gone " in line)
    assert message in row and "410" in row


def test_429_retry_after_seconds_is_a_floor(scenario: Scenario) -> None:
    state = scenario.state("r429s")
    assert state.status == 429 and state.error is not None
    assert state.error.startswith("HTTP 429 Too Many Requests (retry after ")
    assert state.last_polled is not None and state.next_due is not None
    assert state.next_due - state.last_polled >= timedelta(seconds=RETRY_SECONDS - 5)


def test_429_retry_after_date_is_a_floor(scenario: Scenario) -> None:
    state = scenario.state("r429d")
    assert state.error is not None and "(retry after " in state.error
    assert state.last_polled is not None and state.next_due is not None
    assert state.next_due - state.last_polled >= RETRY_DATE_DELAY - timedelta(minutes=1)


def test_429_garbage_retry_after_is_ignored(scenario: Scenario) -> None:
    state = scenario.state("r429g")
    assert state.error == "HTTP 429 Too Many Requests"
    assert state.last_polled is not None and state.next_due is not None
    delay = state.next_due - state.last_polled
    assert INTERVAL <= delay <= INTERVAL * (1 + JITTER_FRACTION)


def test_a_run_of_500s_backs_off_exponentially(scenario: Scenario) -> None:
    for cycle in range(CYCLES):
        state = scenario.state("e500", cycle)
        assert state.error == "HTTP 500 Internal Server Error" and state.status == 500
        assert state.failures == cycle + 1
        assert state.last_polled is not None and state.next_due is not None
        backoff = INTERVAL * 2**cycle
        assert backoff <= state.next_due - state.last_polled <= backoff * (1 + JITTER_FRACTION)


# -- script injection ---------------------------------------------------------------------------


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, attrs))


def tags(html: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    parser = _Tags()
    parser.feed(html)
    parser.close()
    return parser.found


def assert_plain(text: str | None) -> None:
    assert text is None or tags(text) == [], text
    assert text is None or "<script" not in text.lower(), text


def assert_safe_html(html: str) -> None:
    for tag, attrs in tags(html):
        assert tag in _ALLOWED_TAGS, html
        for name, value in attrs:
            assert name in _ALLOWED_ATTRS, html
            if name == "href":
                assert value is not None and value.startswith(("https://", "http://")), html


def test_published_files_hold_no_live_markup(scenario: Scenario) -> None:
    out = scenario.folder / "storage"
    assert "Harmless headline" in (out / "merged.json").read_text()
    feed = json.loads((out / "merged.json").read_text())
    for item in feed["items"]:
        assert_safe_html(item["content_html"])
        assert_plain(item["title"])
        for source in item["_aggregator"]["sources"]:
            assert_plain(source["title"])
            assert_plain(source["outlet"])
            assert source["url"] is None or source["url"].startswith(("http://", "https://"))
    for name, html_elements in (("merged.atom", {"content"}), ("merged.rss", {"description"})):
        root = ET.parse(out / name).getroot()
        for element in root.iter():
            local = element.tag.rsplit("}", 1)[-1]
            if local in html_elements and element.text:
                assert_safe_html(element.text)
            else:
                assert_plain(element.text)
            assert "javascript:" not in " ".join(element.attrib.values())


def test_stories_json_holds_no_live_markup(scenario: Scenario) -> None:
    lines = cli(scenario.folder, "stories", "--json", "--limit", "100").splitlines()
    stories = [json.loads(line) for line in lines]
    assert any("Harmless headline" in s["title"] for s in stories)
    for story in stories:
        assert_plain(story["title"])
        for source in story["sources"]:
            assert_plain(source["title"])
            assert_plain(source["outlet"])
            assert source["url"] is None or source["url"].startswith(("http://", "https://"))
