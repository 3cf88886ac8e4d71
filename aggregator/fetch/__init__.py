"""Retrieve feeds politely and defensively.

One ``Fetcher`` owns one ``httpx.AsyncClient`` for the life of a run. Each ``fetch``:

- waits for a global slot and a slot for the feed's host (bounded concurrency, per-host politeness);
- sends a conditional GET (``If-None-Match`` / ``If-Modified-Since``) with our User-Agent and a
  feed-oriented Accept header; a 304 returns ``FetchResult(status=304, content=None)``;
- follows redirects itself, at most ``max_redirects``, refusing loops and non-http(s) targets,
  and reports ``permanent_redirect`` only when every hop was 301/308;
- connects only to public addresses (or ones inside ``allow_networks``), checked after DNS
  resolution on every hop (see ``_guard``);
- streams the body through size-bounded decoders, so neither a lying Content-Length, an endless
  chunked body nor a gzip/brotli bomb can take more than ``max_bytes`` of memory;
- runs under one overall ``deadline``, so a server dripping a byte at a time cannot hold a slot;
- reads a short unused body (304, redirect, error) to its end, so the kept-alive connection is
  reused; the pool's own bookkeeping is kept linear (see ``_pool``).

Every failure raises ``FetchError`` (or a subclass below) whose message says what happened in
words; HTTP errors carry ``status`` and, for 429/503, ``retry_after``.

::

    FetchError
    ├── HTTPStatusError     HTTP 4xx/5xx (status, reason, retry_after)
    ├── RedirectError       too many redirects, a loop, a bad Location
    ├── ForbiddenAddress    the host resolves only to non-public addresses
    ├── ResponseTooLarge    the body exceeds max_bytes (decoded or raw)
    └── DeadlineExceeded    the whole fetch took longer than the deadline
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from http import HTTPStatus
from types import TracebackType
from urllib.parse import urljoin

import httpx

from aggregator import USER_AGENT
from aggregator.defaults import (
    DEFAULT_CONCURRENCY,
    DEFAULT_DEADLINE,
    DEFAULT_MAX_BYTES,
    DEFAULT_PER_HOST,
    DEFAULT_TIMEOUT,
)
from aggregator.exceptions import FetchError
from aggregator.fetch._decode import ACCEPT_ENCODING, BodyTooLarge, BoundedDecoder, DecodeFailed
from aggregator.fetch._errors import describe
from aggregator.fetch._guard import AddressRefused, GuardedTransport, IPNetwork, ResolutionFailed
from aggregator.fetch._headers import cache_floor, human_seconds, human_size, retry_after
from aggregator.types import FetchResult

__all__ = [
    "ACCEPT",
    "UNCONDITIONAL_304",
    "DeadlineExceeded",
    "FetchError",
    "Fetcher",
    "ForbiddenAddress",
    "HTTPStatusError",
    "RedirectError",
    "ResponseTooLarge",
    "cache_floor",
    "retry_after",
]

# Feed types first; generic XML next; anything last, since many servers label feeds text/html.
ACCEPT = (
    "application/atom+xml, application/rss+xml, application/rdf+xml;q=0.9, "
    "application/feed+json;q=0.9, application/xml;q=0.8, text/xml;q=0.8, */*;q=0.1"
)
# Browsers allow ~20; a feed behind more than five hops is broken, and each hop costs a connect.
DEFAULT_MAX_REDIRECTS = 5
# Idle kept-alive connections are dropped after this long (httpx's own default).
KEEPALIVE_SECONDS = 5.0
# A response whose body we do not use (304, redirect, error) is read to its end when it is at
# most this long, so its connection goes back to the pool instead of being closed: closing it
# made every steady-cycle 304 pay a new connection. Redirect and error pages are a few KiB.
DRAIN_MAX_BYTES = 64 * 1024

# The error of a 304 to a request that sent neither If-None-Match nor If-Modified-Since.
UNCONDITIONAL_304 = "HTTP 304 Not Modified to a request without validators: no feed to keep"
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PERMANENT = frozenset({301, 308})
_RETRY_AFTER_STATUSES = frozenset({429, 503})


class HTTPStatusError(FetchError):
    """The server answered 4xx/5xx. ``retry_after`` is set from a 429/503 ``Retry-After``."""

    def __init__(
        self, url: str, status: int, reason: str, *, retry_after: datetime | None = None
    ) -> None:
        message = f"HTTP {status} {reason}".rstrip()
        if retry_after is not None:
            message += f" (retry after {retry_after:%Y-%m-%d %H:%M:%S} UTC)"
        super().__init__(url, message, status=status)
        self.reason = reason
        self.retry_after = retry_after


class RedirectError(FetchError):
    """A redirect could not be followed: too many, a loop, or a bad Location."""


class ForbiddenAddress(FetchError):
    """The host resolves only to addresses we may not connect to."""


class ResponseTooLarge(FetchError):
    """The body is larger than the configured cap."""


class DeadlineExceeded(FetchError):
    """The whole fetch took longer than the deadline."""


def _reason(status: int, given: str) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return given


class Fetcher:
    """Fetches feeds over one shared HTTP client; use as ``async with Fetcher(...) as f``."""

    def __init__(
        self,
        *,
        user_agent: str = USER_AGENT,
        timeout: float = DEFAULT_TIMEOUT.total_seconds(),
        deadline: float = DEFAULT_DEADLINE.total_seconds(),
        max_bytes: int = DEFAULT_MAX_BYTES,
        concurrency: int = DEFAULT_CONCURRENCY,
        per_host: int = DEFAULT_PER_HOST,
        allow_networks: Iterable[IPNetwork | str] = (),
        max_redirects: int = DEFAULT_MAX_REDIRECTS,
    ) -> None:
        for name, value in (
            ("timeout", timeout),
            ("deadline", deadline),
            ("max_bytes", max_bytes),
            ("concurrency", concurrency),
            ("per_host", per_host),
        ):
            if value <= 0:
                raise ValueError(f"{name} must be positive, not {value!r}")
        if max_redirects < 0:
            raise ValueError(f"max_redirects must not be negative, not {max_redirects!r}")
        self.user_agent = user_agent or USER_AGENT
        self.timeout = float(timeout)
        self.deadline = float(deadline)
        self.max_bytes = int(max_bytes)
        self.max_redirects = int(max_redirects)
        self.per_host = int(per_host)
        self.allow_networks = tuple(ipaddress.ip_network(n) for n in allow_networks)
        self._concurrency = int(concurrency)
        self._slots = asyncio.Semaphore(self._concurrency)
        self._host_slots: dict[str, asyncio.Semaphore] = {}
        self._client: httpx.AsyncClient | None = None
        self._transport: GuardedTransport | None = None

    @property
    def concurrency(self) -> int:
        """How many fetches may be in flight at once."""
        return self._concurrency

    def _make_transport(self) -> GuardedTransport:
        """The transport every request goes through (a seam for benchmarks and tests)."""
        return GuardedTransport(
            self.allow_networks,
            max_connections=self._concurrency,
            keepalive_expiry=KEEPALIVE_SECONDS,
        )

    async def __aenter__(self) -> Fetcher:
        transport = self._transport = self._make_transport()
        self._client = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(self.timeout),
            follow_redirects=False,
            # Proxy variables would send every request to the proxy's address, bypassing the
            # address checks; feeds are fetched directly.
            trust_env=False,
            headers={
                "User-Agent": self.user_agent,
                "Accept": ACCEPT,
                "Accept-Encoding": ACCEPT_ENCODING,
            },
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._client is not None:
            await self._client.aclose()  # closes the transport and its connections too
            self._client = None
            self._transport = None

    def _host_slot(self, host: str) -> asyncio.Semaphore:
        slot = self._host_slots.get(host)
        if slot is None:
            slot = self._host_slots[host] = asyncio.Semaphore(self.per_host)
        return slot

    async def fetch(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> FetchResult:
        """GET ``url`` (conditionally when validators are given); raise ``FetchError``.

        The deadline starts once this fetch holds its slots, so time spent queued behind other
        feeds does not count against it.
        """
        if self._client is None or self._transport is None:
            raise RuntimeError("Fetcher must be used as 'async with Fetcher(...) as fetcher'")
        client, transport = self._client, self._transport
        first = _checked_url(url, url, "feed URL")
        async with self._slots, self._host_slot(first.host.lower()):
            started = time.monotonic()
            try:
                async with asyncio.timeout(self.deadline):
                    return await self._fetch(
                        client, transport, url, first, etag, last_modified, started
                    )
            except TimeoutError as exc:
                message = f"no response within {human_seconds(self.deadline)} deadline"
                raise DeadlineExceeded(url, message) from exc

    async def _fetch(
        self,
        client: httpx.AsyncClient,
        transport: GuardedTransport,
        url: str,
        first: httpx.URL,
        etag: str | None,
        last_modified: str | None,
        started: float,
    ) -> FetchResult:
        conditional: dict[str, str] = {}
        if etag:
            conditional["If-None-Match"] = etag
        if last_modified:
            conditional["If-Modified-Since"] = last_modified
        current = first
        visited = {str(current)}
        hops: list[int] = []
        while True:
            try:
                # The client builds the request (default headers, timeouts); the transport sends
                # it, because the client's send() pre-builds the next redirect request and fails
                # on a malformed Location before we could judge it ourselves.
                request = client.build_request("GET", current, headers=conditional)
                response = await transport.handle_async_request(request)
            except AddressRefused as exc:
                raise ForbiddenAddress(url, str(exc)) from exc
            except ResolutionFailed as exc:
                raise FetchError(url, str(exc)) from exc
            except Exception as exc:
                message = describe(exc, self.timeout)
                if message is None:
                    raise
                raise FetchError(url, message) from exc
            drain = True
            try:
                status = response.status_code
                if status in _REDIRECTS:
                    current = self._next_hop(url, current, response, hops, visited)
                    continue
                permanent = str(current) if hops and set(hops) <= _PERMANENT else None
                if status >= 400 or not (200 <= status < 300 or status == 304):
                    raise self._status_error(url, response)
                if status == 304 and not conditional:
                    # Nothing was cached to be "not modified": success here would stand for
                    # ever, with no document ever parsed.
                    raise FetchError(url, UNCONDITIONAL_304, status=status)
                headers = {k.lower(): v for k, v in response.headers.items()}
                content = None
                if status != 304:
                    drain = False  # read in full or failed: nothing left to drain
                    content = await self._read_body(url, response)
                # The body is handed on decoded, so the wire-level framing headers no longer apply.
                for name in ("content-encoding", "content-length", "transfer-encoding"):
                    headers.pop(name, None)
                return FetchResult(
                    url=url,
                    final_url=str(current),
                    status=status,
                    content=content,
                    headers=headers,
                    etag=headers.get("etag"),
                    last_modified=headers.get("last-modified"),
                    permanent_redirect=permanent,
                    elapsed=time.monotonic() - started,
                )
            finally:
                await self._release(response, drain=drain)

    async def _release(self, response: httpx.Response, *, drain: bool) -> None:
        """Close ``response``; first read an unused short body so its connection is reused."""
        if drain:
            await _drain(response)
        await response.aclose()

    def _next_hop(
        self,
        url: str,
        current: httpx.URL,
        response: httpx.Response,
        hops: list[int],
        visited: set[str],
    ) -> httpx.URL:
        location = response.headers.get("location", "").strip()
        if not location:
            raise RedirectError(url, f"HTTP {response.status_code} redirect without a Location")
        hops.append(response.status_code)
        if len(hops) > self.max_redirects:
            raise RedirectError(url, f"too many redirects (more than {self.max_redirects})")
        try:
            joined = urljoin(str(current), location)
        except ValueError as exc:  # urljoin refuses some malformed URLs, e.g. "http://[::1/x"
            raise RedirectError(url, f"invalid redirect target {location!r}: {exc}") from exc
        target = _checked_url(url, joined, "redirect target", error=RedirectError)
        if str(target) in visited:
            raise RedirectError(url, f"redirect loop: {target} was already visited")
        visited.add(str(target))
        return target

    def _status_error(self, url: str, response: httpx.Response) -> FetchError:
        status = response.status_code
        reason = _reason(status, response.reason_phrase)
        if status < 400:
            return FetchError(url, f"unexpected HTTP {status} {reason}".rstrip(), status=status)
        when = None
        if status in _RETRY_AFTER_STATUSES:
            when = retry_after(response.headers.get("retry-after"), datetime.now(UTC))
        return HTTPStatusError(url, status, reason, retry_after=when)

    async def _read_body(self, url: str, response: httpx.Response) -> bytes:
        limit = human_size(self.max_bytes)
        declared = response.headers.get("content-length", "").strip()
        if declared.isdigit() and int(declared) > self.max_bytes:
            size = human_size(int(declared))
            raise ResponseTooLarge(url, f"Content-Length of {size} exceeds the {limit} limit")
        try:
            decoder = BoundedDecoder(response.headers.get("content-encoding", ""), self.max_bytes)
            async for chunk in response.aiter_raw():
                decoder.feed(chunk)
        except BodyTooLarge as exc:
            raise ResponseTooLarge(url, f"body exceeds {limit} after decompression") from exc
        except DecodeFailed as exc:
            raise FetchError(url, str(exc), status=response.status_code) from exc
        except Exception as exc:
            message = describe(exc, self.timeout)
            if message is None:
                raise
            raise FetchError(url, message, status=response.status_code) from exc
        return decoder.result()


async def _drain(response: httpx.Response) -> None:
    """Read the rest of an unused body, up to ``DRAIN_MAX_BYTES``, so the connection is reused.

    Any failure only means the connection is closed instead; the response is already judged.
    """
    declared = response.headers.get("content-length", "").strip()
    if response.status_code != 304 and declared.isdigit() and int(declared) > DRAIN_MAX_BYTES:
        return
    size = 0
    try:
        async for chunk in response.aiter_raw():
            size += len(chunk)
            if size > DRAIN_MAX_BYTES:
                return
    except Exception:  # closing the connection instead is the whole remedy
        return


def _checked_url(
    url: str, candidate: str, what: str, *, error: type[FetchError] = FetchError
) -> httpx.URL:
    """``candidate`` as an absolute http(s) URL, else ``error``."""
    try:
        parsed = httpx.URL(candidate)
    except (httpx.InvalidURL, TypeError) as exc:
        raise error(url, f"invalid {what} {candidate!r}: {exc}") from exc
    if parsed.scheme not in ("http", "https"):
        scheme = parsed.scheme or "(none)"
        raise error(url, f"unsupported URL scheme {scheme!r} in {what}; only http and https")
    if not parsed.host:
        raise error(url, f"{what} {candidate!r} has no host")
    return parsed
