"""Feed autodiscovery: the feed a site's page links to.

A URL that already is a feed is kept; from an HTML page, the ``<link rel="alternate">`` feeds
are tried in page order and the first that fetches and parses is taken.
"""

from __future__ import annotations

from collections.abc import Mapping
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

from aggregator.exceptions import FeedError, FetchError, ParseError
from aggregator.fetch import Fetcher
from aggregator.parse import parse_feed

__all__ = ["FEED_LINK_TYPES", "discover_feed", "feed_links"]

# The <link rel="alternate"> types of the formats parse_feed reads.
FEED_LINK_TYPES = ("application/rss+xml", "application/atom+xml")


class _LinkFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.base: str | None = None
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "base" and self.base is None and values.get("href"):
            self.base = values["href"]
        elif tag == "link" and values.get("href"):
            rels = values.get("rel", "").lower().split()
            kind = values.get("type", "").split(";")[0].strip().lower()
            if "alternate" in rels and kind in FEED_LINK_TYPES:
                self.hrefs.append(values["href"].strip())


def feed_links(page: str, page_url: str) -> list[str]:
    """The absolute URLs of the RSS/Atom feeds an HTML page links to, in page order."""
    finder = _LinkFinder()
    finder.feed(page)
    finder.close()
    base = urljoin(page_url, finder.base) if finder.base else page_url
    found = [urljoin(base, href) for href in finder.hrefs]
    return [u for u in dict.fromkeys(found) if urlsplit(u).scheme in ("http", "https")]


def _is_html(headers: Mapping[str, str], content: bytes) -> bool:
    kind = str(headers.get("content-type", "")).lower()
    if "html" in kind:
        return True
    head = content[:512].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html"))


async def _readable(fetcher: Fetcher, url: str) -> None:
    result = await fetcher.fetch(url)
    parse_feed(result.content or b"", result.headers, result.final_url)


async def discover_feed(fetcher: Fetcher, url: str) -> str:
    """The feed URL for ``url``: ``url`` itself when it is a feed, else the first feed linked
    from the HTML page (``<link rel="alternate" type="application/rss+xml|atom+xml">``, relative
    links resolved) that fetches and parses. Raises ``FeedError`` saying why none was found.
    """
    result = await fetcher.fetch(url)
    content = result.content or b""
    if not _is_html(result.headers, content):
        try:
            parse_feed(content, result.headers, result.final_url)
        except ParseError as exc:
            raise FeedError(url, f"is neither a feed nor an HTML page ({exc.message})") from exc
        return url
    links = feed_links(content.decode("utf-8", errors="replace"), result.final_url)
    if not links:
        raise FeedError(url, "the page links to no RSS or Atom feed")
    problems = []
    for link in links:
        try:
            await _readable(fetcher, link)
        except (FetchError, ParseError) as exc:
            problems.append(str(exc))
            continue
        return link
    raise FeedError(url, "the page links to feeds but none could be read: " + "; ".join(problems))
