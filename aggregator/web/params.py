"""Query-string filters shared by the home page and the merged feeds, validated once.

A bad value raises ``BadQuery`` whose text is shown to the client with a 400 status.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from starlette.datastructures import QueryParams

# One story joins entries from at most one entry per outlet and a few updates; a thousand is
# far past any real story and keeps the value inside every database's integer range.
MAX_MIN_SOURCES = 1000
# Tags are short words from feeds.yml ("world", "europe"); anything longer is not a tag.
MAX_TAG_LENGTH = 100
# Each story loads every source; 500 stories is about five days of ten outlets and keeps a
# feed response to a few megabytes. Larger requests are cut to this (not refused).
MAX_LIMIT = 500


class BadQuery(ValueError):
    """A query parameter has a value we cannot use; ``str()`` says which and why."""


@dataclass(frozen=True, slots=True)
class Filters:
    """Which stories a page or feed shows."""

    limit: int
    min_sources: int = 1
    tag: str | None = None

    def query(self, *, default_limit: int) -> dict[str, str]:
        """The non-default filters as query parameters (for links that keep them)."""
        params: dict[str, str] = {}
        if self.tag is not None:
            params["tag"] = self.tag
        if self.min_sources != 1:
            params["min_sources"] = str(self.min_sources)
        if self.limit != default_limit:
            params["limit"] = str(self.limit)
        return params


def _single(params: QueryParams, name: str) -> str | None:
    values = params.getlist(name)
    if len(values) > 1:
        raise BadQuery(f"{name} is given {len(values)} times; give it once")
    return values[0] if values else None


# A search is a few words; longer text is a paste gone wrong, and storage reads only the first
# few words anyway.
MAX_QUERY_CHARS = 200
# Pages of the front page: past a thousand pages a reader wants search, not paging, and the
# offset a database must skip stays small.
MAX_PAGE = 1000
# Stories per front-page page: a screenful or two on a desktop, quick to render on a phone.
PAGE_SIZE = 30


@dataclass(frozen=True, slots=True)
class FrontPage:
    """What the front page shows: the filters, a search and which page of the results."""

    filters: Filters
    search: str | None = None
    page: int = 1

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.filters.limit

    def link(self, *, page: int | None = None, default_limit: int) -> str:
        """The query string (with its "?", or "") of this page or of page ``page``."""
        params = self.filters.query(default_limit=default_limit)
        if self.search:
            params["q"] = self.search
        target = self.page if page is None else page
        if target != 1:
            params["page"] = str(target)
        return "?" + urlencode(params) if params else ""


def parse_front_page(params: QueryParams) -> FrontPage:
    """The filters (``limit`` defaulting to ``PAGE_SIZE``), ``q`` and ``page``; BadQuery for
    a bad value."""
    # The page's own form sends "tag=" for "all tags" and "q=" for no search.
    if params.getlist("tag") == [""]:
        params = QueryParams([(k, v) for k, v in params.multi_items() if k != "tag"])
    filters = parse_filters(params, default_limit=PAGE_SIZE)
    search = _single(params, "q")
    if search is not None:
        search = " ".join(search.split())
        _check_text("q", search, MAX_QUERY_CHARS, "searches")
    page = 1
    page_text = _single(params, "page")
    if page_text is not None:
        page = _whole_number("page", page_text, 1, MAX_PAGE)
    return FrontPage(filters=filters, search=search or None, page=page)


# Longer digit strings are refused before int() reads them (no value we accept needs more).
_MAX_DIGITS = 12


def _whole_number(name: str, text: str, low: int, high: int, *, cut: bool = False) -> int:
    """``text`` as an int from ``low`` to ``high``; BadQuery otherwise. ``cut``: a value
    above ``high`` becomes ``high`` instead of being refused."""
    stripped = text.strip()
    hint = f"{name} must be a whole number from {low} to {high}, not {text[:40]!r}"
    if not stripped.isascii() or not stripped.isdigit() or len(stripped) > _MAX_DIGITS:
        raise BadQuery(hint)
    value = int(stripped)
    if value < low or (value > high and not cut):
        raise BadQuery(hint)
    return min(value, high)


def _check_text(name: str, text: str, max_chars: int, plural: str) -> None:
    """BadQuery when ``text`` is longer than ``max_chars`` or holds control characters."""
    if len(text) > max_chars:
        raise BadQuery(f"{name} is {len(text)} characters long; {plural} are at most {max_chars}")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        raise BadQuery(f"{name} contains control characters")


def parse_filters(params: QueryParams, *, default_limit: int) -> Filters:
    """Read ``tag``, ``min_sources`` and ``limit``; raise ``BadQuery`` for a bad value.

    ``limit`` defaults to ``default_limit`` and is cut to ``MAX_LIMIT``.
    """
    tag = _single(params, "tag")
    if tag is not None:
        tag = tag.strip()
        if not tag:
            raise BadQuery("tag is empty; give a tag from feeds.yml, e.g. ?tag=world")
        _check_text("tag", tag, MAX_TAG_LENGTH, "tags")
    min_sources = 1
    min_text = _single(params, "min_sources")
    if min_text is not None:
        min_sources = _whole_number("min_sources", min_text, 1, MAX_MIN_SOURCES)
    limit = min(default_limit, MAX_LIMIT)
    limit_text = _single(params, "limit")
    if limit_text is not None:
        limit = _whole_number("limit", limit_text, 1, MAX_LIMIT, cut=True)
    return Filters(limit=limit, min_sources=min_sources, tag=tag)
