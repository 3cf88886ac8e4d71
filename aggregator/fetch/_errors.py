"""Say in words what a transport exception means, for the feed's error record."""

from __future__ import annotations

import errno
import ssl

import httpcore
import httpx

from aggregator.fetch._headers import human_seconds

# Exceptions from httpx or from httpcore (our transport passes httpcore's through untranslated).
_CONNECT_TIMEOUT = (httpx.ConnectTimeout, httpcore.ConnectTimeout)
_READ_TIMEOUT = (httpx.ReadTimeout, httpcore.ReadTimeout)
_OTHER_TIMEOUT = (httpx.TimeoutException, httpcore.TimeoutException)
_CONNECT = (httpx.ConnectError, httpcore.ConnectError)
_PROTOCOL = (httpx.ProtocolError, httpcore.ProtocolError)
_NETWORK = (httpx.TransportError, httpcore.NetworkError)
_URL = (httpx.InvalidURL, httpx.UnsupportedProtocol, httpcore.UnsupportedProtocol)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _connect_message(exc: BaseException) -> str:
    for cause in _chain(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate rejected: {cause.verify_message or cause}"
        if isinstance(cause, ssl.SSLError):
            return f"TLS handshake failed: {cause.reason or cause}"
        if isinstance(cause, ConnectionRefusedError) or (
            isinstance(cause, OSError) and cause.errno == errno.ECONNREFUSED
        ):
            return "connection refused"
        if isinstance(cause, OSError) and cause.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return "host unreachable"
    text = str(exc)
    if "refused" in text.lower():
        return "connection refused"
    return f"could not connect: {text}" if text else "could not connect"


def describe(exc: BaseException, timeout: float) -> str | None:
    """A short message for a transport-level failure, or None when ``exc`` is not one."""
    limit = human_seconds(timeout)
    if isinstance(exc, _CONNECT_TIMEOUT):
        return f"connection timed out after {limit}"
    if isinstance(exc, _READ_TIMEOUT):
        return f"no data received for {limit}"
    if isinstance(exc, _OTHER_TIMEOUT):
        return f"timed out after {limit}"
    if isinstance(exc, _CONNECT):
        return _connect_message(exc)
    if isinstance(exc, _PROTOCOL):
        text = str(exc)
        if "peer closed" in text or "incomplete" in text.lower():
            return "connection closed before the response was complete"
        return f"malformed HTTP response: {text}" if text else "malformed HTTP response"
    if isinstance(exc, _URL):
        return f"invalid URL: {exc}"
    if isinstance(exc, _NETWORK):
        text = str(exc)
        return f"network error: {text}" if text else "network error"
    return None
