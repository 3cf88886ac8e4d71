"""Tests for aggregator.config: the shipped feeds.yml, defaults, path rules, and every error."""

from __future__ import annotations

import re
import textwrap
from datetime import timedelta
from ipaddress import ip_network
from pathlib import Path

import pytest

import aggregator.config
from aggregator import USER_AGENT
from aggregator.config import (
    Config,
    Settings,
    format_duration,
    load_config,
    load_config_text,
    parse_duration,
    parse_size,
)
from aggregator.exceptions import ConfigError
from aggregator.types import FeedSpec

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "feeds.yml"


def write(folder: Path, text: str, name: str = "feeds.yml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def error_of(text: str, path: Path = Path("feeds.yml")) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config_text(textwrap.dedent(text), path)
    return info.value


# --- the shipped file ---------------------------------------------------------------------


def test_shipped_feeds_yml_validates() -> None:
    config = load_config(SHIPPED)
    assert config.path == SHIPPED
    assert len(config.feeds) >= 10
    assert all(feed.url.startswith("https://") for feed in config.feeds)
    assert all(feed.name and "world" in feed.tags for feed in config.feeds)
    assert config.settings.storage_url == f"sqlite:///{REPO / 'storage' / 'aggregator.db'}"


def _commented_block(text: str, first: str) -> str:
    """The commented YAML starting at the line ``# {first}`` up to the next bare ``#`` line."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"# {first}"))
    block = []
    for line in lines[start:]:
        if line.strip() == "#":
            break
        block.append(line[2:])
    return "\n".join(block) + "\n"


def test_shipped_settings_comment_is_valid_and_states_the_defaults(tmp_path: Path) -> None:
    documented = _commented_block(SHIPPED.read_text(encoding="utf-8"), "settings:")
    from_comment = load_config_text(documented + "feeds: []\n", tmp_path / "feeds.yml")
    defaults = load_config_text("feeds: []\n", tmp_path / "feeds.yml")
    assert from_comment.settings == defaults.settings


def test_shipped_feed_example_comment_is_valid(tmp_path: Path) -> None:
    example = _commented_block(SHIPPED.read_text(encoding="utf-8"), "  - url: https://example.com")
    config = load_config_text("feeds:\n" + example, tmp_path / "feeds.yml")
    assert config.feeds == (
        FeedSpec(
            url="https://example.com/news/world/rss.xml",
            name="Example World",
            interval=timedelta(minutes=30),
            tags=("world", "europe"),
            priority=1,
        ),
    )


# --- defaults and conversion --------------------------------------------------------------


def test_defaults(tmp_path: Path) -> None:
    config = load_config_text("feeds: []\n", tmp_path / "feeds.yml")
    s = config.settings
    assert config.feeds == ()
    assert s.storage_url == f"sqlite:///{tmp_path}/storage/aggregator.db"
    assert s.output == tmp_path / "storage"
    assert s.interval == timedelta(minutes=15)
    assert s.min_interval == timedelta(minutes=5)
    assert s.max_interval == timedelta(hours=24)
    assert s.match_window == timedelta(hours=48)
    assert (s.retention, s.max_entries_per_feed) == (timedelta(days=90), 5000)
    assert (s.listen_host, s.listen_port, s.listen) == ("127.0.0.1", 8080, "127.0.0.1:8080")
    assert s.user_agent == USER_AGENT
    assert (s.max_stories, s.concurrency, s.per_host) == (100, 16, 2)
    assert (s.timeout, s.deadline) == (timedelta(seconds=20), timedelta(seconds=60))
    assert s.max_bytes == 10 * 1024 * 1024
    assert s.allow_networks == ()
    assert s.public_url is None
    assert s.site_url == "http://127.0.0.1:8080/"


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("https://news.example", "https://news.example/"),
        ("  https://news.example/agg  ", "https://news.example/agg/"),
        ("http://[::1]:9000/feeds/", "http://[::1]:9000/feeds/"),
    ],
)
def test_public_url_is_normalised(written: str, expected: str, tmp_path: Path) -> None:
    text = f"settings:\n  public_url: '{written}'\nfeeds: []\n"
    settings = load_config_text(text, tmp_path / "feeds.yml").settings
    assert settings.public_url == settings.site_url == expected


def test_site_url_follows_listen(tmp_path: Path) -> None:
    text = "settings:\n  listen: '[::1]:9000'\nfeeds: []\n"
    assert load_config_text(text, tmp_path / "feeds.yml").settings.site_url == "http://[::1]:9000/"


@pytest.mark.parametrize("text", ["", "# only comments\n"])
def test_feeds_key_is_required(text: str) -> None:
    assert str(error_of(text)) == (
        "feeds.yml:1: feeds: required key is missing (list the feeds to poll, or write `feeds: []`)"
    )


@pytest.mark.parametrize("text", ["feeds: []\n", "settings:\nfeeds:\n", "settings: {}\nfeeds:\n"])
def test_empty_sections_mean_defaults(text: str, tmp_path: Path) -> None:
    config = load_config_text(text, tmp_path / "feeds.yml")
    assert config.feeds == ()
    assert config.settings.interval == timedelta(minutes=15)


def test_every_setting_is_read(tmp_path: Path) -> None:
    config = load_config_text(
        textwrap.dedent("""\
            settings:
              storage: postgresql+psycopg://news@127.0.0.1/news
              output: /srv/news/out
              interval: 10m
              min_interval: 1m
              max_interval: 2d
              match_window: 1d12h
              match_max_entries: 50000
              retention: 30d
              max_entries_per_feed: 800
              listen: "[::1]:9000"
              public_url: https://news.example/agg
              user_agent: "news-bot/2 (+https://example.org)"
              max_stories: 50
              concurrency: 8
              per_host: 1
              timeout: 5s
              deadline: 90
              max_bytes: 512KiB
              allow_networks: [10.0.0.0/8, "fd00::/8"]
            feeds:
              - url: https://example.org/a.xml
                name: "  A  "
                interval: 2h
                tags: world
                priority: 3
              - url: HTTP://Example.org/b.xml
                tags: [world, tech, world]
            """),
        tmp_path / "feeds.yml",
    )
    s = config.settings
    assert s == Settings(
        storage_url="postgresql+psycopg://news@127.0.0.1/news",
        output=Path("/srv/news/out"),
        interval=timedelta(minutes=10),
        min_interval=timedelta(minutes=1),
        max_interval=timedelta(days=2),
        match_window=timedelta(hours=36),
        match_max_entries=50_000,
        retention=timedelta(days=30),
        max_entries_per_feed=800,
        listen_host="::1",
        listen_port=9000,
        public_url="https://news.example/agg/",
        user_agent="news-bot/2 (+https://example.org)",
        max_stories=50,
        concurrency=8,
        per_host=1,
        timeout=timedelta(seconds=5),
        deadline=timedelta(seconds=90),
        max_bytes=512 * 1024,
        allow_networks=(ip_network("10.0.0.0/8"), ip_network("fd00::/8")),
    )
    assert s.listen == "[::1]:9000"
    assert config.feeds == (
        FeedSpec("https://example.org/a.xml", "A", timedelta(hours=2), ("world",), 3),
        FeedSpec("HTTP://Example.org/b.xml", None, timedelta(minutes=10), ("world", "tech"), 0),
    )


def test_config_and_settings_are_frozen(tmp_path: Path) -> None:
    config = load_config_text("feeds: []\n", tmp_path / "feeds.yml")
    with pytest.raises(AttributeError):
        config.feeds = ()  # type: ignore[misc]
    with pytest.raises(AttributeError):
        config.settings.max_stories = 5  # type: ignore[misc]


def test_public_surface() -> None:
    assert sorted(aggregator.config.__all__) == [
        "CONFIG_ENV_VAR",
        "Config",
        "DEFAULT_CONFIG_FILE",
        "Settings",
        "format_duration",
        "load_config",
        "load_config_text",
        "parse_duration",
        "parse_listen",
        "parse_size",
    ]


# --- paths and which file is read ---------------------------------------------------------


@pytest.mark.parametrize(
    ("storage", "expected"),
    [
        ("data/news.db", "sqlite:///{base}/data/news.db"),
        ("../shared/news.db", "sqlite:///{parent}/shared/news.db"),
        ("/var/lib/news.db", "sqlite:////var/lib/news.db"),
        ("sqlite:///relative.db", "sqlite:///relative.db"),
        ("sqlite:////abs/news.db", "sqlite:////abs/news.db"),
        ("postgresql://u:p@db.example/news", "postgresql://u:p@db.example/news"),
    ],
)
def test_storage_resolution(storage: str, expected: str, tmp_path: Path) -> None:
    base = tmp_path / "conf"
    config = load_config_text(f"settings:\n  storage: {storage}\nfeeds: []\n", base / "feeds.yml")
    assert config.settings.storage_url == expected.format(base=base, parent=tmp_path)


def test_relative_paths_sit_beside_the_file_not_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "site"
    folder.mkdir()
    path = write(folder, "settings:\n  output: public/\n  storage: db/a.db\nfeeds: []\n")
    monkeypatch.chdir(tmp_path)
    config = load_config(Path("site/feeds.yml"))
    assert config.path == path
    assert config.settings.output == folder / "public"
    assert config.settings.storage_url == f"sqlite:///{folder}/db/a.db"


def test_path_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit = write(tmp_path, "feeds: [{url: 'https://explicit.example/'}]\n", "explicit.yml")
    from_env = write(tmp_path, "feeds: [{url: 'https://env.example/'}]\n", "env.yml")
    write(tmp_path, "feeds: [{url: 'https://cwd.example/'}]\n")
    monkeypatch.chdir(tmp_path)

    def first_url(config: Config) -> str:
        return config.feeds[0].url

    monkeypatch.delenv("AGGREGATOR_CONFIG", raising=False)
    assert first_url(load_config()) == "https://cwd.example/"
    monkeypatch.setenv("AGGREGATOR_CONFIG", str(from_env))
    assert first_url(load_config()) == "https://env.example/"
    assert first_url(load_config(explicit)) == "https://explicit.example/"
    assert first_url(load_config(str(explicit))) == "https://explicit.example/"
    monkeypatch.setenv("AGGREGATOR_CONFIG", "")  # set but empty counts as unset
    assert first_url(load_config()) == "https://cwd.example/"


# --- errors: exact text -------------------------------------------------------------------

ERROR_CASES = {
    "bad duration": (
        """\
        feeds:
          - url: https://a.example/
            interval: 5 minutes
        """,
        "feeds.yml:3: feeds[0].interval: '5 minutes' is not a duration like 15m or 1h",
    ),
    "bad url scheme": (
        "feeds:\n  - url: ftp://a.example/feed\n",
        "feeds.yml:2: feeds[0].url: 'ftp://a.example/feed' is not an http:// or https:// URL",
    ),
    "url without host": (
        "feeds:\n  - url: https:///feed\n",
        "feeds.yml:2: feeds[0].url: 'https:///feed' has no host name",
    ),
    "missing url": (
        "feeds:\n  - url: https://a.example/\n  - name: B\n",
        "feeds.yml:3: feeds[1].url: required key is missing",
    ),
    "duplicate url": (
        """\
        feeds:
          - url: https://a.example/feed
          - url: https://b.example/feed
          - url: https://A.EXAMPLE/feed
        """,
        "feeds.yml:4: feeds[2].url: 'https://A.EXAMPLE/feed' is already listed as "
        "feeds[0].url on line 2",
    ),
    "unknown feed key": (
        "feeds:\n  - url: https://a.example/\n    intervall: 1h\n",
        "feeds.yml:3: feeds[0].intervall: unknown key 'intervall' (did you mean 'interval'?)",
    ),
    "unknown top-level key": (
        "feeds: []\nfeed: []\n",
        "feeds.yml:2: feed: unknown key 'feed' (did you mean 'feeds'?)",
    ),
    "unknown key without a close match": (
        "settings:\n  colour: blue\nfeeds: []\n",
        "feeds.yml:2: settings.colour: unknown key 'colour' (known keys: storage, output, "
        "interval, min_interval, max_interval, match_window, match_max_entries, retention, "
        "max_entries_per_feed, semantic, listen, public_url, user_agent, max_stories, "
        "concurrency, per_host, timeout, deadline, max_bytes, allow_networks, workers)",
    ),
    "wrong type: text for int": (
        "feeds:\n  - url: https://a.example/\n    priority: high\n",
        "feeds.yml:3: feeds[0].priority: expected a whole number, got the text 'high'",
    ),
    "wrong type: boolean for int": (
        "settings:\n  concurrency: yes\nfeeds: []\n",
        "feeds.yml:2: settings.concurrency: expected a whole number, got the text 'yes'",
    ),
    "wrong type: list for text": (
        "feeds:\n  - url: [https://a.example/]\n",
        "feeds.yml:2: feeds[0].url: expected text, got a list",
    ),
    "wrong type: feed as text": (
        "feeds:\n  - https://a.example/\n",
        "feeds.yml:2: feeds[0]: expected a mapping of keys, got the text 'https://a.example/' "
        "(write it as `- url: https://a.example/`)",
    ),
    "wrong type: feeds as mapping": (
        "feeds:\n  url: https://a.example/\n",
        "feeds.yml:1: feeds: expected a list, got a mapping",
    ),
    "wrong type: tag": (
        "feeds:\n  - url: https://a.example/\n    tags: [world, 7]\n",
        "feeds.yml:3: feeds[0].tags[1]: expected text, got the number 7",
    ),
    "too small": (
        "settings:\n  max_stories: 0\nfeeds: []\n",
        "feeds.yml:2: settings.max_stories: 0 is too small; it must be at least 1",
    ),
    "no entries for matching": (
        "settings:\n  match_max_entries: 0\nfeeds: []\n",
        "feeds.yml:2: settings.match_max_entries: 0 is too small; it must be at least 1",
    ),
    "bad cidr": (
        "settings:\n  allow_networks:\n    - 10.0.0.0/8\n    - 10.0.0.1/8\nfeeds: []\n",
        "feeds.yml:4: settings.allow_networks[1]: '10.0.0.1/8' is not a network range like "
        "10.0.0.0/8 (10.0.0.1/8 has host bits set)",
    ),
    "bad listen port": (
        "settings:\n  listen: 127.0.0.1:99999\nfeeds: []\n",
        "feeds.yml:2: settings.listen: '127.0.0.1:99999' has port '99999'; a port is 1-65535",
    ),
    "listen without port": (
        "settings:\n  listen: localhost\nfeeds: []\n",
        "feeds.yml:2: settings.listen: 'localhost' is not an address like 127.0.0.1:8080",
    ),
    "public_url not http": (
        "settings:\n  public_url: ftp://news.example/\nfeeds: []\n",
        "feeds.yml:2: settings.public_url: 'ftp://news.example/' is not an http:// or https:// URL",
    ),
    "public_url relative": (
        "settings:\n  public_url: /news/\nfeeds: []\n",
        "feeds.yml:2: settings.public_url: '/news/' is not an http:// or https:// URL",
    ),
    "public_url with a query": (
        "settings:\n  listen: 127.0.0.1:8080\n  public_url: https://n.example/?a=1\nfeeds: []\n",
        "feeds.yml:3: settings.public_url: 'https://n.example/?a=1' has a query or fragment; "
        "give the address of the site root",
    ),
    "public_url with a password": (
        "settings:\n  public_url: https://me:pw@n.example/\nfeeds: []\n",
        "feeds.yml:2: settings.public_url: 'https://me:pw@n.example/' holds a user name or "
        "password, which every reader would see",
    ),
    "public_url not text": (
        "settings:\n  public_url: 8080\nfeeds: []\n",
        "feeds.yml:2: settings.public_url: expected text, got the number 8080",
    ),
    "unsupported storage scheme": (
        "settings:\n  storage: mysql://db/news\nfeeds: []\n",
        "feeds.yml:2: settings.storage: mysql:// is not supported; use a file path or "
        "sqlite://, postgresql://, postgresql+psycopg://",
    ),
    "bad size": (
        "settings:\n  max_bytes: lots\nfeeds: []\n",
        "feeds.yml:2: settings.max_bytes: 'lots' is not a size like 10MiB, 512KB or a number "
        "of bytes",
    ),
    "feed interval below min_interval": (
        "feeds:\n  - url: https://a.example/\n    interval: 1m\n",
        "feeds.yml:3: feeds[0].interval: 1m is outside min_interval 5m .. max_interval 1d",
    ),
    "default interval outside written bounds": (
        "settings:\n  min_interval: 1h\nfeeds: []\n",
        "feeds.yml:2: settings.min_interval: interval 15m is outside min_interval 1h .. "
        "max_interval 1d",
    ),
    "bounds crossed": (
        "settings:\n  min_interval: 2h\n  max_interval: 1h\nfeeds: []\n",
        "feeds.yml:3: settings.max_interval: min_interval 2h exceeds max_interval 1h",
    ),
    "no entries kept per feed": (
        "settings:\n  max_entries_per_feed: 0\nfeeds: []\n",
        "feeds.yml:2: settings.max_entries_per_feed: 0 is too small; it must be at least 1",
    ),
    "zero retention": (
        "settings:\n  retention: 0\nfeeds: []\n",
        "feeds.yml:2: settings.retention: 0 must be longer than 0s",
    ),
    "retention shorter than the match window": (
        "settings:\n  retention: 1d\nfeeds: []\n",
        "feeds.yml:2: settings.retention: retention 1d is shorter than match_window 2d: "
        "stories would lose reports still being matched",
    ),
    "deadline shorter than timeout": (
        "settings:\n  deadline: 10s\nfeeds: []\n",
        "feeds.yml:2: settings.deadline: deadline 10s is shorter than timeout 20s",
    ),
    "zero duration": (
        "settings:\n  match_window: 0s\nfeeds: []\n",
        "feeds.yml:2: settings.match_window: '0s' must be longer than 0s",
    ),
    "yaml syntax error": (
        "feeds:\n  - url: https://a.example/\n    tags: [world\n  - url: https://b.example/\n",
        "feeds.yml:4: invalid YAML: while parsing a flow sequence (from line 3): "
        "expected ',' or ']', but got ':'",
    ),
    "duplicate yaml key": (
        "feeds: []\nsettings: {}\nfeeds: []\n",
        "feeds.yml:3: invalid YAML: while constructing a mapping (from line 1): found "
        'duplicate key "feeds" with value "[]" (original value: "[]")',
    ),
    "date for duration": (
        "settings:\n  interval: 2024-01-01\nfeeds: []\n",
        "feeds.yml:2: settings.interval: 2024-01-01 is not a duration like 15m or 1h",
    ),
    "non-text key": (
        "feeds:\n  - url: https://a.example/\n    null: x\n",
        "feeds.yml:3: feeds[0].null: unknown key 'null' (known keys: url, name, interval, "
        "tags, priority)",
    ),
    "not a mapping": (
        "- url: https://a.example/\n",
        "feeds.yml:1: expected a mapping with the keys settings and feeds, got a list",
    ),
}


@pytest.mark.parametrize(("text", "expected"), ERROR_CASES.values(), ids=ERROR_CASES.keys())
def test_error_text(text: str, expected: str) -> None:
    assert str(error_of(text)) == expected


def test_error_attributes() -> None:
    error = error_of("feeds:\n  - url: https://a.example/\n    interval: soon\n", Path("x/f.yml"))
    assert (error.path, error.line, error.key) == ("x/f.yml", 3, "feeds[0].interval")
    assert error.message == "'soon' is not a duration like 15m or 1h"


def test_all_problems_are_listed_in_file_order() -> None:
    error = error_of(
        """\
        settings:
          listen: nowhere
        feeds:
          - url: https://a.example/
            priority: high
          - url: gopher://b.example/
        """
    )
    assert str(error).splitlines() == [
        "feeds.yml:2: settings.listen: 'nowhere' is not an address like 127.0.0.1:8080",
        "feeds.yml:5: feeds[0].priority: expected a whole number, got the text 'high'",
        "feeds.yml:6: feeds[1].url: 'gopher://b.example/' is not an http:// or https:// URL",
    ]
    assert (error.line, error.key) == (2, "settings.listen")


def test_error_count_is_capped() -> None:
    feeds = "".join(f"  - url: bad{i}\n" for i in range(30))
    lines = str(error_of("feeds:\n" + feeds)).splitlines()
    assert len(lines) == 21
    assert lines[-1] == "... and 10 more problems"


def test_missing_file_named_explicitly(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yml"
    with pytest.raises(ConfigError) as info:
        load_config(missing)
    assert str(info.value) == f"{missing}: file not found"
    assert info.value.path == str(missing)


def test_missing_file_from_env_and_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGGREGATOR_CONFIG", "elsewhere.yml")
    with pytest.raises(ConfigError, match=re.escape("elsewhere.yml: file not found (named by")):
        load_config()
    monkeypatch.delenv("AGGREGATOR_CONFIG")
    with pytest.raises(ConfigError) as info:
        load_config()
    assert str(info.value) == (
        "feeds.yml: file not found (the default; pass a path or set $AGGREGATOR_CONFIG)"
    )


def test_folder_and_non_utf8_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a folder, not a file"):
        load_config(tmp_path)
    latin = tmp_path / "latin.yml"
    latin.write_bytes(b"feeds: []\n# caf\xe9\n")
    with pytest.raises(ConfigError, match=r"latin\.yml: is not UTF-8 text"):
        load_config(latin)


def test_config_error_chains_the_library_error() -> None:
    error = error_of("feeds:\n  - url: https://a.example/\n    interval: soon\n")
    assert error.__cause__ is not None
    assert type(error.__cause__).__name__ == "ValidationError"


# --- durations and sizes ------------------------------------------------------------------

DURATIONS = {
    "seconds": ("30s", timedelta(seconds=30)),
    "minutes": ("15m", timedelta(minutes=15)),
    "hours": ("1h", timedelta(hours=1)),
    "days": ("2d", timedelta(days=2)),
    "compound": ("1h30m", timedelta(minutes=90)),
    "all units": ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
    "spaced": ("1h 30m", timedelta(minutes=90)),
    "surrounding space": (" 45s ", timedelta(seconds=45)),
    "integer seconds": (90, timedelta(seconds=90)),
    "digit string": ("600", timedelta(minutes=10)),
    "zero": (0, timedelta(0)),
}

NOT_DURATIONS = {
    "words": "5 minutes",
    "empty": "",
    "unit only": "m",
    "wrong order": "30m1h",
    "repeated unit": "1h1h",
    "fraction": "1.5h",
    "negative": -5,
    "negative text": "-5m",
    "unknown unit": "2w",
    "upper case": "15M",
    "iso 8601": "PT15M",
    "boolean": True,
}


@pytest.mark.parametrize(("text", "expected"), DURATIONS.values(), ids=DURATIONS.keys())
def test_parse_duration(text: str | int, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", NOT_DURATIONS.values(), ids=NOT_DURATIONS.keys())
def test_parse_duration_rejects(text: str | int) -> None:
    with pytest.raises(ValueError, match="is not a duration like 15m or 1h"):
        parse_duration(text)


@pytest.mark.parametrize(("text", "expected"), DURATIONS.values(), ids=DURATIONS.keys())
def test_format_duration_round_trips(text: str | int, expected: timedelta) -> None:
    assert parse_duration(format_duration(expected)) == expected


SIZES = {
    "bytes int": (2048, 2048),
    "bytes unit": ("100B", 100),
    "decimal kilo": ("512KB", 512_000),
    "decimal mega": ("10MB", 10_000_000),
    "binary kibi": ("512KiB", 512 * 1024),
    "binary mebi": ("10MiB", 10 * 1024 * 1024),
    "fraction": ("1.5GiB", 3 * 1024**3 // 2),
    "lower case and space": ("10 mib", 10 * 1024 * 1024),
}


@pytest.mark.parametrize(("text", "expected"), SIZES.values(), ids=SIZES.keys())
def test_parse_size(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["lots", "10 megabytes", "-1", 0, "0KB", True, "1e6"])
def test_parse_size_rejects(text: str | int) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


def test_storage_environment_variable_overrides_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "feeds.yml"
    path.write_text("settings:\n  storage: local.db\nfeeds: []\n")
    monkeypatch.setenv("AGGREGATOR_STORAGE", "postgresql://news@db.example/agg")
    assert load_config(path).settings.storage_url == "postgresql://news@db.example/agg"
    monkeypatch.setenv("AGGREGATOR_STORAGE", "shared/other.db")
    assert load_config(path).settings.storage_url == f"sqlite:///{tmp_path}/shared/other.db"
    monkeypatch.setenv("AGGREGATOR_STORAGE", "mysql://x/y")
    with pytest.raises(ConfigError, match=r"\$AGGREGATOR_STORAGE: mysql:// is not supported"):
        load_config(path)
    monkeypatch.delenv("AGGREGATOR_STORAGE")
    assert load_config(path).settings.storage_url == f"sqlite:///{tmp_path}/local.db"
