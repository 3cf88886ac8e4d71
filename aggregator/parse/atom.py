"""The fast path for plain Atom 1.0: lxml reads it, feedparser's rules map it.

The Atom counterpart of ``rss`` (``fast`` holds the shared reading and text rules): the
mappings built here are the ones feedparser 6.0 builds for the fields ``feed`` keeps, so
``parse_feed`` returns the same records either way (``tests/test_parse_fast.py``).

It takes a ``<feed xmlns="http://www.w3.org/2005/Atom">`` whose every element and attribute is
in the lists below, and answers None for anything else, which then goes to feedparser:
extension elements (``media:group``, ``yt:*``) other than ``thr:total``, ``media:content``
and ``media:thumbnail``, ``<source>``,
``<content src>``, a content type other than ``text``/``html``/``xhtml``, a text construct with
a child element unless it is ``xhtml``, an ``xhtml`` child outside the XHTML namespace (or
``<body>``, which ends feedparser's content), a namespaced or ``base`` attribute inside
``xhtml``, an ``<id>``/``<title>``/``<summary>``/``<content>``/date given twice, a ``<link>``
without ``href``, and a root declaring the RSS 1.0 or 0.90 namespace (feedparser would take
the document for RSS).

What it reproduces from feedparser (``mixin``, ``namespaces/_base.py``):

- ``xml:base`` on any Atom element, joined as ``unknown_starttag`` does, and the document URL
  as the base without it; ``<link href>`` is joined to it but not stripped or re-decoded, an
  ``<id>`` is stripped, joined and re-decoded like an RSS permalink guid;
- the link is the last ``<link>`` whose rel is ``alternate`` (the default) and whose type is
  HTML (the default unless rel is ``self``); an ``<id>`` seen before any such link is the link;
- a text construct's value is its text, whatever its type; ``xhtml`` is serialised the way
  feedparser's SAX handlers write it (lower-case names, escaped text and attributes, the
  enclosing ``<div>`` removed when it holds everything);
- the summary is the ``<summary>``, else the ``<content>`` seen before it;
- the author runs through feedparser's own ``_save_author`` and ``_sync_author_detail``, so
  several authors, ``name (email)`` and text-only ``<author>`` come out as feedparser has them;
- ``<published>`` and ``<updated>`` are read by feedparser's date parser.
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

from feedparser.urls import make_safe_absolute_uri
from feedparser.util import FeedParserDict

from aggregator.parse.fast import Decline, FastFeed, pop_text, pop_uri, safe_base
from aggregator.parse.feedparser_private import (
    parse_date,
    save_author,
    sync_author_detail,
    urljoin,
)

__all__ = ["ATOM_FEED", "atom10"]

_ATOM = "{http://www.w3.org/2005/Atom}"
ATOM_FEED = _ATOM + "feed"
_XHTML = "{http://www.w3.org/1999/xhtml}"
_XML_BASE = "{http://www.w3.org/XML/1998/namespace}base"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_THR = "{http://purl.org/syndication/thread/1.0}"
_MEDIA = "{http://search.yahoo.com/mrss/}"
# Extension elements taken in an entry: feedparser stores them under keys nothing reads.
_EXTENSIONS = {
    _THR + "total": "thr:total",
    _MEDIA + "thumbnail": "media:thumbnail",
    _MEDIA + "content": "media:content",
}
# Namespaces that make feedparser call the document RSS 1.0 / 0.90 when declared first.
_RSS_NAMESPACES = frozenset({"http://purl.org/rss/1.0/", "http://my.netscape.com/rdf/simple/0.9/"})

# xml:lang only sets feedparser's language fields; xml:base is followed (``_rebase``).
_COMMON = frozenset({_XML_LANG, _XML_BASE})
_TEXT_ATTRS = _COMMON | {"type"}
_LINK_ATTRS = _COMMON | {"href", "rel", "type", "hreflang", "title", "length"}
_LINK_ATTRS |= {_THR + "count", _THR + "updated"}
_ATTRS: dict[str, frozenset[str]] = {
    "category": _COMMON | {"term", "scheme", "label"},
    "generator": _COMMON | {"uri", "version"},
    "link": _LINK_ATTRS,
    "media:content": frozenset({"url", "medium", "type", "width", "height", "fileSize"}),
    "media:thumbnail": frozenset({"url", "width", "height"}),
    **dict.fromkeys(("title", "subtitle", "rights", "summary", "content"), _TEXT_ATTRS),
}
_FEED_CHILDREN = frozenset(
    {"title", "subtitle", "link", "id", "updated", "author", "contributor", "category"}
    | {"generator", "icon", "logo", "rights", "entry"}
)
_ENTRY_CHILDREN = frozenset(
    {"title", "link", "id", "updated", "published", "author", "contributor", "summary"}
    | {"content", "category", "rights", *_EXTENSIONS.values()}
)
# Elements feedparser stores by one occurrence in a way this module does not follow: once only.
_ONCE = frozenset(
    {"title", "subtitle", "rights", "id", "updated", "published", "summary", "content"}
    | {"generator", "icon", "logo"}
)
_PERSON_CHILDREN = frozenset({"name", "email", "uri"})
# feedparser's ``map_content_type`` for the text construct types taken here.
_TEXT_TYPES = {"text": "text/plain", "html": "text/html", "xhtml": "application/xhtml+xml"}
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
# XHTML elements with feedparser handlers or svg/MathML bookkeeping inside content.
_XHTML_DECLINED = frozenset({"body", "svg", "math"})


class _People:
    """feedparser's author bookkeeping, run on one entry's context."""

    _save_author = save_author
    _sync_author_detail = sync_author_detail

    def __init__(self) -> None:
        self.context = FeedParserDict()

    def _get_context(self) -> Any:
        return self.context


def _rebase(base: str, element: Any) -> str:
    """The base URI inside ``element``, as ``unknown_starttag`` tracks ``xml:base``."""
    value = element.get(_XML_BASE)
    if value is None:
        return base
    rebased: str = make_safe_absolute_uri(base, value or base) or base
    # Every descendant joins the base to itself again; take only bases that stay put.
    if safe_base(rebased) != rebased:
        raise Decline
    return rebased


def _children(element: Any, allowed: frozenset[str]) -> list[tuple[str, Any]]:
    """``element``'s children as (name, child); decline unknown and repeated elements."""
    found: list[tuple[str, Any]] = []
    seen: set[str] = set()
    for child in element:
        tag = child.tag
        if not isinstance(tag, str):
            raise Decline  # an entity reference left unresolved
        if tag.startswith(_ATOM):
            name = tag[len(_ATOM) :]
        elif tag in _EXTENSIONS:
            name = _EXTENSIONS[tag]
            # thr is unknown to feedparser, which then names the element by its prefix.
            if tag.startswith(_THR) and child.prefix != "thr":
                raise Decline
        else:
            raise Decline
        if name not in allowed or (name in _ONCE and name in seen):
            raise Decline
        seen.add(name)
        if any(key not in _ATTRS.get(name, _COMMON) for key in child.attrib):
            raise Decline
        found.append((name, child))
    return found


def _leaf(element: Any) -> str | None:
    if len(element):
        raise Decline
    text: str | None = element.text
    return text


def _markup(element: Any, pieces: list[str]) -> None:
    """Append ``element`` as feedparser writes markup inside ``xhtml`` content."""
    tag = element.tag
    if not isinstance(tag, str) or not tag.startswith(_XHTML):
        raise Decline
    name = tag[len(_XHTML) :].lower()
    if name in _XHTML_DECLINED:
        raise Decline
    attributes: dict[str, str] = {}
    for key, value in element.attrib.items():
        key = key.lower()
        if key.startswith("{") or key in attributes or key == "base":
            raise Decline
        attributes[key] = value.lower() if key in ("rel", "type") else value
    written = "".join(f' {k}="{escape(v, {chr(34): "&quot;"})}"' for k, v in attributes.items())
    pieces.append(f"<{name}{written}>")
    _inner_markup(element, pieces)
    pieces.append(f"</{name}>")


def _inner_markup(element: Any, pieces: list[str]) -> None:
    """Append what ``element`` holds: its text, and each child with the text after it."""
    if element.text:
        pieces.append(escape(element.text))
    for child in element:
        _markup(child, pieces)
        if child.tail:
            pieces.append(escape(child.tail))


def _xhtml(element: Any) -> str:
    """An ``xhtml`` text construct as feedparser's ``pop`` joins it."""
    pieces: list[str] = []
    _inner_markup(element, pieces)
    while len(pieces) > 1 and not pieces[-1].strip():
        del pieces[-1]
    while len(pieces) > 1 and not pieces[0].strip():
        del pieces[0]
    if (
        pieces
        and (pieces[0] == "<div>" or pieces[0].startswith("<div "))
        and pieces[-1] == "</div>"
    ):
        depth = 0
        for piece in pieces[:-1]:
            if piece.startswith("</"):
                depth -= 1
                if depth == 0:
                    break
            elif piece.startswith("<") and not piece.endswith("/>"):
                depth += 1
        else:
            pieces = pieces[1:-1]
    return "".join(pieces)


def _construct(element: Any) -> tuple[str, str]:
    """A text construct's value and feedparser's content type for it."""
    kind = _TEXT_TYPES.get(element.get("type", "text").lower())
    if kind is None:
        raise Decline  # another MIME type: feedparser may base64-decode it
    if kind == "application/xhtml+xml":
        return pop_text(_xhtml(element)), kind
    return pop_text(_leaf(element)), kind


def _link(element: Any, base: str) -> str | None:
    """The href when feedparser's ``_start_link`` makes this link the context's link."""
    href = element.get("href")
    if href is None or len(element):
        raise Decline  # without href feedparser reads the element's text instead
    rel = element.get("rel", "alternate").lower()
    kind = element.get("type")
    if kind is None:
        kind = "application/atom+xml" if rel == "self" else "text/html"
    kind = kind.lower()
    if rel != "alternate" or _TEXT_TYPES.get(kind, kind) not in _HTML_TYPES:
        return None
    joined: str = urljoin(base, href)
    return joined


def _person(element: Any, base: str, people: _People | None) -> None:
    """Check an author or contributor; for an entry's author, follow feedparser's steps."""
    context = people.context if people is not None else None
    if context is not None:
        context.setdefault("authors", []).append(FeedParserDict())
    own = [element.text or ""]
    for name, child in _children(element, _PERSON_CHILDREN):
        own.append(child.tail or "")
        value = _leaf(child)
        if people is None:
            continue
        if name == "uri":
            people._save_author("href", pop_uri(value, _rebase(base, child)))
        else:
            people._save_author(name, (value or "").strip())
    if context is not None and people is not None:
        context["author"] = pop_text("".join(own))
        people._sync_author_detail()


def _entry(element: Any, base: str) -> dict[str, Any]:
    base = _rebase(base, element)
    entry: dict[str, Any] = {}
    people: _People | None = None
    for name, child in _children(element, _ENTRY_CHILDREN):
        child_base = _rebase(base, child)
        if name in ("title", "summary"):
            entry[name] = _construct(child)[0]
        elif name == "content":
            value, _kind = _construct(child)
            entry["content"] = [{"value": value}]
            entry.setdefault("summary", value)  # every type taken here is copied
        elif name == "rights":
            _construct(child)
        elif name == "link":
            href = _link(child, child_base)
            if href is not None:
                entry["link"] = href
        elif name == "id":
            entry["id"] = pop_uri(_leaf(child), child_base)
            entry.setdefault("link", entry["id"])
        elif name in ("published", "updated"):
            entry[name + "_parsed"] = parse_date(pop_text(_leaf(child)))
        elif name == "author":
            people = people or _People()
            _person(child, child_base, people)
            entry["author"] = people.context["author"]
        elif name == "contributor":
            _person(child, child_base, None)
        else:  # category and the extensions
            _leaf(child)
    return entry


def _feed(root: Any, base: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    feed: dict[str, Any] = {}
    entries: list[dict[str, Any]] = []
    for name, child in _children(root, _FEED_CHILDREN):
        if name == "entry":
            entries.append(_entry(child, base))
            continue
        child_base = _rebase(base, child)
        if name == "title":
            feed["title"] = _construct(child)[0]
        elif name in ("subtitle", "rights"):
            _construct(child)
        elif name == "link":
            href = _link(child, child_base)
            if href is not None:
                feed["link"] = href
        elif name == "id":
            feed.setdefault("link", pop_uri(_leaf(child), child_base))
        elif name in ("author", "contributor"):
            _person(child, child_base, None)
        else:  # updated, category, generator, icon, logo
            _leaf(child)
    return feed, entries


def atom10(root: Any, url: str) -> FastFeed | None:
    """feedparser's mappings for an Atom 1.0 ``root`` read by ``read_xml``, or None."""
    if root.tag != ATOM_FEED or any(key not in _COMMON for key in root.attrib):
        return None
    if any(uri.lower() in _RSS_NAMESPACES for uri in root.nsmap.values()):
        return None
    if not url:
        return None
    try:
        # feedparser joins the root's xml:base to the URL itself, else the URL to itself.
        base = _rebase(url, root) if root.get(_XML_BASE) is not None else safe_base(url)
        if safe_base(base) != base:
            raise Decline
        feed, entries = _feed(root, base)
    except Decline:
        return None
    return FastFeed(feed=feed, entries=entries, version="atom10")
