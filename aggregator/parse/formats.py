"""Which fast path reads a document, by its root element: the one home for a new format.

A fast path takes the root element ``fast.read_xml`` read, the UTF-8 bytes and the document's
URL, and answers feedparser's mappings (``FastFeed``) or None to leave the document to
feedparser. A root no fast path is registered for goes to feedparser too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from aggregator.parse.atom import ATOM_FEED, atom10
from aggregator.parse.fast import FastFeed, read_xml
from aggregator.parse.rss import rss20

__all__ = ["FAST_PATHS", "fast_parse"]

FastPath = Callable[[Any, bytes, str], FastFeed | None]

# Root element tag -> the fast path for that format.
FAST_PATHS: Mapping[str, FastPath] = {
    "rss": rss20,
    ATOM_FEED: lambda root, _document, url: atom10(root, url),
}


def fast_parse(document: bytes, url: str) -> FastFeed | None:
    """The fast path for a UTF-8 ``document``: RSS 2.0 or Atom 1.0 mappings, or None."""
    root = read_xml(document)
    if root is None:
        return None
    path = FAST_PATHS.get(root.tag)
    return None if path is None else path(root, document, url)
