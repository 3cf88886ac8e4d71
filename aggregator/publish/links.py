"""Which URLs may become links in what is published: the feeds and the web pages alike."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

# A URL holding whitespace or control characters is either broken or an attempt to smuggle a
# scheme past a filter ("java\tscript:"), so it is refused rather than repaired.
_URL_UNSAFE_CHARS = re.compile(r"[\x00-\x20\x7f]")
LINK_SCHEMES = frozenset({"http", "https"})


def safe_url(url: str | None) -> str | None:
    """``url`` when it is an absolute http(s) URL fit to be a link, else None.

    Feed-supplied URLs with any other scheme (``javascript:``, ``data:``, ``file:``...) or
    without a host are never emitted as links.
    """
    if not url or _URL_UNSAFE_CHARS.search(url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in LINK_SCHEMES or not parts.netloc:
        return None
    return url
