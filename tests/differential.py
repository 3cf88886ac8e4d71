"""The check both fast-path test files make: parse_feed with the fast path gives exactly what
feedparser gives (or raises the same error), and what the fast path alone returns."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.parse import decode_document, fast_parse, neutralise_dtd, parse_feed
from aggregator.parse.fast import FastFeed

FIXTURES = Path(__file__).parent / "fixtures" / "feeds"
URL = "https://origin.example/news/feed.xml"
XML = {"content-type": "application/xml"}


def fast_result(content: bytes) -> FastFeed | None:
    """What the fast path alone makes of ``content`` (None: it declines)."""
    text, _warning = decode_document(content, XML)
    return fast_parse(neutralise_dtd(text.encode("utf-8")), URL)


def assert_same_as_feedparser(content: bytes) -> None:
    try:
        expected = parse_feed(content, XML, URL, fast_path=False)
    except Exception as exc:
        with pytest.raises(type(exc)):
            parse_feed(content, XML, URL)
        return
    assert parse_feed(content, XML, URL) == expected
