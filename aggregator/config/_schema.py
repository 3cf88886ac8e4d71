"""The raw shape of feeds.yml as pydantic models (private: callers get ``Settings``/``Config``).

Models are strict (YAML already gives ints, strings and lists, so ``priority: "high"`` is an
error rather than a silent coercion) and forbid unknown keys, which catches typos such as
``intervall``. Value checks call the parsers in ``_values`` so every message is written once.
"""

from __future__ import annotations

from datetime import timedelta
from ipaddress import IPv4Network, IPv6Network
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainValidator

from aggregator import USER_AGENT, defaults
from aggregator.config import _settings as d
from aggregator.config._values import (
    DURATION_HINT,
    SIZE_HINT,
    check_feed_url,
    check_public_url,
    check_storage,
    parse_duration,
    parse_listen,
    parse_network,
    parse_size,
    shown,
)
from aggregator.types import DEFAULT_SEMANTIC, SemanticSignal

# A User-Agent is one header line; control characters would corrupt or split the request.
_MAX_USER_AGENT = 512  # servers commonly reject header lines past a few kilobytes


def _duration(value: object) -> timedelta:
    if not isinstance(value, str | int):
        raise ValueError(f"{shown(value)} {DURATION_HINT}")
    result = parse_duration(value)
    if result <= timedelta(0):
        raise ValueError(f"{value!r} must be longer than 0s")
    return result


def _size(value: object) -> int:
    if not isinstance(value, str | int):
        raise ValueError(f"{shown(value)} {SIZE_HINT}")
    return parse_size(value)


def _listen(value: object) -> tuple[str, int]:
    if not isinstance(value, str):
        raise ValueError(f"{shown(value)} is not an address like 127.0.0.1:8080")
    return parse_listen(value)


def _network(value: object) -> IPv4Network | IPv6Network:
    if not isinstance(value, str):
        raise ValueError(f"{shown(value)} is not a network range like 10.0.0.0/8")
    return parse_network(value)


def _text(value: str) -> str:
    stripped = value.strip()
    if not stripped:
        raise ValueError("is empty")
    return stripped


def _user_agent(value: str) -> str:
    text = _text(value)
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        raise ValueError("contains control characters, which are not allowed in an HTTP header")
    if len(text) > _MAX_USER_AGENT:
        raise ValueError(f"is {len(text)} characters long; keep it under {_MAX_USER_AGENT}")
    return text


def _workers(value: object) -> int | None:
    """``auto`` (None) or a whole number of worker processes, 0 or more."""
    if value == d.AUTO_WORKERS:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be {d.AUTO_WORKERS!r} or a whole number of processes (0 or more)")
    if value < 0:
        raise ValueError(f"must be {d.AUTO_WORKERS!r} or 0 or more, not {value}")
    return value


def _one_or_many(value: object) -> object:
    """Let a single string stand for a one-item list (``tags: world``)."""
    return [value] if isinstance(value, str) else value


def _none_as(empty: object) -> BeforeValidator:
    """A key present with nothing under it (every line commented out) means an empty section."""
    return BeforeValidator(lambda value: empty if value is None else value)


Duration = Annotated[timedelta, PlainValidator(_duration)]
Size = Annotated[int, PlainValidator(_size)]
Listen = Annotated[tuple[str, int], PlainValidator(_listen)]
Network = Annotated[IPv4Network | IPv6Network, PlainValidator(_network)]
Text = Annotated[str, AfterValidator(_text)]
AtLeastOne = Annotated[int, Field(ge=1)]


class SettingsModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    storage: Annotated[str, AfterValidator(check_storage)] = d.DEFAULT_STORAGE
    output: Text = d.DEFAULT_OUTPUT
    interval: Duration = defaults.DEFAULT_INTERVAL
    min_interval: Duration = defaults.DEFAULT_MIN_INTERVAL
    max_interval: Duration = defaults.DEFAULT_MAX_INTERVAL
    match_window: Duration = d.DEFAULT_MATCH_WINDOW
    match_max_entries: AtLeastOne = d.DEFAULT_MATCH_MAX_ENTRIES
    retention: Duration = d.DEFAULT_RETENTION
    max_entries_per_feed: AtLeastOne = d.DEFAULT_MAX_ENTRIES_PER_FEED
    semantic: SemanticSignal = DEFAULT_SEMANTIC
    listen: Listen = (d.DEFAULT_LISTEN_HOST, d.DEFAULT_LISTEN_PORT)
    public_url: Annotated[str, AfterValidator(check_public_url)] | None = None
    user_agent: Annotated[str, AfterValidator(_user_agent)] = USER_AGENT
    max_stories: AtLeastOne = d.DEFAULT_MAX_STORIES
    concurrency: AtLeastOne = defaults.DEFAULT_CONCURRENCY
    per_host: AtLeastOne = defaults.DEFAULT_PER_HOST
    timeout: Duration = defaults.DEFAULT_TIMEOUT
    deadline: Duration = defaults.DEFAULT_DEADLINE
    max_bytes: Size = defaults.DEFAULT_MAX_BYTES
    allow_networks: Annotated[list[Network], BeforeValidator(_one_or_many)] = []
    workers: Annotated[int | None, PlainValidator(_workers)] = None


class FeedModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    url: Annotated[str, AfterValidator(check_feed_url)]
    name: Text | None = None
    interval: Duration | None = None
    tags: Annotated[list[Text], BeforeValidator(_one_or_many)] = []
    priority: int = 0


class FileModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    settings: Annotated[SettingsModel, _none_as({})] = Field(default_factory=SettingsModel)
    feeds: Annotated[list[FeedModel], _none_as([])]


# Known keys per section, for "did you mean" hints on unknown keys.
KNOWN_KEYS: dict[tuple[str, ...], tuple[str, ...]] = {
    (): tuple(FileModel.model_fields),
    ("settings",): tuple(SettingsModel.model_fields),
    ("feeds",): tuple(FeedModel.model_fields),
}
