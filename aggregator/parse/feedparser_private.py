"""Every private name of feedparser that the fast paths use, imported here and nowhere else.

The fast paths (``rss``, ``atom``) reproduce feedparser's output by calling feedparser's own
rules: its date parser, its URL joining, its C1-control table and its author bookkeeping.
Those are private to feedparser and may be renamed in any release (its development branch has
renamed ``_FeedParserMixin`` already), so they are imported in this one module, and
``tests/test_parse.py`` fails as soon as one of them is missing.
"""

from __future__ import annotations

from feedparser.datetimes import _parse_date as parse_date
from feedparser.html import _cp1252 as CP1252
from feedparser.mixin import _FeedParserMixin
from feedparser.urls import _urljoin as urljoin

__all__ = ["CP1252", "PRIVATE_NAMES", "parse_date", "save_author", "sync_author_detail", "urljoin"]

# feedparser's author bookkeeping: a class that takes these two as its own methods (and has a
# ``context`` to keep) gets the author fields feedparser would give an entry.
save_author = _FeedParserMixin._save_author
sync_author_detail = _FeedParserMixin._sync_author_detail

# (module, dotted name) of every private name imported above, for the test that they exist.
PRIVATE_NAMES = (
    ("feedparser.datetimes", "_parse_date"),
    ("feedparser.html", "_cp1252"),
    ("feedparser.urls", "_urljoin"),
    ("feedparser.mixin", "_FeedParserMixin._save_author"),
    ("feedparser.mixin", "_FeedParserMixin._sync_author_detail"),
)
