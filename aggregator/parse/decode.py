"""Bytes to safe text before any parser sees them: the character encoding and the DTD defence.

- ``decode_document`` decides the character encoding itself (a declared charset that the bytes
  contradict, latin-1 sent as utf-8 or utf-8 labelled latin-1, is a common publisher error),
  so both parsers are handed UTF-8;
- ``neutralise_dtd`` removes the internal DTD subset (``<!DOCTYPE x [ ... ]>``) and every
  reference to an entity it declared, so entity-expansion bombs ("billion laughs") and
  external entities cannot expand.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping

__all__ = ["decode_document", "neutralise_dtd"]

# The DOCTYPE with an internal subset; quoted strings may contain ']' or '>'.
_DOCTYPE_SUBSET = re.compile(
    rb"(<!DOCTYPE\s[^\[>]*?)\s*\[(?:[^\]\"']|\"[^\"]*\"|'[^']*')*\]\s*>", re.IGNORECASE
)
_ENTITY_NAME = re.compile(rb"<!ENTITY\s+(?!%)([^\s\"'>]+)", re.IGNORECASE)
_PREDEFINED = frozenset({b"amp", b"lt", b"gt", b"quot", b"apos"})
_XML_ENCODING = re.compile(rb"^\s*<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._:-]+)[\"']")
_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9._:-]+)", re.IGNORECASE)
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# Last resort: decodes every byte, and is what mislabelled "latin-1" feeds almost always are.
_FALLBACK_ENCODING = "windows-1252"


def neutralise_dtd(content: bytes) -> bytes:
    """Drop the internal DTD subset and references to the entities it declared."""
    match = _DOCTYPE_SUBSET.search(content)
    if match is None:
        return content
    names = {n for n in _ENTITY_NAME.findall(match.group(0)) if n not in _PREDEFINED}
    content = content[: match.start()] + match.group(1) + b">" + content[match.end() :]
    if names:
        refs = re.compile(b"&(?:" + b"|".join(re.escape(n) for n in names) + b");")
        content = refs.sub(b"", content)
    return content


def _codec_name(label: str | None) -> str | None:
    if not label:
        return None
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def decode_document(content: bytes, headers: Mapping[str, str]) -> tuple[str, str | None]:
    """The document as text, and a warning when the declared encoding was wrong.

    Order: a byte-order mark; else valid UTF-8 (multi-byte UTF-8 sequences are vanishingly
    unlikely in text of another encoding); else the HTTP charset, then the XML declaration's,
    if the bytes decode with it; else windows-1252.
    """
    for bom, encoding in _BOMS:
        if content.startswith(bom):
            return content.decode(encoding, errors="replace"), None
    http_match = _CHARSET.search(headers.get("content-type", ""))
    xml_match = _XML_ENCODING.match(content)
    declared = [
        name
        for name in (
            _codec_name(http_match.group(1) if http_match else None),
            _codec_name(xml_match.group(1).decode("ascii") if xml_match else None),
        )
        if name is not None
    ]
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        wrong = [d for d in declared if d not in ("utf-8", "ascii") and not text.isascii()]
        warning = f"declared encoding {wrong[0]} but the bytes are utf-8" if wrong else None
        return text, warning
    for name in declared:
        if name.startswith("utf-16") or name.startswith("utf-32"):
            continue  # Without a BOM these are nearly always mislabelled ASCII-family bytes.
        try:
            text = content.decode(name)
        except UnicodeDecodeError:
            continue
        warning = None if name == declared[0] else f"declared encoding {declared[0]} is wrong"
        return text, warning
    label = f"declared encoding {declared[0]}" if declared else "no declared encoding"
    warning = f"{label} does not decode the bytes; read as {_FALLBACK_ENCODING}"
    return content.decode(_FALLBACK_ENCODING, errors="replace"), warning
