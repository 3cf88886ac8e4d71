"""Content-Encoding decoders that never produce more than a set number of bytes.

httpx's own decoders inflate a whole network chunk at once; a 64 KiB brotli chunk can inflate to
gigabytes before any size check runs. These decoders are given the room left under the cap and
stop there, so a compression bomb costs at most ``max_bytes`` of memory.
"""

from __future__ import annotations

import zlib
from typing import Protocol

import brotli

# What we can decode; sent as Accept-Encoding so servers choose among these only.
ACCEPT_ENCODING = "gzip, deflate, br"


class BodyTooLarge(Exception):
    """The decoded body would exceed the cap."""


class DecodeFailed(Exception):
    """The body is not valid data in its declared Content-Encoding."""


class _Codec(Protocol):
    def process(self, data: bytes, room: int) -> bytes:
        """Decode ``data``; return at most ``room`` bytes (``room`` bytes means "more pending")."""

    def pending(self, room: int) -> bytes:
        """Output still buffered inside the codec, at most ``room`` bytes."""


class _Identity:
    def process(self, data: bytes, room: int) -> bytes:
        return data

    def pending(self, room: int) -> bytes:
        return b""


class _Zlib:
    """gzip (possibly several members) or deflate (zlib-wrapped, or raw as some servers send)."""

    def __init__(self, gzip: bool) -> None:
        self._gzip = gzip
        self._wbits = zlib.MAX_WBITS | 16 if gzip else zlib.MAX_WBITS
        self._obj = zlib.decompressobj(self._wbits)
        self._first = True
        self._tail = b""

    def _run(self, data: bytes, room: int) -> bytes:
        try:
            out = self._obj.decompress(data, room)
        except zlib.error:
            if self._gzip or not self._first:
                raise
            # "deflate" without the zlib header: retry the same bytes as a raw stream.
            self._wbits = -zlib.MAX_WBITS
            self._obj = zlib.decompressobj(self._wbits)
            out = self._obj.decompress(data, room)
        self._first = False
        self._tail = self._obj.unconsumed_tail
        if self._gzip and self._obj.eof and self._obj.unused_data and len(out) < room:
            # Another gzip member follows: decode it with a fresh object.
            rest = self._obj.unused_data
            self._obj = zlib.decompressobj(self._wbits)
            out += self._run(rest, room - len(out))
        return out

    def process(self, data: bytes, room: int) -> bytes:
        return self._run(self._tail + data, room)

    def pending(self, room: int) -> bytes:
        return self._run(self._tail, room) if self._tail else b""


class _Brotli:
    def __init__(self) -> None:
        self._obj = brotli.Decompressor()
        self._backlog = b""

    def process(self, data: bytes, room: int) -> bytes:
        if not self._obj.can_accept_more_data():
            # Output is still pending from earlier input; it must be drained with empty input.
            self._backlog += data
            return bytes(self._obj.process(b"", output_buffer_limit=room))
        data, self._backlog = self._backlog + data, b""
        return bytes(self._obj.process(data, output_buffer_limit=room))

    def pending(self, room: int) -> bytes:
        if self._backlog or not self._obj.can_accept_more_data():
            return self.process(b"", room)
        return b""


def _codec(encoding: str) -> _Codec:
    if encoding in ("", "identity"):
        return _Identity()
    if encoding in ("gzip", "x-gzip"):
        return _Zlib(gzip=True)
    if encoding == "deflate":
        return _Zlib(gzip=False)
    if encoding == "br":
        return _Brotli()
    raise DecodeFailed(f"unsupported Content-Encoding {encoding!r}")


class BoundedDecoder:
    """Decode a body chunk by chunk; raise ``BodyTooLarge`` past ``max_bytes`` decoded bytes.

    The raw (still encoded) bytes are held to the same cap: a feed larger than the cap even when
    compressed is refused without inflating it.
    """

    def __init__(self, content_encoding: str, max_bytes: int) -> None:
        encodings = [e.strip().lower() for e in content_encoding.split(",") if e.strip()]
        encodings = [e for e in encodings if e != "identity"]
        if len(encodings) > 1:
            raise DecodeFailed(f"unsupported layered Content-Encoding {content_encoding!r}")
        self._codec = _codec(encodings[0] if encodings else "")
        self._max = max_bytes
        self._raw = 0
        self._parts: list[bytes] = []
        self._size = 0

    def _room(self) -> int:
        # One byte more than what is left, so that reaching it proves the cap was exceeded.
        return self._max - self._size + 1

    def _keep(self, out: bytes) -> None:
        self._size += len(out)
        if self._size > self._max:
            raise BodyTooLarge
        self._parts.append(out)

    def feed(self, data: bytes) -> None:
        """Decode one raw chunk."""
        self._raw += len(data)
        if self._raw > self._max:
            raise BodyTooLarge
        try:
            self._keep(self._codec.process(data, self._room()))
            # A bounded codec may hold back output; drain what it has before the next chunk.
            while out := self._codec.pending(self._room()):
                self._keep(out)
        except (zlib.error, brotli.error) as exc:
            raise DecodeFailed(f"invalid compressed body: {exc}") from exc

    def result(self) -> bytes:
        """The decoded body."""
        return b"".join(self._parts)
