"""The typed, resolved configuration that the rest of the service reads.

Defaults live here as named constants so that feeds.yml, the README and the code agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path

from aggregator import USER_AGENT
from aggregator.types import DEFAULT_SEMANTIC, FeedSpec, SemanticSignal

# The environment variable naming the feeds.yml to use when no path is given.
CONFIG_ENV_VAR = "AGGREGATOR_CONFIG"
# Overrides settings.storage (e.g. a PostgreSQL URL with its password, kept out of feeds.yml).
STORAGE_ENV_VAR = "AGGREGATOR_STORAGE"
# Looked up in the working directory when neither a path nor the variable is given.
DEFAULT_CONFIG_FILE = "feeds.yml"

# Beside feeds.yml, so one folder holds a whole installation (config, database, output).
DEFAULT_STORAGE = "storage/aggregator.db"
DEFAULT_OUTPUT = "storage/"
# News feeds commonly declare a 15-minute TTL (the BBC's carry <ttl>15</ttl>).
DEFAULT_INTERVAL = timedelta(minutes=15)
# Politeness floor for adaptive polling: news outlets publish a few items an hour, so polling
# more often than every 5 minutes mostly earns 304s and risks rate limiting.
DEFAULT_MIN_INTERVAL = timedelta(minutes=5)
# Even a feed that has gone quiet is looked at once a day.
DEFAULT_MAX_INTERVAL = timedelta(hours=24)
# Outlets report the same event within a day or two; an entry older than this is not matched
# into a story (later developments become new stories).
DEFAULT_MATCH_WINDOW = timedelta(hours=48)
# The most entries the match index holds (about 6 KB of memory each, so ~1.3 GB; measured at
# 10,000 benchmark feeds: 1,353 MiB for the index process): a few hundred
# feeds never reach it in 48 hours; at 10,000 busy feeds the stories updated longest ago leave
# the index early, and memory stays bounded instead of growing with the number of feeds.
DEFAULT_MATCH_MAX_ENTRIES = 200_000
# The meaning signal of story matching (``aggregator.match.embedding``), DEFAULT_SEMANTIC:
# the static model shipped with the package; ``minilm`` (the full transformer, the ``semantic``
# extra) or ``off`` (words alone) when chosen.
__all__ = ["DEFAULT_SEMANTIC"]
# Loopback only: serving beyond this machine is a deliberate choice made in feeds.yml.
DEFAULT_LISTEN_HOST = "127.0.0.1"
DEFAULT_LISTEN_PORT = 8080
# About a day of merged world news from ten outlets; readers rarely page further back.
DEFAULT_MAX_STORIES = 100
# Fetches are network-bound, not CPU-bound: 16 at once polls a typical list of 10-50 feeds in
# one or a few rounds while keeping sockets and memory (16 x max_bytes at worst) bounded.
DEFAULT_CONCURRENCY = 16
# Two connections per host, the long-standing HTTP politeness limit, so feeds that share a
# host (several sections of one outlet) never burst at it.
DEFAULT_PER_HOST = 2
# Per connect/read: a healthy feed server answers within seconds; 20 s tolerates a slow one.
DEFAULT_TIMEOUT = timedelta(seconds=20)
# The whole fetch, redirects and body included; a trickling server cannot hold a slot longer.
DEFAULT_DEADLINE = timedelta(seconds=60)
# Large real news feeds are 1-2 MB uncompressed; 10 MiB leaves headroom while capping a
# decompression bomb.
DEFAULT_MAX_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """The ``settings`` section of feeds.yml, validated and resolved.

    Paths are absolute (relative ones were resolved beside feeds.yml) and ``storage_url`` is a
    SQLAlchemy URL (a plain path became ``sqlite:////absolute/path``).
    """

    storage_url: str
    output: Path
    interval: timedelta = DEFAULT_INTERVAL
    min_interval: timedelta = DEFAULT_MIN_INTERVAL
    max_interval: timedelta = DEFAULT_MAX_INTERVAL
    match_window: timedelta = DEFAULT_MATCH_WINDOW
    match_max_entries: int = DEFAULT_MATCH_MAX_ENTRIES
    semantic: SemanticSignal = DEFAULT_SEMANTIC
    listen_host: str = DEFAULT_LISTEN_HOST
    listen_port: int = DEFAULT_LISTEN_PORT
    user_agent: str = USER_AGENT
    max_stories: int = DEFAULT_MAX_STORIES
    concurrency: int = DEFAULT_CONCURRENCY
    per_host: int = DEFAULT_PER_HOST
    timeout: timedelta = DEFAULT_TIMEOUT
    deadline: timedelta = DEFAULT_DEADLINE
    max_bytes: int = DEFAULT_MAX_BYTES
    allow_networks: tuple[IPv4Network | IPv6Network, ...] = ()

    @property
    def listen(self) -> str:
        """``HOST:PORT`` as written in feeds.yml (IPv6 hosts in brackets)."""
        host = f"[{self.listen_host}]" if ":" in self.listen_host else self.listen_host
        return f"{host}:{self.listen_port}"


@dataclass(frozen=True, slots=True)
class Config:
    """A validated feeds.yml: where it was read from, its settings and its feeds."""

    path: Path
    settings: Settings
    feeds: tuple[FeedSpec, ...]
