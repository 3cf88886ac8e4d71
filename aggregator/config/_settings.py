"""The typed, resolved configuration that the rest of the service reads.

Defaults live here as named constants so that feeds.yml, the README and the code agree; those
that the stages below ``config`` take as well (intervals, fetch limits) live in
``aggregator.defaults``, the one place each is defined.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path

from aggregator import USER_AGENT
from aggregator.defaults import (
    DEFAULT_CONCURRENCY,
    DEFAULT_DEADLINE,
    DEFAULT_INTERVAL,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_INTERVAL,
    DEFAULT_MIN_INTERVAL,
    DEFAULT_PER_HOST,
    DEFAULT_TIMEOUT,
)
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
# Outlets report the same event within a day or two; an entry older than this is not matched
# into a story (later developments become new stories).
DEFAULT_MATCH_WINDOW = timedelta(hours=48)
# The most entries the match index holds (about 4.5 KB of memory each, so ~0.9 GB; measured
# at 10,000 benchmark feeds: 897 MiB for the index process): a few hundred
# feeds never reach it in 48 hours; at 10,000 busy feeds the stories updated longest ago leave
# the index early, and memory stays bounded instead of growing with the number of feeds.
DEFAULT_MATCH_MAX_ENTRIES = 200_000
# Entries first seen longer ago than this are pruned: a quarter of history stays for search
# and story pages, while the database stops growing with time.
DEFAULT_RETENTION = timedelta(days=90)
# The most entries one feed keeps (its newest): weeks of the busiest real news feeds (a wire
# service's all-news feed posts a few hundred a day), while a feed flooding thousands of
# entries per poll stays at this size instead of gigabytes a day.
DEFAULT_MAX_ENTRIES_PER_FEED = 5000
# Loopback only: serving beyond this machine is a deliberate choice made in feeds.yml.
DEFAULT_LISTEN_HOST = "127.0.0.1"
DEFAULT_LISTEN_PORT = 8080
# About a day of merged world news from ten outlets; readers rarely page further back.
DEFAULT_MAX_STORIES = 100
# settings.workers: "auto" (None here) sizes the processes to the work; see
# aggregator/refresh/workers.py for the rule and its measurements.
AUTO_WORKERS = "auto"


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
    retention: timedelta = DEFAULT_RETENTION
    max_entries_per_feed: int = DEFAULT_MAX_ENTRIES_PER_FEED
    semantic: SemanticSignal = DEFAULT_SEMANTIC
    listen_host: str = DEFAULT_LISTEN_HOST
    listen_port: int = DEFAULT_LISTEN_PORT
    # The address readers reach the service at, ending in "/"; None: ``http://<listen>/``.
    public_url: str | None = None
    user_agent: str = USER_AGENT
    max_stories: int = DEFAULT_MAX_STORIES
    concurrency: int = DEFAULT_CONCURRENCY
    per_host: int = DEFAULT_PER_HOST
    timeout: timedelta = DEFAULT_TIMEOUT
    deadline: timedelta = DEFAULT_DEADLINE
    max_bytes: int = DEFAULT_MAX_BYTES
    allow_networks: tuple[IPv4Network | IPv6Network, ...] = ()
    # Parse worker processes: None ("auto") starts them only for a backlog and stops them when
    # idle; 0 parses in the service process; N keeps N workers (and the match index process).
    workers: int | None = None

    @property
    def listen(self) -> str:
        """``HOST:PORT`` as written in feeds.yml (IPv6 hosts in brackets)."""
        host = f"[{self.listen_host}]" if ":" in self.listen_host else self.listen_host
        return f"{host}:{self.listen_port}"

    @property
    def site_url(self) -> str:
        """The absolute URL every published link starts from: ``public_url``, by default
        ``http://`` and ``listen`` with a final "/" (self, home and story page links)."""
        return self.public_url or f"http://{self.listen}/"


@dataclass(frozen=True, slots=True)
class Config:
    """A validated feeds.yml: where it was read from, its settings and its feeds."""

    path: Path
    settings: Settings
    feeds: tuple[FeedSpec, ...]
