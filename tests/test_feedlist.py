"""Editing feeds.yml (comments kept), OPML round trip, feed autodiscovery over real HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest
from servers import LoopbackServer, Reply

from aggregator.config import load_config
from aggregator.exceptions import ConfigError, FeedError
from aggregator.feedlist import (
    add_feed_to_config,
    discover_feed,
    export_opml,
    feed_links,
    import_opml,
    remove_feed_from_config,
)
from aggregator.fetch import Fetcher

FEEDS_YML = """\
# Feeds for the newsroom dashboard.
settings:
  interval: 15m   # default for every feed

feeds:
    # Wire services first.
    - url: https://alpha.example/feed.xml   # the main wire
      name: "Alpha Wire"
      tags: [world, wire]

    # Beta: business desk
    # (two comment lines)
    - url: https://beta.example/rss
      interval: 30m
    - url: https://gamma.example/atom
      tags:
        - world
        - europe

# end of feeds
"""

ADDED = """\
    - url: https://delta.example/news.rss
      name: 'Delta: the daily'
      tags: [science, space]
"""


@pytest.fixture
def feeds_yml(tmp_path: Path) -> Path:
    path = tmp_path / "feeds.yml"
    path.write_text(FEEDS_YML, encoding="utf-8")
    return path


def test_add_keeps_every_line_and_appends_in_the_same_style(feeds_yml: Path) -> None:
    add_feed_to_config(
        feeds_yml, "https://delta.example/news.rss", "Delta: the daily", ("science", "space")
    )
    expected = FEEDS_YML.replace("        - europe\n", "        - europe\n" + ADDED)
    assert feeds_yml.read_text() == expected
    feeds = load_config(feeds_yml).feeds
    assert feeds[-1].url == "https://delta.example/news.rss"
    assert feeds[-1].name == "Delta: the daily"
    assert feeds[-1].tags == ("science", "space")


def test_add_refuses_duplicates_and_leaves_the_file_alone(feeds_yml: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"feeds.yml:13: feeds: HTTPS://BETA.example/rss is already configured"
    ):
        add_feed_to_config(feeds_yml, "HTTPS://BETA.example/rss")
    assert feeds_yml.read_text() == FEEDS_YML


def test_add_refuses_an_invalid_feed(feeds_yml: Path) -> None:
    with pytest.raises(ConfigError, match="is not an http:// or https:// URL"):
        add_feed_to_config(feeds_yml, "ftp://files.example/feed")
    assert feeds_yml.read_text() == FEEDS_YML


def test_add_to_an_empty_list(tmp_path: Path) -> None:
    path = tmp_path / "feeds.yml"
    path.write_text("# nothing yet\nfeeds: []  # add some\n")
    add_feed_to_config(path, "https://a.example/f")
    assert path.read_text() == "# nothing yet\nfeeds:  # add some\n  - url: https://a.example/f\n"
    assert [f.url for f in load_config(path).feeds] == ["https://a.example/f"]


def test_remove_takes_the_feed_and_its_own_comments(feeds_yml: Path) -> None:
    assert remove_feed_from_config(feeds_yml, "https://beta.example/rss") == (
        "https://beta.example/rss"
    )
    expected = FEEDS_YML.replace(
        "    # Beta: business desk\n"
        "    # (two comment lines)\n"
        "    - url: https://beta.example/rss\n"
        "      interval: 30m\n",
        "",
    )
    assert feeds_yml.read_text() == expected


def test_remove_first_and_last_by_name_or_url(feeds_yml: Path) -> None:
    assert remove_feed_from_config(feeds_yml, "Alpha Wire") == "https://alpha.example/feed.xml"
    assert remove_feed_from_config(feeds_yml, "https://gamma.example/atom") == (
        "https://gamma.example/atom"
    )
    assert feeds_yml.read_text() == (
        "# Feeds for the newsroom dashboard.\n"
        "settings:\n"
        "  interval: 15m   # default for every feed\n"
        "\n"
        "feeds:\n"
        "\n"
        "    # Beta: business desk\n"
        "    # (two comment lines)\n"
        "    - url: https://beta.example/rss\n"
        "      interval: 30m\n"
        "\n"
        "# end of feeds\n"
    )


def test_remove_unknown_is_a_clear_error(feeds_yml: Path) -> None:
    with pytest.raises(ConfigError, match="no feed has the URL or name 'Nobody'"):
        remove_feed_from_config(feeds_yml, "Nobody")
    assert feeds_yml.read_text() == FEEDS_YML


def test_opml_round_trip(feeds_yml: Path, tmp_path: Path) -> None:
    original = load_config(feeds_yml)
    opml = tmp_path / "subscriptions.opml"
    opml.write_bytes(export_opml(original))
    target = tmp_path / "other.yml"
    target.write_text("feeds: []\n")
    added = import_opml(opml, target)
    # Feeds come back grouped by category, so compare them as a set.
    assert sorted(added) == sorted(f.url for f in original.feeds)
    imported = load_config(target)
    assert {(f.url, f.name, f.tags) for f in imported.feeds} == {
        (f.url, f.name, f.tags) for f in original.feeds
    }
    assert import_opml(opml, target) == []  # nothing twice


def test_export_nests_tags_as_categories(feeds_yml: Path) -> None:
    text = export_opml(load_config(feeds_yml)).decode()
    assert text.startswith("<?xml version='1.0' encoding='utf-8'?>\n<opml version=\"2.0\">")
    assert (
        '<outline text="world" title="world">\n'
        '      <outline text="wire" title="wire">\n'
        '        <outline type="rss" text="Alpha Wire" xmlUrl="https://alpha.example/feed.xml"'
        ' title="Alpha Wire" />'
    ) in text


def test_import_reads_categories_and_refuses_entities(tmp_path: Path) -> None:
    target = tmp_path / "feeds.yml"
    target.write_text("feeds:\n")
    opml = tmp_path / "in.opml"
    opml.write_text(
        '<?xml version="1.0"?>\n<opml version="1.0"><head/><body>\n'
        '<outline text="Tech"><outline text="AI" category="/Research,news"'
        ' xmlUrl="https://ai.example/rss" title="AI news"/>'
        '<outline text="Local" xmlUrl="file:///etc/passwd"/></outline>\n'
        '<outline text="https://plain.example/feed" xmlUrl="https://plain.example/feed"/>\n'
        "</body></opml>\n"
    )
    assert import_opml(opml, target) == ["https://ai.example/rss", "https://plain.example/feed"]
    feeds = load_config(target).feeds
    assert (feeds[0].name, feeds[0].tags) == ("AI news", ("Tech", "Research", "news"))
    assert (feeds[1].name, feeds[1].tags) == (None, ())

    bomb = tmp_path / "bomb.opml"
    bomb.write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE opml [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>\n'
        '<opml version="2.0"><body><outline text="&b;" xmlUrl="https://x.example/f"/></body></opml>'
    )
    with pytest.raises(ConfigError, match="not a readable OPML file"):
        import_opml(bomb, target)


def test_feed_links_resolve_relative_hrefs() -> None:
    page = (
        '<html><head><base href="/news/">'
        '<link rel="stylesheet" href="site.css">'
        '<link rel="alternate" type="application/rss+xml" href="top.rss">'
        '<link rel="Alternate home" type="application/atom+xml; charset=utf-8"'
        ' href="https://cdn.example/a.atom">'
        '<link rel="alternate" type="text/html" href="/fr/">'
        '<link rel="alternate" type="application/rss+xml" href="javascript:alert(1)">'
        "</head></html>"
    )
    assert feed_links(page, "https://site.example/index.html") == [
        "https://site.example/news/top.rss",
        "https://cdn.example/a.atom",
    ]


RSS = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>Site news</title>
<link>http://127.0.0.1/</link><description>d</description>
<item><title>Hello</title><link>http://127.0.0.1/hello</link><guid>1</guid></item>
</channel></rss>"""

PAGE = b"""<!doctype html><html><head><title>Site</title>
<link rel="alternate" type="application/atom+xml" href="/missing.atom">
<link rel="alternate" type="application/rss+xml" href="feeds/main.rss">
</head><body>hi</body></html>"""


async def test_discover_feed_over_http() -> None:
    with LoopbackServer() as server:
        html = {"Content-Type": "text/html; charset=utf-8"}
        server.route("/site/", Reply(body=PAGE, headers=html))
        server.route(
            "/site/feeds/main.rss", Reply(body=RSS, headers={"Content-Type": "application/rss+xml"})
        )
        server.route("/plain/", Reply(body=b"<html><head></head></html>", headers=html))
        async with Fetcher(allow_networks=["127.0.0.0/8"]) as fetcher:
            feed = server.url("/site/feeds/main.rss")
            assert await discover_feed(fetcher, server.url("/site/")) == feed
            assert await discover_feed(fetcher, feed) == feed
            with pytest.raises(FeedError, match="links to no RSS or Atom feed"):
                await discover_feed(fetcher, server.url("/plain/"))
        # The broken first candidate was tried, then the working one.
        assert [r.path for r in server.requests][:3] == [
            "/site/",
            "/missing.atom",
            "/site/feeds/main.rss",
        ]
