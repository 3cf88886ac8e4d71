"""OPML subscription lists in and out.

OPML is read with defusedxml (no entity expansion, no external resources). Nested category
outlines map to tags in order: a feed inside ``World > Europe`` gets ``tags: [World, Europe]``,
and ``export_opml`` writes that nesting back, so import(export(config)) gives the same feeds
(grouped by category; OPML has no place for a feed's interval or priority, so those stay out).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from aggregator.config import Config
from aggregator.exceptions import ConfigError
from aggregator.feedlist.edit import add_feeds_to_config
from aggregator.types import url_identity

__all__ = ["OpmlImport", "export_opml", "import_opml", "import_opml_report", "read_opml"]


@dataclass(frozen=True, slots=True)
class OpmlImport:
    """What ``import_opml_report`` did: the URLs added, and each feed it skipped with why."""

    added: list[str]
    skipped: list[tuple[str, str]]


def _outline_feeds(
    outline: ET.Element,
    path: tuple[str, ...],
    found: list[tuple[str, str | None, tuple[str, ...]]],
    skipped: list[tuple[str, str]],
) -> None:
    for child in outline.iterfind("outline"):
        url = (child.get("xmlUrl") or "").strip()
        label = (child.get("title") or child.get("text") or "").strip()
        if url:
            if urlsplit(url).scheme not in ("http", "https"):
                skipped.append((url, "not an http or https URL"))
                continue
            categories = [
                part.strip()
                for value in (child.get("category") or "").split(",")
                for part in value.split("/")
                if part.strip()
            ]
            tags = tuple(dict.fromkeys([*path, *categories]))
            found.append((url, label if label and label != url else None, tags))
        else:
            _outline_feeds(child, (*path, label) if label else path, found, skipped)


def read_opml(
    data: bytes, display: str = "<opml>"
) -> list[tuple[str, str | None, tuple[str, ...]]]:
    """``(url, name, tags)`` of every feed outline, categories (outer first) as tags."""
    return _read_opml(data, display)[0]


def _read_opml(
    data: bytes, display: str
) -> tuple[list[tuple[str, str | None, tuple[str, ...]]], list[tuple[str, str]]]:
    """The feeds of ``read_opml``, and the outlines left out with why."""
    try:
        root = SafeET.fromstring(data)
    except (ET.ParseError, DefusedXmlException) as exc:
        raise ConfigError(f"not a readable OPML file: {exc}", path=display) from exc
    body = root.find("body")
    if root.tag != "opml" or body is None:
        raise ConfigError("not an OPML file (no <opml><body>)", path=display)
    found: list[tuple[str, str | None, tuple[str, ...]]] = []
    skipped: list[tuple[str, str]] = []
    _outline_feeds(body, (), found, skipped)
    return found, skipped


def import_opml(
    path_to_opml: str | os.PathLike[str], config_path: str | os.PathLike[str]
) -> list[str]:
    """Add every feed of an OPML subscription list to feeds.yml; return the URLs added.

    Feeds already configured are skipped, so importing the same file twice adds nothing.
    """
    return import_opml_report(path_to_opml, config_path).added


def import_opml_report(
    path_to_opml: str | os.PathLike[str], config_path: str | os.PathLike[str]
) -> OpmlImport:
    """``import_opml``, also saying which feeds of the file were skipped and why."""
    opml = Path(path_to_opml)
    try:
        data = opml.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot be read: {exc.strerror or exc}", path=str(opml)) from exc
    found, skipped = _read_opml(data, str(opml))
    added = add_feeds_to_config(config_path, found)
    taken = {url_identity(url) for url in added}
    seen: set[str] = set()
    for url, _name, _tags in found:
        key = url_identity(url)
        if key in seen:
            skipped.append((url, "listed twice in the file"))
        elif key not in taken:
            skipped.append((url, "already in feeds.yml"))
        seen.add(key)
    return OpmlImport(added, skipped)


def export_opml(config: Config, title: str = "aggregator feeds") -> bytes:
    """The configured feeds as OPML 2.0, tags written as nested category outlines."""
    root = ET.Element("opml", version="2.0")
    ET.SubElement(ET.SubElement(root, "head"), "title").text = title
    body = ET.SubElement(root, "body")
    groups: dict[tuple[str, ...], ET.Element] = {(): body}
    for feed in config.feeds:
        parent = body
        for depth in range(1, len(feed.tags) + 1):
            key = feed.tags[:depth]
            if key not in groups:
                groups[key] = ET.SubElement(parent, "outline", text=key[-1], title=key[-1])
            parent = groups[key]
        attrs = {"type": "rss", "text": feed.name or feed.url, "xmlUrl": feed.url}
        if feed.name:
            attrs["title"] = feed.name
        ET.SubElement(parent, "outline", attrs)
    ET.indent(root)
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True)) + b"\n"
