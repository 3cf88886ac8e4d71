"""The web surface against a real SQLite database: pages, feeds over HTTP, health, metrics."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import feedparser
import httpx
import pytest
from factories import make_entry
from lxml import etree
from prometheus_client.parser import text_string_to_metric_families
from test_publish import _atom_schema, _schematron_failures

from aggregator.config import Config, load_config_text
from aggregator.exceptions import StorageError
from aggregator.refresh.updater import RefreshResult
from aggregator.storage import SqlStorage, open_storage
from aggregator.types import (
    Assignment,
    Entry,
    FeedRefresh,
    FeedSpec,
    FeedStateUpdate,
)
from aggregator.web import Metrics, bind_socket, create_app, serve
from aggregator.web.params import MAX_LIMIT

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ALPHA = "https://alpha.example/feed.xml"
BETA = "https://beta.example/rss"
GAMMA = "https://gamma.example/atom"
DELTA = "https://delta.example/feed"
OMEGA = "https://omega.example/feed"
SCRIPT_HEADLINE = "<script>document.title='pwned';window.pwned=true</script> Markets rally"
EVIDENCE = {
    "rule": "score",
    "cosine": 0.8123,
    "fuzzy": 0.7,
    "shared_terms": ["quake", "coast"],
    "score": 0.7712,
}


def _entry(
    feed: str,
    entry_id: str,
    title: str,
    published: datetime,
    *,
    seen: datetime | None = None,
    summary: str = "",
) -> Entry:
    page = f"{feed.rsplit('/', 1)[0]}/{entry_id}"
    return make_entry(
        feed,
        entry_id,
        title,
        url=page,
        link=page,
        published=published,
        content_hash=entry_id,
        first_seen=seen,
        summary=summary,
    )


QUAKE_LEAD = (
    "A strong earthquake struck the coast on Wednesday morning, damaging buildings and "
    "injuring dozens. Rescue teams were sent from the capital."
)


def _ok(at: datetime) -> FeedStateUpdate:
    return FeedStateUpdate(
        last_polled=at, next_due=at + timedelta(minutes=15), status=200, error=None
    )


def seed(storage: SqlStorage) -> None:
    """Three stories: a fresh quake from three outlets, an old single-source story, and a story
    with a hostile headline that a second outlet joined 20 minutes ago. Plus two unhealthy feeds.
    """
    storage.sync_feeds(
        [
            FeedSpec(ALPHA, name="Alpha News", tags=("world",)),
            FeedSpec(BETA, name="Beta Wire", tags=("business",)),
            FeedSpec(GAMMA, name="Gamma Times", tags=("world",)),
            FeedSpec(DELTA, name="Delta Daily"),
            FeedSpec(OMEGA, name="Omega Post"),
        ],
        NOW - timedelta(hours=6),
    )
    old_at = NOW - timedelta(hours=5)
    script_at = NOW - timedelta(hours=3)
    quake_at = NOW - timedelta(minutes=30)
    gamma_at = NOW - timedelta(minutes=20)
    first = Assignment("old1", True, 0.0, {"rule": "no_candidate", "score": 0.0})
    storage.store_refresh(
        FeedRefresh(ALPHA, _ok(old_at), ((_entry(ALPHA, "a-old", "Budget passes", old_at), first),))
    )
    script = Assignment("mkt1", True, 0.0, {"rule": "no_candidate", "score": 0.0})
    storage.store_refresh(
        FeedRefresh(
            BETA, _ok(script_at), ((_entry(BETA, "b-mkt", SCRIPT_HEADLINE, script_at), script),)
        )
    )
    quake_new = Assignment("quake1", True, 0.0, {"rule": "no_candidate", "score": 0.0})
    storage.store_refresh(
        FeedRefresh(
            ALPHA,
            _ok(quake_at),
            (
                (
                    _entry(ALPHA, "a-quake", "Quake hits coast", quake_at, summary=QUAKE_LEAD),
                    quake_new,
                ),
            ),
        )
    )
    joined = Assignment("quake1", False, 0.7712, EVIDENCE)
    storage.store_refresh(
        FeedRefresh(
            BETA,
            _ok(quake_at + timedelta(minutes=5)),
            (
                (
                    _entry(
                        BETA,
                        "b-quake",
                        "Strong quake strikes coast",
                        quake_at,
                        seen=quake_at + timedelta(minutes=5),
                        summary="Dozens were hurt when a strong quake struck the coast.",
                    ),
                    joined,
                ),
            ),
        )
    )
    joined_mkt = Assignment("mkt1", False, 0.66, {"rule": "same_url", "score": 1.0})
    storage.store_refresh(
        FeedRefresh(
            GAMMA,
            _ok(gamma_at),
            (
                (
                    _entry(GAMMA, "g-quake", "Coast quake: dozens hurt", quake_at, seen=gamma_at),
                    joined,
                ),
                (
                    _entry(GAMMA, "g-mkt", "Markets rally again", script_at, seen=gamma_at),
                    joined_mkt,
                ),
            ),
        )
    )
    failed = FeedStateUpdate(
        last_polled=NOW - timedelta(minutes=3),
        next_due=NOW + timedelta(minutes=30),
        status=None,
        error="connection refused by delta.example",
    )
    storage.store_refresh(FeedRefresh(DELTA, failed))
    gone = FeedStateUpdate(
        last_polled=NOW - timedelta(minutes=8),
        next_due=NOW + timedelta(hours=24),
        status=410,
        error="HTTP 410 Gone",
        moved_to="https://omega.example/new-feed",
        gone=True,
    )
    storage.store_refresh(FeedRefresh(OMEGA, gone))


def make_config(tmp_path: Path) -> Config:
    """A configuration whose storage lives in ``tmp_path``."""
    text = f"settings:\n  storage: {tmp_path / 'web.db'}\n  max_stories: 50\nfeeds: []\n"
    return load_config_text(text, tmp_path / "feeds.yml")


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path)


@pytest.fixture
def storage(config: Config) -> Iterator[SqlStorage]:
    store = open_storage(config.settings.storage_url)
    seed(store)
    yield store
    store.close()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


# The address the app is told it is published at; the test client's Host is testserver.
PUBLIC = "http://news.example/"


def asgi_client(app: Any) -> httpx.AsyncClient:
    """An HTTP client speaking to ``app`` in process, through httpx's ASGI transport."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


@pytest.fixture
async def client(
    storage: SqlStorage, config: Config, metrics: Metrics
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        storage, settings=config.settings, metrics=metrics, clock=lambda: NOW, public_url=PUBLIC
    )
    async with asgi_client(app) as http:
        yield http


def _articles(html: str) -> list[etree._Element]:
    doc = etree.fromstring(html.encode(), etree.HTMLParser())
    return list(doc.iter("article"))


async def test_feed_text_is_escaped_not_interpreted(client: httpx.AsyncClient) -> None:
    for path in ("/", "/stories/mkt1"):
        html = (await client.get(path)).text
        assert "<script>document.title" not in html
        assert "&lt;script&gt;document.title=&#39;pwned&#39;" in html


async def test_unknown_story_is_a_404_page(client: httpx.AsyncClient) -> None:
    response = await client.get("/stories/nope<b>")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "There is no story with id &#39;nope&lt;b&gt;&#39;" in response.text
    assert (await client.get("/no/such/page")).status_code == 404


async def test_atom_feed_is_valid_and_cites_every_source(client: httpx.AsyncClient) -> None:
    response = await client.get("/feed.atom")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/atom+xml; charset=utf-8"
    doc = etree.fromstring(response.content)
    schema = _atom_schema()
    assert schema.validate(doc), schema.error_log
    assert _schematron_failures(doc) == []
    self_link = doc.find("{http://www.w3.org/2005/Atom}link[@rel='self']").get("href")
    assert self_link.startswith(PUBLIC)
    again = await client.get("/" + self_link.removeprefix(PUBLIC))
    assert again.status_code == 200 and again.content == response.content
    parsed = feedparser.parse(response.content)
    assert [e.title for e in parsed.entries] == [
        "Quake hits coast",
        SCRIPT_HEADLINE,
        "Budget passes",
    ]


async def test_rss_and_json_feeds(client: httpx.AsyncClient) -> None:
    rss = await client.get("/feed.rss")
    assert rss.headers["content-type"] == "application/rss+xml; charset=utf-8"
    assert feedparser.parse(rss.content).version == "rss20"
    js = await client.get("/feed.json")
    assert js.headers["content-type"] == "application/feed+json; charset=utf-8"
    body = json.loads(js.content)
    assert body["version"] == "https://jsonfeed.org/version/1.1"
    assert len(body["items"]) == 3


@pytest.mark.parametrize("path", ["/feed.atom", "/feed.rss", "/feed.json"])
async def test_conditional_requests(client: httpx.AsyncClient, path: str) -> None:
    first = await client.get(path)
    etag = first.headers["etag"]
    last_modified = first.headers["last-modified"]
    assert etag.startswith('"') and not etag.startswith("W/")
    # The quake story was last touched by the refresh 20 minutes before NOW.
    assert last_modified == format_datetime(NOW - timedelta(minutes=20), usegmt=True)
    again = await client.get(path)
    assert again.content == first.content and again.headers["etag"] == etag

    not_modified = await client.get(path, headers={"If-None-Match": etag})
    assert not_modified.status_code == 304
    assert not_modified.content == b""
    assert not_modified.headers["etag"] == etag
    listed = await client.get(path, headers={"If-None-Match": f'"other", W/{etag}'})
    assert listed.status_code == 304
    assert (await client.get(path, headers={"If-None-Match": '"stale"'})).status_code == 200
    # If-None-Match wins over If-Modified-Since when both are sent.
    both = {"If-None-Match": '"stale"', "If-Modified-Since": last_modified}
    assert (await client.get(path, headers=both)).status_code == 200

    assert (await client.get(path, headers={"If-Modified-Since": last_modified})).status_code == 304
    earlier = format_datetime(NOW - timedelta(hours=1), usegmt=True)
    assert (await client.get(path, headers={"If-Modified-Since": earlier})).status_code == 200
    assert (await client.get(path, headers={"If-Modified-Since": "yesterday"})).status_code == 200


async def test_filters(client: httpx.AsyncClient) -> None:
    async def titles(query: str) -> list[str]:
        data = json.loads((await client.get("/feed.json" + query)).content)
        return [item["title"] for item in data["items"]]

    assert await titles("?tag=business") == ["Quake hits coast", SCRIPT_HEADLINE]
    assert await titles("?min_sources=3") == ["Quake hits coast"]
    assert await titles("?min_sources=2&tag=world") == ["Quake hits coast", SCRIPT_HEADLINE]
    assert await titles("?limit=1") == ["Quake hits coast"]
    assert await titles(f"?limit={MAX_LIMIT * 10}") == [
        "Quake hits coast",
        SCRIPT_HEADLINE,
        "Budget passes",
    ]
    assert await titles("?tag=nothing") == []
    filtered = (await client.get("/feed.atom?min_sources=3")).headers["etag"]
    assert filtered != (await client.get("/feed.atom")).headers["etag"]
    page = await client.get("/?min_sources=3")
    assert [a.find(".//h2/a").text for a in _articles(page.text)] == ["Quake hits coast"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("min_sources=abc", "min_sources must be a whole number from 1 to 1000, not 'abc'"),
        ("min_sources=0", "min_sources must be a whole number from 1 to 1000, not '0'"),
        ("min_sources=1001", "min_sources must be a whole number from 1 to 1000, not '1001'"),
        ("min_sources=" + "9" * 5000, "min_sources must be a whole number"),
        ("limit=-1", "limit must be a whole number from 1 to 500, not '-1'"),
        ("limit=2.5", "limit must be a whole number from 1 to 500, not '2.5'"),
        ("tag=", "tag is empty"),
        ("tag=a&tag=b", "tag is given 2 times; give it once"),
        ("tag=" + "x" * 101, "tag is 101 characters long"),
    ],
)
async def test_bad_filters_are_400_with_a_reason(
    client: httpx.AsyncClient, query: str, message: str
) -> None:
    response = await client.get("/feed.atom?" + query)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/plain")
    assert message in response.text
    page = await client.get("/?" + query)
    if query == "tag=":
        # The front page's own form sends an empty tag for "all tags".
        assert page.status_code == 200
        return
    assert page.status_code == 400
    assert page.headers["content-type"].startswith("text/html")


async def test_feeds_page_shows_health(client: httpx.AsyncClient) -> None:
    response = await client.get("/feeds")
    assert response.status_code == 200
    doc = etree.fromstring(response.text.encode(), etree.HTMLParser())
    rows = {
        "".join(r.find("td/strong").itertext()): (
            r.get("class"),
            ["".join(td.itertext()) for td in r.findall("td")],
        )
        for r in doc.iterfind(".//tbody/tr")
    }
    assert set(rows) == {"Alpha News", "Beta Wire", "Gamma Times", "Delta Daily", "Omega Post"}
    health, cells = rows["Delta Daily"]
    assert health == "health-failing"
    assert cells[1] == "3 min ago" and cells[2] == "no response" and cells[3] == "1"
    assert cells[4] == "in 30 min"
    assert "connection refused by delta.example" in cells[5]
    health, cells = rows["Omega Post"]
    assert cells[2] == "410 Gone"
    assert "gone" in cells[5] and "moved permanently to https://omega.example/new-feed" in cells[5]
    health, cells = rows["Alpha News"]
    assert health == "health-ok" and cells[2] == "200 OK" and cells[3] == "0"


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["db"] == "ok" and body["schema_version"] >= 1


class _BrokenStorage(SqlStorage):
    """A real storage whose database has become unreachable."""

    def schema_version(self) -> int:
        raise StorageError("database is locked")

    def recent_stories(self, limit: int, **_: Any) -> list[Any]:
        raise StorageError("database is locked")

    def front_page(self, limit: int, **_: Any) -> list[Any]:
        raise StorageError("database is locked")

    def count_stories(self, **_: Any) -> int:
        raise StorageError("database is locked")


async def test_healthz_and_pages_report_an_unreachable_database(
    storage: SqlStorage, config: Config
) -> None:
    broken = _BrokenStorage(storage.engine)
    async with asgi_client(create_app(broken, settings=config.settings)) as client:
        health = await client.get("/healthz")
        assert health.status_code == 503
        assert health.json() == {"status": "error", "db": "unavailable: database is locked"}
        page = await client.get("/")
        assert page.status_code == 503
        assert "database is unavailable" in page.text
        # Counters are still served when the gauges cannot be refreshed.
        assert (await client.get("/metrics")).status_code == 200


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def test_metrics_exposition(client: httpx.AsyncClient, metrics: Metrics) -> None:
    metrics.observe_poll(RefreshResult(ALPHA, "Alpha", 200, 3, 1, None, 0.2))
    metrics.observe_poll(RefreshResult(BETA, "Beta", 304, 0, 0, None, 0.03, unchanged_body=True))
    metrics.observe_poll(RefreshResult(DELTA, "Delta", None, 0, 0, "connection refused", 7.0))
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    assert "# TYPE aggregator_polls_total counter" in text
    assert "# TYPE aggregator_poll_duration_seconds histogram" in text
    assert "# TYPE aggregator_stories gauge" in text
    samples = _samples(text)
    assert samples[("aggregator_polls_total", (("result", "ok"),))] == 1
    assert samples[("aggregator_polls_total", (("result", "not_modified"),))] == 1
    assert samples[("aggregator_polls_total", (("result", "error"),))] == 1
    assert samples[("aggregator_fetch_errors_total", ())] == 1
    assert samples[("aggregator_entries_total", (("kind", "new"),))] == 3
    assert samples[("aggregator_entries_total", (("kind", "updated"),))] == 1
    assert samples[("aggregator_poll_duration_seconds_count", ())] == 3
    assert samples[("aggregator_poll_duration_seconds_bucket", (("le", "0.05"),))] == 1
    assert samples[("aggregator_poll_duration_seconds_bucket", (("le", "10.0"),))] == 3
    assert samples[("aggregator_feeds", ())] == 5
    assert samples[("aggregator_stories", ())] == 3


async def test_serve_runs_uvicorn_in_the_current_loop(storage: SqlStorage, config: Config) -> None:
    app = create_app(storage, settings=config.settings)
    sock = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    stop = asyncio.Event()
    task = asyncio.create_task(serve(app, "127.0.0.1", port, stop, sock=sock))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", trust_env=False) as http:
        for _ in range(100):  # uvicorn starts within milliseconds; allow 5 s on a busy machine
            try:
                response = await http.get("/healthz")
                break
            except httpx.ConnectError:
                await asyncio.sleep(0.05)
        assert response.json()["status"] == "ok"
        assert (await http.get("/feed.atom")).status_code == 200
    stop.set()
    await asyncio.wait_for(task, timeout=10)
    assert sock.fileno() == -1  # closed


def test_bind_socket_reports_an_address_in_use() -> None:
    from aggregator.exceptions import AggregatorError

    taken = bind_socket("127.0.0.1", 0)
    port = taken.getsockname()[1]
    try:
        with pytest.raises(AggregatorError, match=f"cannot listen on 127.0.0.1:{port}"):
            bind_socket("127.0.0.1", port)
    finally:
        taken.close()


@pytest.mark.parametrize("path", ["/feed.atom", "/feed.rss", "/feed.json"])
async def test_feed_links_ignore_a_forged_host_header(
    client: httpx.AsyncClient, storage: SqlStorage, config: Config, path: str
) -> None:
    forged = await client.get(path, headers={"Host": "evil.example"})
    assert forged.status_code == 200
    assert "evil.example" not in forged.text and PUBLIC in forged.text
    # Without a configured address, the listen address: still not the Host header.
    app = create_app(storage, settings=config.settings)
    async with asgi_client(app) as http:
        default = await http.get(path, headers={"Host": "evil.example"})
    assert "evil.example" not in default.text
    assert f"http://{config.settings.listen}/" in default.text
