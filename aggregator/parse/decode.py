"""Bytes to safe text before any parser sees them: the character encoding and the DTD defence.

- ``decode_document`` decides the character encoding itself (a declared charset that the bytes
  contradict, latin-1 sent as utf-8 or utf-8 labelled latin-1, is a common publisher error),
  so both parsers are handed UTF-8;
- ``neutralise_dtd`` removes the internal DTD subset (``<!DOCTYPE x [ ... ]>``) and every
  reference to an entity it declared, so entity-expansion bombs ("billion laughs") and
  external entities cannot expand;
- ``replace_invalid_char_refs`` turns a character reference to no character (a lone surrogate
  such as ``&#xD800;``, NUL, beyond U+10FFFF) into U+FFFD, so one such reference costs a
  replacement character, not the whole feed (feedparser raised ``UnicodeEncodeError`` on it).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping

__all__ = ["decode_document", "neutralise_dtd", "replace_invalid_char_refs"]

# The DTD is found in three linear steps instead of one backtracking expression: the old
# single pattern tried every "<!DOCTYPE" against the rest of the document, so 20,000 of them
# (200 KB) took 77 s and one followed by 40,000 spaces 3.2 s (issue #19). Each byte is now
# read a bounded number of times: a "<!DOCTYPE" start, the head up to the first '[' or '>', and
# the internal subset (quoted strings may hold ']' or '>'), whose quantifiers are possessive.
_DOCTYPE_START = re.compile(rb"<!DOCTYPE\s", re.IGNORECASE)
_HEAD_END = re.compile(rb"[\[>]")
_SUBSET_BODY = re.compile(rb"(?:[^\]\"']++|\"[^\"]*+\"|'[^']*+')*+")
_SUBSET_CLOSE = re.compile(rb"\]\s*+>")
_ENTITY_NAME = re.compile(rb"<!ENTITY\s++(?!%)([^\s\"'>]++)", re.IGNORECASE)
# Any entity reference; the names the subset declared are picked out of these with a set, not
# with one alternation of every declared name (which costs names x references).
_ENTITY_REF = re.compile(rb"&([^\s&;<>]{1,256});")
# A numeric character reference; its digits are judged in Python (``_valid_code_point``).
_CHAR_REF = re.compile(rb"&#(?:[xX]([0-9A-Fa-f]++)|([0-9]++));")
# What stands in for a reference to no character: U+FFFD REPLACEMENT CHARACTER.
_REPLACEMENT_REF = b"&#xFFFD;"
# Digits (leading zeros aside) beyond which a reference is past U+10FFFF whatever they are:
# 6 hexadecimal, 7 decimal. Checked before ``int`` so a reference of 5,000 digits costs nothing.
_MAX_HEX_DIGITS = 6
_MAX_DECIMAL_DIGITS = 7
_SURROGATES = range(0xD800, 0xE000)
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


def _internal_subset(content: bytes) -> tuple[int, int, int] | None:
    """Where the first DOCTYPE with an internal subset is: (start, end of its head, end).

    A DOCTYPE without a subset, or whose subset never closes, is passed over; the search goes
    on after the part already read, so no byte is read again.
    """
    position = 0
    while (start := _DOCTYPE_START.search(content, position)) is not None:
        head_end = _HEAD_END.search(content, start.end())
        if head_end is None:
            return None
        if head_end.group() == b">":
            position = head_end.end()
            continue
        body = _SUBSET_BODY.match(content, head_end.end())
        assert body is not None  # the pattern matches the empty string
        close = _SUBSET_CLOSE.match(content, body.end())
        if close is not None:
            # The head without the blanks before '[', but always "<!DOCTYPE" and one blank.
            head = len(content[start.start() : head_end.start()].rstrip())
            return start.start(), max(start.start() + head, start.end()), close.end()
        position = max(body.end(), head_end.end())
    return None


def neutralise_dtd(content: bytes) -> bytes:
    """Drop the internal DTD subset and references to the entities it declared (linear time)."""
    found = _internal_subset(content)
    if found is None:
        return content
    start, head_end, end = found
    names = {n for n in _ENTITY_NAME.findall(content, start, end) if n not in _PREDEFINED}
    content = content[:head_end] + b">" + content[end:]
    if names:

        def drop_declared(ref: re.Match[bytes]) -> bytes:
            return b"" if ref.group(1) in names else ref.group(0)

        content = _ENTITY_REF.sub(drop_declared, content)
    return content


def _valid_code_point(ref: re.Match[bytes]) -> bool:
    hex_digits, decimal_digits = ref.group(1), ref.group(2)
    digits = (hex_digits or decimal_digits).lstrip(b"0")
    limit = _MAX_HEX_DIGITS if hex_digits else _MAX_DECIMAL_DIGITS
    if not digits or len(digits) > limit:
        return False
    code = int(digits, 16 if hex_digits else 10)
    return code <= 0x10FFFF and code not in _SURROGATES


def replace_invalid_char_refs(content: bytes) -> bytes:
    """``content`` with each reference to a surrogate, NUL or a code point past U+10FFFF
    replaced by a reference to U+FFFD (linear time; the document is untouched when it has
    none)."""
    if b"&#" not in content:
        return content

    def replace(ref: re.Match[bytes]) -> bytes:
        return ref.group(0) if _valid_code_point(ref) else _REPLACEMENT_REF

    return _CHAR_REF.sub(replace, content)


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
