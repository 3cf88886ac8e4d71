"""Fetcher tests against a real HTTP server on 127.0.0.1 (tests/servers.py)."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator, Iterator
from ipaddress import ip_network
from typing import Any

import pytest
from servers import LoopbackServer, Reply, closed_port

from aggregator import USER_AGENT
from aggregator.exceptions import FetchError
from aggregator.fetch import Fetcher, HTTPStatusError

LOOPBACK = [ip_network("127.0.0.0/8")]
FEED = b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title></channel></rss>'
ETAG = '"v1"'
LAST_MODIFIED = "Fri, 12 Apr 2024 09:00:00 GMT"


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as srv:
        yield srv


@pytest.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    async with make_fetcher() as f:
        yield f


def make_fetcher(**overrides: Any) -> Fetcher:
    options: dict[str, Any] = {
        "user_agent": USER_AGENT,
        "timeout": 5.0,
        "deadline": 10.0,
        "max_bytes": 1024 * 1024,
        "concurrency": 4,
        "per_host": 2,
        "allow_networks": LOOPBACK,
    }
    options.update(overrides)
    return Fetcher(**options)


async def test_200_then_conditional_304(server: LoopbackServer, fetcher: Fetcher) -> None:
    server.route(
        "/feed.xml",
        Reply(
            body=FEED,
            headers={"Content-Type": "application/rss+xml"},
            etag=ETAG,
            last_modified=LAST_MODIFIED,
        ),
    )
    first = await fetcher.fetch(server.url("/feed.xml"))
    assert (first.status, first.content) == (200, FEED)
    assert first.etag == ETAG
    assert first.last_modified == LAST_MODIFIED
    assert first.headers["content-type"] == "application/rss+xml"
    assert first.final_url == first.url == server.url("/feed.xml")
    assert first.permanent_redirect is None

    second = await fetcher.fetch(
        server.url("/feed.xml"), etag=first.etag, last_modified=first.last_modified
    )
    assert second.status == 304
    assert second.content is None
    assert second.not_modified

    plain, conditional = server.requests_to("/feed.xml")
    assert "if-none-match" not in plain.headers
    assert conditional.headers["if-none-match"] == ETAG
    assert conditional.headers["if-modified-since"] == LAST_MODIFIED
    for request in (plain, conditional):
        assert request.headers["user-agent"] == USER_AGENT
        assert "application/rss+xml" in request.headers["accept"]
        assert "gzip" in request.headers["accept-encoding"]


async def test_last_modified_alone_gives_304(server: LoopbackServer, fetcher: Fetcher) -> None:
    server.route("/feed.xml", Reply(body=FEED, last_modified=LAST_MODIFIED))
    result = await fetcher.fetch(server.url("/feed.xml"), last_modified=LAST_MODIFIED)
    assert (result.status, result.content) == (304, None)


async def test_changed_etag_gives_full_body(server: LoopbackServer, fetcher: Fetcher) -> None:
    server.route("/feed.xml", Reply(body=FEED, etag='"v2"'))
    result = await fetcher.fetch(server.url("/feed.xml"), etag=ETAG)
    assert (result.status, result.content, result.etag) == (200, FEED, '"v2"')


async def test_gzip_body_is_decoded(server: LoopbackServer, fetcher: Fetcher) -> None:
    server.route("/feed.xml", Reply(body=gzip.compress(FEED), headers={"Content-Encoding": "gzip"}))
    result = await fetcher.fetch(server.url("/feed.xml"))
    assert result.content == FEED
    assert "content-encoding" not in result.headers


async def test_brotli_body_is_decoded(server: LoopbackServer, fetcher: Fetcher) -> None:
    import brotli

    server.route("/feed.xml", Reply(body=brotli.compress(FEED), headers={"Content-Encoding": "br"}))
    assert (await fetcher.fetch(server.url("/feed.xml"))).content == FEED


async def test_chunked_body_is_read(server: LoopbackServer, fetcher: Fetcher) -> None:
    server.route("/feed.xml", Reply(body=iter([FEED[:10], FEED[10:]]), chunked=True))
    assert (await fetcher.fetch(server.url("/feed.xml"))).content == FEED


@pytest.mark.parametrize(
    ("status", "message"), [(404, "HTTP 404 Not Found"), (500, "HTTP 500 Internal Server Error")]
)
async def test_http_error_status(
    server: LoopbackServer, fetcher: Fetcher, status: int, message: str
) -> None:
    server.route("/feed.xml", Reply(status=status, body=b"nope"))
    with pytest.raises(HTTPStatusError) as caught:
        await fetcher.fetch(server.url("/feed.xml"))
    assert isinstance(caught.value, FetchError)
    assert caught.value.status == status
    assert caught.value.message == message
    assert caught.value.url == server.url("/feed.xml")


async def test_connection_refused(fetcher: Fetcher) -> None:
    with pytest.raises(FetchError) as caught:
        await fetcher.fetch(f"http://127.0.0.1:{closed_port()}/feed.xml")
    assert caught.value.message == "connection refused"
    assert caught.value.status is None


async def test_fetch_outside_context_manager_is_a_programming_error() -> None:
    with pytest.raises(RuntimeError):
        await make_fetcher().fetch("http://127.0.0.1/")
