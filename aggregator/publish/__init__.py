"""Publish stage: merged stories out as Atom, RSS and JSON Feed files.

    stories | render_atom / render_rss / render_json_feed (pure) | write_outputs (atomic)

The renderers take records and return bytes, with no I/O; ``write_outputs`` is the only part
that touches the disk. ``item`` decides once what an item says, whatever the format.
"""

from __future__ import annotations

from aggregator.publish.atom import render_atom
from aggregator.publish.files import atomic_write_bytes, write_outputs
from aggregator.publish.jsonfeed import render_json_feed
from aggregator.publish.meta import (
    ATOM_FILENAME,
    DEFAULT_TITLE,
    JSON_FILENAME,
    RSS_FILENAME,
    FeedMeta,
)
from aggregator.publish.rss import render_rss

__all__ = [
    "ATOM_FILENAME",
    "DEFAULT_TITLE",
    "JSON_FILENAME",
    "RSS_FILENAME",
    "FeedMeta",
    "atomic_write_bytes",
    "render_atom",
    "render_json_feed",
    "render_rss",
    "write_outputs",
]
