"""Turning a feeds.yml file into a ``Config``: read, parse, validate, resolve.

Every problem becomes an ``Issue`` (line, key path, message). All issues of a file are reported
together, earliest line first, in one ``ConfigError`` whose first line reads
``feeds.yml:14: feeds[3].interval: '5 minutes' is not a duration like 15m or 1h``.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails
from ruamel.yaml.comments import CommentedMap

from aggregator.config._schema import KNOWN_KEYS, FeedModel, FileModel, SettingsModel
from aggregator.config._settings import (
    CONFIG_ENV_VAR,
    DEFAULT_CONFIG_FILE,
    STORAGE_ENV_VAR,
    Config,
    Settings,
)
from aggregator.config._source import Loc, has_key, key_path, line_of, load_yaml, to_plain
from aggregator.config._values import (
    check_storage,
    format_duration,
    resolve_path,
    storage_url,
)
from aggregator.exceptions import ConfigError
from aggregator.types import FeedSpec, url_identity

# Past this many problems the file is probably not a feeds.yml at all; more lines would bury
# the first, most useful ones.
MAX_REPORTED_ISSUES = 20

_TYPE_NAMES = {
    "string_type": "text",
    "int_type": "a whole number",
    "list_type": "a list",
    "model_type": "a mapping of keys",
    "dict_type": "a mapping of keys",
    "bool_type": "true or false",
}


@dataclass(frozen=True, slots=True)
class Issue:
    line: int | None
    key: str
    message: str


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read and validate feeds.yml.

    The file is ``path`` if given, else the one named by the ``AGGREGATOR_CONFIG`` environment
    variable, else ``./feeds.yml``. Raises ``ConfigError`` naming file, line and key.
    """
    if path is not None:
        chosen, origin = os.fspath(path), ""
    elif os.environ.get(CONFIG_ENV_VAR):
        chosen, origin = os.environ[CONFIG_ENV_VAR], f" (named by ${CONFIG_ENV_VAR})"
    else:
        chosen = DEFAULT_CONFIG_FILE
        origin = f" (the default; pass a path or set ${CONFIG_ENV_VAR})"
    file = Path(chosen)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"file not found{origin}", path=chosen) from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"is a folder, not a file{origin}", path=chosen) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"is not UTF-8 text (bad byte at offset {exc.start})", path=chosen
        ) from exc
    except OSError as exc:
        raise ConfigError(f"cannot be read: {exc.strerror or exc}", path=chosen) from exc
    return with_storage_override(load_config_text(text, file))


def with_storage_override(config: Config) -> Config:
    """Apply ``$AGGREGATOR_STORAGE`` (a database URL or path), which wins over
    ``settings.storage``: several workers can share one feeds.yml and each be told where the
    database is, without putting a password in the file."""
    override = os.environ.get(STORAGE_ENV_VAR, "").strip()
    if not override:
        return config
    try:
        url = check_storage(override)
    except ValueError as exc:
        raise ConfigError(f"${STORAGE_ENV_VAR}: {exc}", path=str(config.path)) from exc
    resolved = storage_url(url, config.path.parent.resolve())
    return replace(config, settings=replace(config.settings, storage_url=resolved))


def load_config_text(text: str, path: Path) -> Config:
    """Validate feeds.yml content as if read from ``path``.

    ``path`` names the file in messages and anchors relative paths (its folder); it need not
    exist. Used by tests and by live reload, which has already read the file.
    """
    display = str(path)
    root = load_yaml(text, display)
    if root is None:
        root = CommentedMap()
    if not isinstance(root, CommentedMap):
        kind = "a list" if isinstance(root, list) else f"{type(root).__name__} {root!r}"
        raise ConfigError(
            f"expected a mapping with the keys settings and feeds, got {kind}",
            path=display,
            line=1,
        )
    try:
        model = FileModel.model_validate(to_plain(root))
    except ValidationError as exc:
        issues = [_issue_from_pydantic(error, root) for error in exc.errors()]
        raise _config_error(issues, display) from exc
    base = Path(os.path.abspath(path)).parent
    settings = _settings(model.settings, base)
    feeds = tuple(_feed(feed, settings) for feed in model.feeds)
    issues = [*_bounds_issues(settings, feeds, model.feeds, root), *_duplicates(feeds, root)]
    if issues:
        raise _config_error(issues, display)
    return Config(path=Path(os.path.abspath(path)), settings=settings, feeds=feeds)


def _settings(raw: SettingsModel, base: Path) -> Settings:
    host, port = raw.listen
    return Settings(
        storage_url=storage_url(raw.storage, base),
        output=resolve_path(raw.output, base),
        interval=raw.interval,
        min_interval=raw.min_interval,
        max_interval=raw.max_interval,
        match_window=raw.match_window,
        match_max_entries=raw.match_max_entries,
        retention=raw.retention,
        max_entries_per_feed=raw.max_entries_per_feed,
        semantic=raw.semantic,
        listen_host=host,
        listen_port=port,
        public_url=raw.public_url,
        user_agent=raw.user_agent,
        max_stories=raw.max_stories,
        concurrency=raw.concurrency,
        per_host=raw.per_host,
        timeout=raw.timeout,
        deadline=raw.deadline,
        max_bytes=raw.max_bytes,
        allow_networks=tuple(raw.allow_networks),
        workers=raw.workers,
    )


def _feed(raw: FeedModel, settings: Settings) -> FeedSpec:
    return FeedSpec(
        url=raw.url,
        name=raw.name,
        interval=raw.interval if raw.interval is not None else settings.interval,
        tags=tuple(dict.fromkeys(raw.tags)),  # drop repeats, keep the written order
        priority=raw.priority,
    )


def _issue_from_pydantic(error: ErrorDetails, root: Any) -> Issue:
    loc: Loc = error["loc"]
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        name = str(loc[-1])
        known = KNOWN_KEYS.get(tuple(p for p in loc[:-1] if isinstance(p, str)), ())
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else "known keys: " + ", ".join(known)
        message = f"unknown key {name!r} ({hint})"
    elif kind == "missing":
        message = "required key is missing"
        if tuple(loc) == ("feeds",):
            message += " (list the feeds to poll, or write `feeds: []`)"
    elif kind == "value_error":
        message = str(ctx.get("error", error["msg"]))
    elif kind == "greater_than_equal":
        message = f"{value!r} is too small; it must be at least {ctx.get('ge')}"
    elif kind in _TYPE_NAMES:
        message = f"expected {_TYPE_NAMES[kind]}, got {_describe(value)}"
        if kind == "model_type" and loc[:1] == ("feeds",) and isinstance(value, str):
            message += f" (write it as `- url: {value}`)"
    else:
        message = f"{error['msg']} (got {_describe(value)})"
    return Issue(line_of(root, loc), key_path(loc), message)


def _describe(value: object) -> str:
    """How a YAML value of the wrong type is named to the person who wrote it."""
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return f"{str(value).lower()} (true/false)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    return f"{type(value).__name__} {value!r}"


def _bounds_issues(
    settings: Settings, feeds: tuple[FeedSpec, ...], raws: list[FeedModel], root: Any
) -> Iterator[Issue]:
    """Relations between values: interval bounds, retention vs match window, deadline vs
    timeout."""

    def at(*loc: str | int) -> Issue:
        return Issue(line_of(root, loc), key_path(loc), "")

    def written(*names: str) -> str:
        """The first of ``names`` the file spells out, else the last (a default is to blame)."""
        return next((n for n in names if has_key(root, ("settings", n))), names[-1])

    low, high, every = settings.min_interval, settings.max_interval, settings.interval
    if low > high:
        key = written("max_interval", "min_interval")
        yield _with(at("settings", key), f"min_interval {_d(low)} exceeds max_interval {_d(high)}")
    elif not low <= every <= high:
        key = written("interval", "min_interval" if every < low else "max_interval")
        yield _with(
            at("settings", key),
            f"interval {_d(every)} is outside min_interval {_d(low)} .. max_interval {_d(high)}",
        )
    else:
        for index, (feed, raw) in enumerate(zip(feeds, raws, strict=True)):
            if raw.interval is not None and not low <= feed.interval <= high:
                yield _with(
                    at("feeds", index, "interval"),
                    f"{_d(feed.interval)} is outside min_interval {_d(low)} .. "
                    f"max_interval {_d(high)}",
                )
    if settings.retention < settings.match_window:
        key = written("retention", "match_window")
        yield _with(
            at("settings", key),
            f"retention {_d(settings.retention)} is shorter than match_window "
            f"{_d(settings.match_window)}: stories would lose reports still being matched",
        )
    if settings.deadline < settings.timeout:
        key = written("deadline", "timeout")
        yield _with(
            at("settings", key),
            f"deadline {_d(settings.deadline)} is shorter than timeout {_d(settings.timeout)}",
        )


def _duplicates(feeds: tuple[FeedSpec, ...], root: Any) -> Iterator[Issue]:
    first_seen: dict[str, int] = {}
    for index, feed in enumerate(feeds):
        identity = url_identity(feed.url)
        if identity not in first_seen:
            first_seen[identity] = index
            continue
        earlier = first_seen[identity]
        earlier_line = line_of(root, ("feeds", earlier, "url"))
        loc = ("feeds", index, "url")
        yield Issue(
            line_of(root, loc),
            key_path(loc),
            f"{feed.url!r} is already listed as feeds[{earlier}].url on line {earlier_line}",
        )


def _with(issue: Issue, message: str) -> Issue:
    return Issue(issue.line, issue.key, message)


def _d(value: timedelta) -> str:
    return format_duration(value)


def _config_error(issues: list[Issue], display: str) -> ConfigError:
    """One error for all issues: the first in the attributes, the rest on following lines."""
    ordered = sorted(issues, key=lambda i: (i.line is None, i.line or 0, i.key))
    first, rest = ordered[0], ordered[1:MAX_REPORTED_ISSUES]
    lines = [first.message]
    for issue in rest:
        where = f"{display}:{issue.line}" if issue.line is not None else display
        lines.append(
            f"{where}: {issue.key}: {issue.message}" if issue.key else f"{where}: {issue.message}"
        )
    if len(ordered) > MAX_REPORTED_ISSUES:
        lines.append(f"... and {len(ordered) - MAX_REPORTED_ISSUES} more problems")
    return ConfigError("\n".join(lines), path=display, line=first.line, key=first.key)
