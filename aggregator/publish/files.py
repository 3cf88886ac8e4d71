"""Writing the published feeds to disk: atomically, and only when their bytes changed."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from aggregator.publish.atom import render_atom
from aggregator.publish.jsonfeed import render_json_feed
from aggregator.publish.meta import ATOM_FILENAME, JSON_FILENAME, RSS_FILENAME, FeedMeta
from aggregator.publish.rss import render_rss
from aggregator.types import Story

# New outputs are world-readable: they are public feeds a web server must be able to read.
DEFAULT_FILE_MODE = 0o644
TEMP_SUFFIX = ".tmp"
# A temporary file this old was left by a process killed mid-write: a write takes milliseconds,
# so an hour leaves a wide margin before touching a file another writer might still own.
STALE_TEMP_SECONDS = 3600.0


def _fsync_directory(folder: Path) -> None:
    """Make the rename itself durable (POSIX); not possible, nor needed, on Windows."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> bool:
    """Replace ``path`` with ``data`` atomically; return False (and touch nothing) if unchanged.

    The bytes go to a temporary file in the same folder, are flushed and fsynced, then
    ``os.replace`` swaps it in, so a reader or a crash sees either the old file or the new one,
    never a half-written one. On any error the temporary file is removed and the error raised.
    """
    try:
        if path.read_bytes() == data:
            return False
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = DEFAULT_FILE_MODE
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
    _fsync_directory(path.parent)
    return True


def remove_stale_temps(path: Path, *, now: float | None = None) -> list[Path]:
    """Delete temporary files of ``path`` left behind by a crashed writer; return them."""
    cutoff = (time.time() if now is None else now) - STALE_TEMP_SECONDS
    removed = []
    for temp in path.parent.glob(f".{path.name}.*{TEMP_SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):
            if temp.stat().st_mtime < cutoff:
                temp.unlink()
                removed.append(temp)
    return removed


def write_outputs(stories: Sequence[Story], folder: Path, meta: FeedMeta) -> list[Path]:
    """Write ``merged.atom``, ``merged.rss`` and ``merged.json`` into ``folder``, creating it.

    Returns the paths actually rewritten; a file whose bytes would not change is left alone so
    its mtime and ETag stay stable. All three documents are rendered before any is written.
    Temporary files left by a writer that was killed mid-write are removed once stale.
    """
    outputs = {
        ATOM_FILENAME: render_atom(stories, meta),
        RSS_FILENAME: render_rss(stories, meta),
        JSON_FILENAME: render_json_feed(stories, meta),
    }
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, data in outputs.items():
        path = folder / name
        remove_stale_temps(path)
        if atomic_write_bytes(path, data):
            written.append(path)
    return written
