"""Turn a ``ParsedEntry`` into an ``Entry``: plain text, sane UTC dates, safe canonical links.

Text: HTML is removed with a real HTML parser (nh3/ammonia with no tags allowed; script and style
elements lose their content), entities decoded, Unicode NFKC-normalised, control characters
dropped, bidirectional controls and zero-width characters removed, and whitespace folded.
Stripping repeats until nothing changes, so markup escaped twice
by a publisher (``&amp;lt;b&amp;gt;``) does not come out as markup either.

Dates: a missing, pre-``MIN_PLAUSIBLE_DATE`` or far-future date becomes ``now`` (when we first
saw the entry); a date less than ``FUTURE_TOLERANCE`` ahead is kept (clock skew).

Links: only http(s) links are kept; ``canonical_url`` gives the form used to recognise the same
article across feeds.
"""

from __future__ import annotations

import hashlib
import html
import re
import unicodedata
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import nh3

from aggregator.types import Entry, ParsedEntry

__all__ = [
    "FUTURE_TOLERANCE",
    "INVISIBLE_CHARS",
    "MIN_PLAUSIBLE_DATE",
    "SUMMARY_MAX_CHARS",
    "TITLE_MAX_CHARS",
    "TRACKING_PARAMS",
    "canonical_url",
    "content_hash",
    "normalise_entry",
    "plain_text",
]

# Headlines longer than this are body text in the wrong element; 300 fits any real headline.
TITLE_MAX_CHARS = 300
# Enough for a lead paragraph or two, which is all a merged story shows per source.
SUMMARY_MAX_CHARS = 1000
AUTHOR_MAX_CHARS = 200
# A title made from the summary when the entry has none (micro-blog feeds) gets this many chars.
TITLE_FROM_SUMMARY_CHARS = 120
# Publishers' clocks run a few minutes fast; beyond this a future date is simply wrong.
FUTURE_TOLERANCE = timedelta(minutes=10)
# No web feed predates this; earlier dates are epoch-zero or two-digit-year accidents.
MIN_PLAUSIBLE_DATE = datetime(1990, 1, 1, tzinfo=UTC)
# Markup escaped more often than this is left as text; real feeds escape at most twice.
MAX_STRIP_PASSES = 4

ELLIPSIS = "…"

# Query parameters that identify the click, not the article. Lower-case; any ``utm_*`` too.
TRACKING_PARAMS = frozenset(
    {
        "fbclid",
        "gclid",
        "gclsrc",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "yclid",
        "twclid",
        "ttclid",
        "igshid",
        "mc_cid",
        "mc_eid",
        "_ga",
        "_gl",
        "_hsenc",
        "_hsmi",
        "__hstc",
        "__hssc",
        "__hsfp",
        "hsctatracking",
        "mkt_tok",
        "ref_src",
        "ref_url",
        "li_fat_id",
        "oly_anon_id",
        "oly_enc_id",
        "vero_id",
        "vero_conv",
        "rb_clickid",
        "s_cid",
        "wt.mc_id",
        "cmpid",
        "ocid",
        "spm",
    }
)
_TRACKING_PREFIXES = ("utm_",)
_DEFAULT_PORTS = {"http": 80, "https": 443}
# A host holding whitespace (``str.isspace``, as ``\s`` matches in a str pattern) or any of
# these quote and bracket characters is no host name: the link is dropped.
_BAD_HOST_RE = re.compile(r"[\s<>\"'`]")


# Unicode category Cc is exactly C0, DEL and C1: replaced by spaces (then folded).
_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f]")
# Removed outright (they join or separate nothing a reader needs): bidirectional embeddings,
# overrides and isolates and the implicit marks (U+202A-202E, U+2066-2069, U+200E/200F,
# U+061C) let a title render reversed or spoof what follows it in pages, feeds and logs; the
# zero-width space, non-joiner, joiner, word joiner and BOM (U+200B-200D, U+2060, U+FEFF) hide
# differences between titles that look the same.
INVISIBLE_CHARS = frozenset(
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
    "\u200b\u200c\u200d\u2060\ufeff"
)
_INVISIBLE_RE = re.compile("[" + "".join(sorted(INVISIBLE_CHARS)) + "]")


def _strip_once(text: str) -> str:
    if "<" not in text and "&" not in text:
        return text  # no markup and no entity: the sanitiser would hand it back unchanged
    return html.unescape(nh3.clean(text, tags=set(), attributes={}, strip_comments=True))


def plain_text(value: str | None) -> str:
    """``value`` with all markup removed, entities decoded, NFKC applied, whitespace folded."""
    if not value:
        return ""
    text = value
    for _ in range(MAX_STRIP_PASSES):
        stripped = _strip_once(text)
        if stripped == text:
            break
        text = stripped
    if not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    text = _INVISIBLE_RE.sub("", text)
    return " ".join(_CONTROL_RE.sub(" ", text).split())


def truncate(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, at a word boundary, ending with "…"."""
    if len(text) <= limit:
        return text
    cut = text[: limit - len(ELLIPSIS)]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:.-") + ELLIPSIS


def _is_tracking(name: str) -> bool:
    lowered = name.lower()
    return lowered in TRACKING_PARAMS or lowered.startswith(_TRACKING_PREFIXES)


def canonical_url(url: str | None) -> str | None:
    """The form of ``url`` used to recognise the same article; None if not an http(s) URL.

    Lower-case scheme and host, no default port, no user info, no fragment, tracking parameters
    removed, remaining parameters sorted, an empty path written as ``/``.
    """
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    if _BAD_HOST_RE.search(host):
        return None
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    query = ""
    if parts.query:  # most article links have none: spare the parse and re-encode
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        query = urlencode(sorted((k, v) for k, v in pairs if not _is_tracking(k)))
    return urlunsplit((scheme, netloc, parts.path or "/", query, ""))


def _sane_date(value: datetime | None, now: datetime) -> datetime | None:
    if value is None:
        return None
    value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if value < MIN_PLAUSIBLE_DATE or value > now + FUTURE_TOLERANCE:
        return None
    return value


def content_hash(title: str, link: str | None, text: str) -> str:
    """sha256 over the normalised title, link and full text; changes when the outlet edits."""
    digest = hashlib.sha256()
    for part in (title, link or "", text):
        digest.update(part.encode("utf-8"))
        digest.update(b"\x1f")  # unit separator: ("ab", "c") and ("a", "bc") hash differently
    return digest.hexdigest()


def normalise_entry(parsed: ParsedEntry, feed_url: str, now: datetime) -> Entry:
    """The normalised form of one parsed entry of ``feed_url``, first seen at ``now`` (UTC)."""
    now = now.astimezone(UTC)
    content_full = plain_text(parsed.content)
    summary_full = plain_text(parsed.summary) or content_full
    title = plain_text(parsed.title) or truncate(summary_full, TITLE_FROM_SUMMARY_CHARS)
    title = truncate(title, TITLE_MAX_CHARS)
    # Only links with a canonical form (absolute http(s)) are kept; that form is the url.
    link = parsed.link.strip() if parsed.link else None
    url = canonical_url(link)
    if url is None:
        link = None
    published = _sane_date(parsed.published, now) or _sane_date(parsed.updated, now) or now
    author = truncate(plain_text(parsed.author), AUTHOR_MAX_CHARS) or None
    return Entry(
        feed_url=feed_url,
        entry_id=parsed.id,
        title=title,
        summary=truncate(summary_full, SUMMARY_MAX_CHARS),
        url=url,
        link=link,
        published=published,
        updated=_sane_date(parsed.updated, now),
        first_seen=now,
        content_hash=content_hash(title, link, f"{summary_full}\x1e{content_full}"),
        author=author,
    )
