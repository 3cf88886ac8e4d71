"""Fetcher tests against a real HTTP server on 127.0.0.1 (tests/servers.py)."""

from __future__ import annotations

import asyncio
import gzip
import re
import threading
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address, ip_network
from typing import Any

import brotli
import pytest
from servers import LoopbackServer, RecordedRequest, Reply, closed_port, drip, endless

from aggregator import USER_AGENT
from aggregator.exceptions import FetchError
from aggregator.fetch import (
    DeadlineExceeded,
    Fetcher,
    ForbiddenAddress,
    HTTPStatusError,
    RedirectError,
    ResponseTooLarge,
    cache_floor,
)
from aggregator.fetch._decode import BoundedDecoder
from aggregator.fetch._guard import address_kind
from aggregator.fetch._headers import MAX_CACHE_FLOOR, MAX_RETRY_AFTER

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


# --- Defences -------------------------------------------------------------------------------

MIB = 1024 * 1024


def elapsed_since(start: float) -> float:
    return time.monotonic() - start


async def test_slow_drip_fails_at_the_deadline(server: LoopbackServer) -> None:
    # One byte every 0.5 s never trips the 5 s read timeout; only the deadline stops it.
    server.route("/drip", Reply(body=drip(FEED, every=0.5), content_length=len(FEED)))
    async with make_fetcher(deadline=1.5) as fetcher:
        start = time.monotonic()
        with pytest.raises(DeadlineExceeded) as caught:
            await fetcher.fetch(server.url("/drip"))
    assert caught.value.message == "no response within 1.5 s deadline"
    assert 1.5 <= elapsed_since(start) < 2.5


async def test_silent_server_trips_the_read_timeout(server: LoopbackServer) -> None:
    server.route("/silent", Reply(body=FEED, delay=2.0))
    async with make_fetcher(timeout=0.3) as fetcher:
        start = time.monotonic()
        with pytest.raises(FetchError) as caught:
            await fetcher.fetch(server.url("/silent"))
    assert caught.value.message == "no data received for 0.3 s"
    assert elapsed_since(start) < 1.5


BOMBS: dict[str, Callable[[], bytes]] = {
    # 64 MiB of zeros: 64 KiB as gzip/deflate, about 100 bytes as brotli.
    "gzip": lambda: gzip.compress(bytes(64 * MIB), compresslevel=1),
    "br": lambda: brotli.compress(bytes(64 * MIB), quality=5),
    "deflate": lambda: zlib.compress(bytes(64 * MIB), 1),
}


@pytest.mark.parametrize("encoding", BOMBS)
async def test_compression_bomb_is_stopped_at_the_cap(
    server: LoopbackServer, encoding: str
) -> None:
    bomb = BOMBS[encoding]()
    server.route("/bomb", Reply(body=bomb, headers={"Content-Encoding": encoding}))
    async with make_fetcher(max_bytes=MIB) as fetcher:
        tracemalloc.start()
        start = time.monotonic()
        try:
            with pytest.raises(ResponseTooLarge) as caught:
                await fetcher.fetch(server.url("/bomb"))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert caught.value.message == "body exceeds 1 MiB after decompression"
    # 64 MiB inflated would show here; the bounded decoder keeps to a few times the cap.
    assert peak < 8 * MIB
    assert elapsed_since(start) < 2.0


async def test_endless_chunked_body_is_stopped(server: LoopbackServer) -> None:
    server.route("/endless", Reply(body=endless(), chunked=True))
    async with make_fetcher(max_bytes=MIB) as fetcher:
        start = time.monotonic()
        with pytest.raises(ResponseTooLarge, match="body exceeds 1 MiB after decompression"):
            await fetcher.fetch(server.url("/endless"))
    assert elapsed_since(start) < 2.0


async def test_endless_body_without_framing_is_stopped(server: LoopbackServer) -> None:
    server.route("/endless", Reply(body=endless(), content_length=None))
    async with make_fetcher(max_bytes=MIB) as fetcher:
        with pytest.raises(ResponseTooLarge):
            await fetcher.fetch(server.url("/endless"))


async def test_huge_content_length_is_refused_before_reading(server: LoopbackServer) -> None:
    server.route("/huge", Reply(body=endless(), content_length=5 * 1024 * MIB))
    async with make_fetcher(max_bytes=MIB) as fetcher:
        start = time.monotonic()
        with pytest.raises(ResponseTooLarge) as caught:
            await fetcher.fetch(server.url("/huge"))
    assert caught.value.message == "Content-Length of 5 GiB exceeds the 1 MiB limit"
    assert elapsed_since(start) < 1.0


async def test_short_body_under_a_longer_content_length(
    server: LoopbackServer, fetcher: Fetcher
) -> None:
    # Claims 1000 bytes, sends 10 and hangs up.
    server.route("/short", Reply(body=iter([FEED[:10]]), content_length=1000))
    with pytest.raises(FetchError) as caught:
        await fetcher.fetch(server.url("/short"))
    assert caught.value.message == "connection closed before the response was complete"


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/feed", "file:///etc/passwd", "gopher://x/"])
async def test_only_http_and_https(fetcher: Fetcher, url: str) -> None:
    with pytest.raises(FetchError, match="unsupported URL scheme"):
        await fetcher.fetch(url)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_loopback_is_refused_without_an_allow_list(server: LoopbackServer, host: str) -> None:
    server.route("/feed.xml", Reply(body=FEED))
    async with make_fetcher(allow_networks=()) as fetcher:
        with pytest.raises(ForbiddenAddress) as caught:
            await fetcher.fetch(f"http://{host}:{server.port}/feed.xml")
    assert "127.0.0.1 (loopback address)" in caught.value.message
    assert server.requests == []


@pytest.mark.parametrize(
    ("target", "kind"),
    [
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://10.0.0.1/", "private"),
        ("http://[::ffff:127.0.0.1]:{port}/feed.xml", "loopback"),
        ("http://0.0.0.0:{port}/feed.xml", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
    ],
)
async def test_every_redirect_hop_is_checked(
    server: LoopbackServer, target: str, kind: str
) -> None:
    # The allow-list admits the first hop only; the refusal happens before any connection.
    server.route("/feed.xml", Reply.redirect(target.format(port=server.port)))
    async with make_fetcher(allow_networks=[ip_network("127.0.0.1/32")]) as fetcher:
        with pytest.raises(ForbiddenAddress) as caught:
            await fetcher.fetch(server.url("/feed.xml"))
    assert f"({kind} address)" in caught.value.message
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
        ("127.0.0.2", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("10.1.2.3", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("::ffff:10.0.0.1", "private"),
        ("2002:7f00:1::", "loopback"),
        ("100.64.0.1", "non-global"),
        ("239.255.255.250", "multicast"),
        ("240.0.0.1", "reserved"),
    ],
)
def test_address_kinds(address: str, kind: str | None) -> None:
    assert address_kind(ip_address(address)) == kind


async def test_permanent_redirects_are_reported(server: LoopbackServer, fetcher: Fetcher) -> None:
    server.route("/old", Reply.redirect("/older", 301))
    server.route("/older", Reply.redirect(server.url("/new"), 308))
    server.route("/new", Reply(body=FEED))
    result = await fetcher.fetch(server.url("/old"))
    assert result.content == FEED
    assert result.final_url == result.permanent_redirect == server.url("/new")


async def test_temporary_hop_means_no_permanent_redirect(
    server: LoopbackServer, fetcher: Fetcher
) -> None:
    server.route("/old", Reply.redirect("/mid", 301))
    server.route("/mid", Reply.redirect("/new", 302))
    server.route("/new", Reply(body=FEED))
    result = await fetcher.fetch(server.url("/old"))
    assert (result.final_url, result.permanent_redirect) == (server.url("/new"), None)


async def test_too_many_redirects(server: LoopbackServer) -> None:
    for hop in range(4):
        server.route(f"/r{hop}", Reply.redirect(f"/r{hop + 1}"))
    server.route("/r4", Reply(body=FEED))
    async with make_fetcher(max_redirects=3) as fetcher:
        with pytest.raises(RedirectError) as caught:
            await fetcher.fetch(server.url("/r0"))
    assert caught.value.message == "too many redirects (more than 3)"
    assert len(server.requests) == 4


async def test_redirect_loop(server: LoopbackServer, fetcher: Fetcher) -> None:
    server.route("/a", Reply.redirect("/b"))
    server.route("/b", Reply.redirect("/a"))
    with pytest.raises(RedirectError) as caught:
        await fetcher.fetch(server.url("/a"))
    assert caught.value.message == f"redirect loop: {server.url('/a')} was already visited"


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("javascript:alert(1)", "unsupported URL scheme 'javascript' in redirect target"),
        ("file:///etc/passwd", "unsupported URL scheme 'file' in redirect target"),
        ("", "HTTP 302 redirect without a Location"),
    ],
)
async def test_bad_redirect_targets(
    server: LoopbackServer, fetcher: Fetcher, location: str, message: str
) -> None:
    server.route("/a", Reply(status=302, headers={"Location": location} if location else {}))
    with pytest.raises(RedirectError, match=re.escape(message)):
        await fetcher.fetch(server.url("/a"))


@pytest.mark.parametrize(
    ("status", "header", "expected"),
    [
        (429, "120", timedelta(seconds=120)),
        (503, "Fri, 31 Dec 2100 23:59:59 GMT", MAX_RETRY_AFTER),
        (503, "soon, probably", None),
        (429, None, None),
    ],
)
async def test_retry_after(
    server: LoopbackServer,
    fetcher: Fetcher,
    status: int,
    header: str | None,
    expected: timedelta | None,
) -> None:
    server.route("/busy", Reply(status=status, headers={"Retry-After": header} if header else {}))
    before = datetime.now(UTC)
    with pytest.raises(HTTPStatusError) as caught:
        await fetcher.fetch(server.url("/busy"))
    assert caught.value.status == status
    if expected is None:
        assert caught.value.retry_after is None
    else:
        assert caught.value.retry_after is not None
        wait = caught.value.retry_after - before
        assert expected - timedelta(seconds=5) <= wait <= expected + timedelta(seconds=5)


async def test_gone_is_distinguishable(server: LoopbackServer, fetcher: Fetcher) -> None:
    server.route("/gone", Reply(status=410))
    with pytest.raises(HTTPStatusError) as caught:
        await fetcher.fetch(server.url("/gone"))
    assert (caught.value.status, caught.value.message) == (410, "HTTP 410 Gone")


async def test_per_host_limit_is_respected(server: LoopbackServer) -> None:
    active, peak = 0, 0
    lock = threading.Lock()

    def slow(request: RecordedRequest) -> Reply:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.15)
        with lock:
            active -= 1
        return Reply(body=FEED)

    server.route("/feed.xml", slow)
    async with make_fetcher(per_host=2, concurrency=8) as fetcher:
        urls = [server.url(f"/feed.xml?n={n}") for n in range(6)]
        results = await asyncio.gather(*(fetcher.fetch(u) for u in urls))
    assert [r.content for r in results] == [FEED] * 6
    assert peak == 2


CACHE_CASES: dict[str, tuple[dict[str, str], timedelta | None]] = {
    "max-age": ({"cache-control": "public, max-age=600"}, timedelta(minutes=10)),
    "max-age less age": ({"cache-control": "max-age=600", "age": "100"}, timedelta(seconds=500)),
    "stale": ({"cache-control": "max-age=60", "age": "100"}, None),
    "no-store": ({"cache-control": "no-store, max-age=600"}, None),
    "expires": ({"expires": "Fri, 12 Apr 2024 12:30:00 GMT"}, timedelta(minutes=30)),
    "expired": ({"expires": "Fri, 12 Apr 2024 11:00:00 GMT"}, None),
    "garbage expires": ({"expires": "0"}, None),
    "capped": ({"cache-control": "max-age=31536000"}, MAX_CACHE_FLOOR),
    "nothing": ({}, None),
}


@pytest.mark.parametrize(("headers", "expected"), CACHE_CASES.values(), ids=CACHE_CASES)
def test_cache_floor(headers: dict[str, str], expected: timedelta | None) -> None:
    now = datetime(2024, 4, 12, 12, 0, tzinfo=UTC)
    floor = cache_floor(headers, now)
    assert (floor - now if floor else None) == expected


def test_gzip_with_several_members_and_raw_deflate() -> None:
    two_members = gzip.compress(b"one ") + gzip.compress(b"two")
    decoder = BoundedDecoder("gzip", MIB)
    for start in range(0, len(two_members), 7):
        decoder.feed(two_members[start : start + 7])
    assert decoder.result() == b"one two"
    raw = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    decoder = BoundedDecoder("deflate", MIB)
    decoder.feed(raw.compress(FEED) + raw.flush())
    assert decoder.result() == FEED


@pytest.mark.parametrize("option", ["timeout", "deadline", "max_bytes", "concurrency", "per_host"])
def test_non_positive_limits_are_rejected(option: str) -> None:
    with pytest.raises(ValueError, match=option):
        make_fetcher(**{option: 0})


# --- Connection reuse -----------------------------------------------------------------------


def connections_used(server: LoopbackServer) -> int:
    return len({request.client for request in server.requests})


async def test_304_error_and_redirect_keep_the_connection(
    server: LoopbackServer, fetcher: Fetcher
) -> None:
    # An unread 304 body used to close its connection, so every steady poll paid a connect.
    server.route("/feed.xml", Reply(body=FEED, etag=ETAG))
    server.route("/missing", Reply(status=404, body=b"not here"))
    server.route("/moved", Reply.redirect("/feed.xml", 301))
    await fetcher.fetch(server.url("/feed.xml"))
    for _ in range(3):
        assert (await fetcher.fetch(server.url("/feed.xml"), etag=ETAG)).status == 304
    with pytest.raises(HTTPStatusError):
        await fetcher.fetch(server.url("/missing"))
    assert (await fetcher.fetch(server.url("/moved"), etag=ETAG)).status == 304
    assert len(server.requests) == 7
    assert connections_used(server) == 1


async def test_long_unread_error_body_closes_instead_of_draining(server: LoopbackServer) -> None:
    server.route("/error", Reply(status=500, body=endless(), chunked=True))
    server.route("/feed.xml", Reply(body=FEED))
    async with make_fetcher(max_bytes=MIB) as fetcher:
        start = time.monotonic()
        with pytest.raises(HTTPStatusError):
            await fetcher.fetch(server.url("/error"))
        assert elapsed_since(start) < 2.0
        assert (await fetcher.fetch(server.url("/feed.xml"))).content == FEED
    assert connections_used(server) == 2


async def test_connection_closed_by_the_server_while_idle_is_not_reused(
    server: LoopbackServer, fetcher: Fetcher
) -> None:
    # Framed as keep-alive, but the server hangs up after it: the idle connection turns readable.
    once = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(FEED) + FEED
    server.route("/once", Reply(raw=once))
    server.route("/feed.xml", Reply(body=FEED))
    assert (await fetcher.fetch(server.url("/once"))).content == FEED
    await asyncio.sleep(0.1)
    assert (await fetcher.fetch(server.url("/feed.xml"))).content == FEED
    assert connections_used(server) == 2


async def test_many_fetches_share_the_pool(server: LoopbackServer) -> None:
    server.route("/feed.xml", Reply(body=FEED, etag=ETAG))
    async with make_fetcher(concurrency=4, per_host=4) as fetcher:
        results = await asyncio.gather(
            *(
                fetcher.fetch(server.url(f"/feed.xml?n={n}"), etag=ETAG if n % 2 else None)
                for n in range(40)
            )
        )
    assert [r.status for r in results] == [200, 304] * 20
    assert connections_used(server) <= 4


def test_fetch_benchmark_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks import fetch as fetch_benchmark

    assert fetch_benchmark.main(["--smoke"]) == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.fullmatch(
        r"fetch feeds=50 cpu_ms_304=[\d.]+ cpu_ms_200=[\d.]+ speedup_304=[\d.]+", summary
    )
