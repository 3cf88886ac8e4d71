"""Feed-level metadata shared by every output format."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urljoin

from aggregator import __version__
from aggregator.publish.links import is_safe_meta_url

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


@dataclass(frozen=True, slots=True)
class FeedMeta:
    """What the published feeds say about themselves.

    ``home_url`` is the page the feeds belong to; ``base_url`` is the folder the three files are
    served from (each file's self link is ``base_url`` joined with its name). Both may be
    relative (``"./"``, ``"/news/"``) or http(s) URLs; the defaults suit files served side by side
    with the home page. ``updated`` None means "the most recent story update", so unchanged
    stories give byte-identical output (and a stable ETag).

    >>> FeedMeta(base_url="https://news.example/feeds/").self_url("merged.atom")
    'https://news.example/feeds/merged.atom'
    """

    title: str = DEFAULT_TITLE
    description: str = DEFAULT_DESCRIPTION
    home_url: str = "./"
    base_url: str = ""
    feed_id: str = DEFAULT_FEED_ID
    author: str = "aggregator"
    updated: datetime | None = None
    generator: str = "aggregator"
    version: str = __version__
    extension_about: str = DEFAULT_EXTENSION_ABOUT

    def __post_init__(self) -> None:
        for name in ("home_url", "base_url"):
            value: str = getattr(self, name)
            if not is_safe_meta_url(value):
                raise ValueError(f"FeedMeta.{name} must be relative or http(s): {value!r}")
        if self.updated is not None and self.updated.utcoffset() is None:
            raise ValueError("FeedMeta.updated must be timezone-aware")

    def self_url(self, filename: str) -> str:
        """The URL a reader fetches ``filename`` from."""
        return urljoin(self.base_url, filename) if self.base_url else filename

    @property
    def generator_label(self) -> str:
        """Generator name and version, e.g. ``aggregator 0.1.0``."""
        return f"{self.generator} {self.version}"
