"""Configuration: feeds.yml validated once, at load, into typed frozen objects.

::

    load_config(path) -> Config(path, settings: Settings, feeds: tuple[FeedSpec, ...])

The file is read with ruamel.yaml's round-trip loader, so every problem is reported as
``feeds.yml:LINE: KEY.PATH: message`` through ``aggregator.exceptions.ConfigError``. Unknown
keys, duplicate feed URLs, malformed durations, URLs, addresses and network ranges are errors.
Relative paths in the settings are resolved from the folder holding feeds.yml.
"""

from __future__ import annotations

from aggregator.config._load import load_config, load_config_text
from aggregator.config._settings import (
    CONFIG_ENV_VAR,
    DEFAULT_CONFIG_FILE,
    Config,
    Settings,
)
from aggregator.config._values import format_duration, parse_duration, parse_listen, parse_size

__all__ = [
    "CONFIG_ENV_VAR",
    "DEFAULT_CONFIG_FILE",
    "Config",
    "Settings",
    "format_duration",
    "load_config",
    "load_config_text",
    "parse_duration",
    "parse_listen",
    "parse_size",
]
