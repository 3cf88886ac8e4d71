"""Feed-level metadata shared by every output format."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from urllib.parse import quote, urlencode, urlsplit

from aggregator import __version__
from aggregator.publish.links import safe_url

DEFAULT_TITLE = "aggregator — merged stories"
DEFAULT_DESCRIPTION = (
    "The same story from several outlets merged into one item citing every source."
)
# A stable Atom feed id (RFC 4287 §4.2.6 wants it never to change); one merged feed per install.
DEFAULT_FEED_ID = "urn:aggregator:feed:merged"
# Where the ``_aggregator`` JSON Feed extension is described (JSON Feed 1.1 asks for an ``about``).
DEFAULT_EXTENSION_ABOUT = "https://github.com/aggregator/aggregator#json-feed-extension"

ATOM_FILENAME = "merged.atom"
RSS_FILENAME = "merged.rss"
JSON_FILENAME = "merged.json"
# The web app serves one story at ``/stories/<id>``; feeds link there for every source.
STORY_PATH = "stories/"


def _check_site_url(url: str) -> None:
    parts = urlsplit(url) if safe_url(url) else None
    if parts is None or parts.query or parts.fragment or not parts.path.endswith("/"):
        raise ValueError(
            f"FeedMeta.public_url must be an absolute http(s) URL ending in '/': {url!r}"
        )


@dataclass(frozen=True, slots=True)
class FeedMeta:
    """What the published feeds say about themselves.

    ``public_url`` is the absolute address the service is read at (``settings.site_url``),
    ending in "/": it is the home link, the three files' self links are it joined with their
    names (plus ``self_query`` for a filtered feed), and story pages are
    ``<public_url>stories/<id>``. Every link the feeds carry is absolute, so a file read from
    disk, a mirror or a reader's cache still resolves. ``updated`` None means "the most recent
    story update", so unchanged stories give byte-identical output (and a stable ETag).

    >>> FeedMeta("https://news.example/agg/").self_url("merged.atom")
    'https://news.example/agg/merged.atom'
    """

    public_url: str
    title: str = DEFAULT_TITLE
    description: str = DEFAULT_DESCRIPTION
    feed_id: str = DEFAULT_FEED_ID
    author: str = "aggregator"
    updated: datetime | None = None
    generator: str = "aggregator"
    version: str = __version__
    extension_about: str = DEFAULT_EXTENSION_ABOUT
    # The query string of a filtered feed's own URL (``tag=world&min_sources=3``), or "".
    self_query: str = ""

    def __post_init__(self) -> None:
        _check_site_url(self.public_url)
        if self.updated is not None and self.updated.utcoffset() is None:
            raise ValueError("FeedMeta.updated must be timezone-aware")

    @property
    def home_url(self) -> str:
        """The page the feeds belong to: the service's home page."""
        return self.public_url

    def self_url(self, filename: str) -> str:
        """The absolute URL a reader fetches ``filename`` (with this feed's filters) from."""
        query = f"?{self.self_query}" if self.self_query else ""
        return f"{self.public_url}{filename}{query}"

    def story_url(self, story_id: str) -> str:
        """The absolute URL of a story's page, which lists every source."""
        return f"{self.public_url}{STORY_PATH}{quote(story_id, safe='')}"

    def filtered(self, *, tag: str | None, min_sources: int, query: Mapping[str, str]) -> FeedMeta:
        """This feed narrowed by the web filters: its own title and stable id naming ``tag``
        and ``min_sources``, and a self link carrying ``query`` (every non-default filter,
        ``limit`` too, so it fetches this very document). No filter: only the self link
        changes, and only when ``query`` is not empty."""
        names: list[str] = []
        feed_id = self.feed_id
        if tag is not None:
            names.append(f"tagged {tag}")
            feed_id += ":tag=" + quote(tag, safe="")
        if min_sources > 1:
            names.append(f"{min_sources}+ outlets")
            feed_id += f":min_sources={min_sources}"
        title = f"{self.title} — {', '.join(names)}" if names else self.title
        self_query = urlencode(dict(query), quote_via=quote)
        return replace(self, title=title, feed_id=feed_id, self_query=self_query)

    @property
    def generator_label(self) -> str:
        """Generator name and version, e.g. ``aggregator 0.1.0``."""
        return f"{self.generator} {self.version}"
