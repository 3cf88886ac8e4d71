"""Parsers for the scalar values found in feeds.yml.

Each function takes what YAML produced (a string, sometimes an int) and returns a typed value,
or raises ``ValueError`` whose text is the message the user sees after ``file:line: key:``.
They know nothing about YAML or pydantic, so they are tested and reused on their own.
"""

from __future__ import annotations

import ipaddress
import os
import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

DURATION_HINT = "is not a duration like 15m or 1h"
SIZE_HINT = "is not a size like 10MiB, 512KB or a number of bytes"

# Components must appear largest first, each at most once: "1h30m" but not "30m1h" or "1h1h".
_DURATION_RE = re.compile(
    r"(?:(?P<d>\d+)\s*d)?\s*(?:(?P<h>\d+)\s*h)?\s*(?:(?P<m>\d+)\s*m)?\s*(?:(?P<s>\d+)\s*s)?"
)
_UNIT_SECONDS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}

# Decimal (KB, MB, GB) and binary (KiB, MiB, GiB) units, as in HTTP tooling and `ls -h --si`.
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1_000,
    "mb": 1_000_000,
    "gb": 1_000_000_000,
    "kib": 1 << 10,
    "mib": 1 << 20,
    "gib": 1 << 30,
}
_SIZE_RE = re.compile(r"(?P<num>\d+(?:\.\d+)?)\s*(?P<unit>[kmg]i?b|b)?", re.IGNORECASE)

# Database URL drivers the storage layer implements (SQLite, PostgreSQL through psycopg 3).
STORAGE_DRIVERS = ("sqlite", "postgresql", "postgresql+psycopg")
_URL_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

# TCP ports are 16-bit; 0 asks the OS for any free port, which a configured service cannot use.
_MIN_PORT = 1
_MAX_PORT = 65_535
# RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens.
_HOSTNAME_RE = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)


def shown(value: object) -> str:
    """How a bad value is quoted in a message: text in quotes, others as YAML would show them."""
    if value is None:
        return "an empty value"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def parse_duration(text: str | int) -> timedelta:
    """Parse ``30s``, ``15m``, ``1h``, ``1h30m``, ``2d`` or a whole number of seconds.

    >>> parse_duration("1h30m")
    datetime.timedelta(seconds=5400)
    >>> parse_duration(90)
    datetime.timedelta(seconds=90)

    Raises ``ValueError`` ("'5 minutes' is not a duration like 15m or 1h") for anything else,
    including negative numbers, fractions and booleans.
    """
    if isinstance(text, bool):  # YAML `yes`/`true`: a bool is an int in Python, never a duration
        raise ValueError(f"{shown(text)} {DURATION_HINT}")
    if isinstance(text, int):
        if text < 0:
            raise ValueError(f"{text} {DURATION_HINT}")
        return timedelta(seconds=text)
    if isinstance(text, str):
        stripped = text.strip()
        if stripped.isdigit():
            return timedelta(seconds=int(stripped))
        match = _DURATION_RE.fullmatch(stripped)
        if stripped and match is not None:
            seconds = sum(
                int(amount) * _UNIT_SECONDS[unit]
                for unit, amount in match.groupdict().items()
                if amount is not None
            )
            return timedelta(seconds=seconds)
    raise ValueError(f"{shown(text)} {DURATION_HINT}")


def format_duration(value: timedelta) -> str:
    """The shortest text ``parse_duration`` reads back as ``value``: ``1h30m``, ``2d``, ``0s``."""
    seconds = int(value.total_seconds())
    parts = []
    for unit, size in _UNIT_SECONDS.items():
        amount, seconds = divmod(seconds, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts) or "0s"


def parse_size(text: str | int) -> int:
    """Parse a byte count: an int, or ``10MB`` (10**6 each), ``512KiB`` (2**10 each), ``1.5GiB``.

    Raises ``ValueError`` unless the result is a whole number of at least one byte.
    """
    if isinstance(text, bool):
        raise ValueError(f"{shown(text)} {SIZE_HINT}")
    if isinstance(text, int):
        size = text
    elif isinstance(text, str) and (match := _SIZE_RE.fullmatch(text.strip())) is not None:
        factor = _SIZE_UNITS[(match["unit"] or "").lower()]
        size = int(float(match["num"]) * factor)
    else:
        raise ValueError(f"{shown(text)} {SIZE_HINT}")
    if size < 1:
        raise ValueError(f"{shown(text)} must be at least 1 byte")
    return size


def check_feed_url(text: str) -> str:
    """Return ``text`` stripped if it is an absolute http(s) URL with a host, else raise."""
    url = text.strip()
    if not url or any(ch.isspace() for ch in url):
        raise ValueError(f"{text!r} is not a URL (it is empty or contains spaces)")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a port that is not 0-65535
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a valid URL ({exc})") from exc
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError(f"{text!r} is not an http:// or https:// URL")
    if not parts.hostname:
        raise ValueError(f"{text!r} has no host name")
    if port == 0:
        raise ValueError(f"{text!r} has port 0")
    return url


def check_public_url(text: str) -> str:
    """Validate ``public_url``: an absolute http(s) URL with no query, fragment or password;
    returned ending in "/" (the published feeds append ``merged.atom``, ``stories/<id>``)."""
    url = check_feed_url(text)
    parts = urlsplit(url)
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise ValueError(f"{text!r} has a query or fragment; give the address of the site root")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{text!r} holds a user name or password, which every reader would see")
    return url if parts.path.endswith("/") else url + "/"


def check_storage(text: str) -> str:
    """Validate the ``storage`` setting: a database URL of a known driver, or a file path."""
    value = text.strip()
    if not value:
        raise ValueError("is empty; give a database file path or URL")
    if _URL_SCHEME_RE.match(value) is None:
        if value.endswith(("/", os.sep)):
            raise ValueError(f"{text!r} is a folder; name the database file, e.g. data/news.db")
        return value
    try:
        url = make_url(value)
    except ArgumentError as exc:
        raise ValueError(f"{text!r} is not a database URL ({exc})") from exc
    if url.drivername not in STORAGE_DRIVERS:
        accepted = ", ".join(f"{d}://" for d in STORAGE_DRIVERS)
        raise ValueError(f"{url.drivername}:// is not supported; use a file path or {accepted}")
    if url.drivername == "sqlite" and not url.database:
        raise ValueError(f"{text!r} names no database file (an in-memory database loses data)")
    return value


def storage_url(value: str, base: Path) -> str:
    """Turn a checked ``storage`` value into a SQLAlchemy URL; paths are relative to ``base``."""
    if _URL_SCHEME_RE.match(value):
        return value
    path = resolve_path(value, base)
    return URL.create("sqlite", database=str(path)).render_as_string(hide_password=False)


def resolve_path(value: str, base: Path) -> Path:
    """An absolute, normalised path; relative paths and ``~`` are resolved from ``base``."""
    return Path(os.path.normpath(base / Path(value).expanduser()))


def parse_listen(text: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[::1]:8080`` for IPv6) into a checked host and port."""
    hint = "is not an address like 127.0.0.1:8080"
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not host:
        raise ValueError(f"{text!r} {hint}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise ValueError(f"{text!r} {hint} ({exc})") from exc
    elif ":" in host:
        raise ValueError(f"{text!r} {hint} (write IPv6 hosts in brackets: [::1]:8080)")
    elif _HOSTNAME_RE.fullmatch(host) is None:
        raise ValueError(f"{text!r} {hint} ({host!r} is not a host name or IP address)")
    if not port_text.isdigit() or not _MIN_PORT <= int(port_text) <= _MAX_PORT:
        raise ValueError(f"{text!r} has port {port_text!r}; a port is {_MIN_PORT}-{_MAX_PORT}")
    return host, int(port_text)


def parse_network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """Parse a CIDR range such as ``10.0.0.0/8`` or ``fd00::/8``; host bits must be zero."""
    try:
        return ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a network range like 10.0.0.0/8 ({exc})") from exc
