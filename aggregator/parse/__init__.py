"""Parse: fetched bytes and headers in, a ``ParsedFeed`` of typed records out.

::

    parse_feed (feed)  within a CPU-time budget (budget)
                       | decode + DTD defence (decode)
                       | lxml fast path by root element (formats: rss, atom; shared rules in fast)
                       | else feedparser (feedparser_adapter)
                       | feedparser-shaped mappings -> ParsedEntry / ParsedFeed (feed)

feedparser is only ever given bytes and response headers, never a URL or a path, so it cannot
fetch anything itself. Plain, well-formed RSS 2.0 (most news feeds) and Atom 1.0 take the fast
path: lxml parses them and feedparser's own rules are applied to the elements found, about 8x
faster than feedparser (issue #7). Any document that path cannot reproduce exactly goes to
feedparser. The private feedparser names those rules need are imported in one module,
``feedparser_private``.
"""

from aggregator.parse.budget import PARSE_CPU_SECONDS
from aggregator.parse.decode import decode_document, neutralise_dtd
from aggregator.parse.feed import ENTRY_ID_MAX_CHARS, parse_feed
from aggregator.parse.feedparser_adapter import FEEDPARSER_OPTIONS
from aggregator.parse.formats import fast_parse

__all__ = [
    "ENTRY_ID_MAX_CHARS",
    "FEEDPARSER_OPTIONS",
    "PARSE_CPU_SECONDS",
    "decode_document",
    "fast_parse",
    "neutralise_dtd",
    "parse_feed",
]
