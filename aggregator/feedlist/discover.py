"""Feed autodiscovery: the feed a site's page links to.

A URL that already is a feed is kept; from an HTML page, the ``<link rel="alternate">`` feeds
are tried in page order and the first that fetches and parses is taken.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

from aggregator.exceptions import FeedError, FetchError, ParseError
from aggregator.fetch import Fetcher
from aggregator.parse import parse_feed
from aggregator.types import ParsedFeed

__all__ = [
    "FEED_LINK_TYPES",
    "FoundFeed",
    "discover_feed",
    "feed_links",
    "find_feed",
    "suggest_url",
]

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


@dataclass(frozen=True, slots=True)
class FoundFeed:
    """A feed ``find_feed`` found: its URL and what the parser made of it."""

    url: str
    parsed: ParsedFeed


async def _readable(fetcher: Fetcher, url: str) -> ParsedFeed:
    result = await fetcher.fetch(url)
    return parse_feed(result.content or b"", result.headers, result.final_url)


def suggest_url(text: str) -> str | None:
    """The http(s) URL a user most likely meant by ``text`` written without a scheme
    (``127.0.0.1:8765/x.xml``, ``example.com/feed``); None when it has one or is no address."""
    text = text.strip()
    if "://" in text or not text or text.startswith(("/", ".")) or " " in text:
        return None
    host = urlsplit("//" + text).hostname or ""
    if "." not in host and host != "localhost":
        return None
    literal = host == "localhost" or host.replace(".", "").isdigit() or ":" in host
    return ("http://" if literal else "https://") + text


async def discover_feed(fetcher: Fetcher, url: str) -> str:
    """The feed URL for ``url``: ``url`` itself when it is a feed, else the first feed linked
    from the HTML page (``<link rel="alternate" type="application/rss+xml|atom+xml">``, relative
    links resolved) that fetches and parses. Raises ``FeedError`` saying why none was found.
    """
    return (await find_feed(fetcher, url)).url


async def find_feed(fetcher: Fetcher, url: str) -> FoundFeed:
    """``discover_feed``, also giving the feed as parsed (its title, a parser warning)."""
    result = await fetcher.fetch(url)
    content = result.content or b""
    if not _is_html(result.headers, content):
        try:
            parsed = parse_feed(content, result.headers, result.final_url)
        except ParseError as exc:
            raise FeedError(url, f"is neither a feed nor an HTML page ({exc.message})") from exc
        return FoundFeed(url, parsed)
    links = feed_links(content.decode("utf-8", errors="replace"), result.final_url)
    if not links:
        raise FeedError(url, "the page links to no RSS or Atom feed")
    problems = []
    for link in links:
        try:
            parsed = await _readable(fetcher, link)
        except (FetchError, ParseError) as exc:
            problems.append(str(exc))
            continue
        return FoundFeed(link, parsed)
    raise FeedError(url, "the page links to feeds but none could be read: " + "; ".join(problems))
