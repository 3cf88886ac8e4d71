"""Connect only to addresses we have checked: the defence against server-side request forgery.

The check runs in the network backend, below HTTP: the host name is resolved once, every
resolved address is checked, and the socket is opened to a checked IP address. TLS still uses the
original host name for SNI and certificate checks, and the Host header is unchanged, because
httpcore passes the URL's host to ``start_tls`` and the request, not the address we dialled. So a
DNS answer that changes between check and connect (rebinding) cannot steer us elsewhere, and every
redirect hop, which opens its own connection, is checked the same way.

Residual risk: a kept-alive connection is reused for later requests to the same origin without a
new lookup; it was checked when opened, so this only matters if a permitted address stops being
one while the client lives (the pipeline opens a new client for each run).
"""

from __future__ import annotations

import asyncio
import ipaddress
import select
import socket
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from typing import Any

import httpcore
import httpx

from aggregator.fetch._pool import LinearPool

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class AddressRefused(Exception):
    """Every address of ``host`` is outside the public internet and the allow-list."""

    def __init__(self, host: str, address: IPAddress, kind: str) -> None:
        self.host = host
        self.address = address
        self.kind = kind
        super().__init__(f"refused to connect to {address} ({kind} address) for host {host}")


class ResolutionFailed(Exception):
    """The host name could not be resolved."""

    def __init__(self, host: str, reason: str) -> None:
        self.host = host
        self.reason = reason
        super().__init__(f"DNS lookup failed for {host}: {reason}")


def address_kind(address: IPAddress) -> str | None:
    """Why ``address`` is not a public unicast address, or None when it is one.

    IPv4-mapped and 6to4/Teredo-embedded IPv4 addresses are judged by the IPv4 address inside
    them, so ``::ffff:127.0.0.1`` is loopback.
    """
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address.teredo is not None:
            embedded = address.teredo[1]
        if embedded is not None:
            return address_kind(embedded)
    checks = (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("unspecified", address.is_unspecified),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
    )
    for kind, hit in checks:
        if hit:
            return kind
    if not address.is_global:
        return "non-global"
    return None


class _CheckedStream(httpcore.AsyncNetworkStream):
    """A connection to a checked address whose idle-readability check costs one ``poll``.

    httpcore's pool asks every pooled connection "is_readable" on every request (a server that
    closed an idle connection makes it readable). The anyio stream answers by rebuilding its
    whole attribute table, ``getpeername`` included, each time; this keeps one ``poll`` object
    registered on the socket instead.
    """

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        sock = inner.get_extra_info("socket")
        self._poll: select.poll | None = None
        if sock is not None and sock.fileno() >= 0:
            self._poll = select.poll()
            self._poll.register(sock.fileno(), select.POLLIN)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        self._poll = None
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        tls = await self._inner.start_tls(ssl_context, server_hostname, timeout)
        return _CheckedStream(tls)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            # No socket (closed) reads as readable: the pool then drops the connection. A
            # closed and reused descriptor answers POLLNVAL, which is readable too.
            return self._poll is None or bool(self._poll.poll(0))
        return self._inner.get_extra_info(info)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolve, check, then connect to the checked address with the wrapped backend."""

    def __init__(
        self, allow_networks: Sequence[IPNetwork], inner: httpcore.AsyncNetworkBackend
    ) -> None:
        self._allow = tuple(allow_networks)
        self._inner = inner

    def _allowed(self, address: IPAddress) -> str | None:
        """None when we may connect to ``address``, else the reason we may not."""
        if any(address.version == net.version and address in net for net in self._allow):
            return None
        return address_kind(address)

    async def _resolve(self, host: str, port: int, timeout: float | None) -> list[IPAddress]:
        try:
            return [ipaddress.ip_address(host)]
        except ValueError:
            pass
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"DNS lookup for {host} timed out") from exc
        except (socket.gaierror, UnicodeError) as exc:
            raise ResolutionFailed(host, str(exc.args[-1] if exc.args else exc)) from exc
        addresses: list[IPAddress] = []
        for _family, _type, _proto, _name, sockaddr in infos:
            # Drop an IPv6 zone id ("fe80::1%eth0"): the address itself is what we check.
            address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise ResolutionFailed(host, "no addresses")
        return addresses

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._resolve(host, port, timeout)
        permitted = [a for a in addresses if self._allowed(a) is None]
        if not permitted:
            first = addresses[0]
            raise AddressRefused(host, first, self._allowed(first) or "forbidden")
        last_error: Exception | None = None
        for address in permitted:
            try:
                stream = await self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
                return _CheckedStream(stream)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not used for feeds")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: AsyncIterable[bytes]) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self._stream:
            yield part

    async def aclose(self) -> None:
        aclose = getattr(self._stream, "aclose", None)
        if aclose is not None:
            await aclose()


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport over an httpcore pool whose connections go through ``GuardedBackend``.

    httpcore exceptions are not translated to httpx ones here; the fetcher describes both.
    """

    def __init__(
        self,
        allow_networks: Sequence[IPNetwork],
        *,
        max_connections: int,
        keepalive_expiry: float,
    ) -> None:
        self._pool: httpcore.AsyncConnectionPool = LinearPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=max_connections,
            keepalive_expiry=keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=GuardedBackend(allow_networks, httpcore.AnyIOBackend()),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        response = await self._pool.handle_async_request(core_request)
        assert isinstance(response.stream, AsyncIterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()
