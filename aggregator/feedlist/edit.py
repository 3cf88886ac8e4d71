"""Adding and removing feeds in feeds.yml, as text.

feeds.yml is edited as text at positions ruamel.yaml's round-trip parser reports, never
re-serialised whole, so the user's comments, order, quoting and indentation stay exactly as they
were; only the lines of the added or removed feed change. The comment lines directly above a
feed belong to it and leave with it. Every edit is validated with ``load_config_text`` before
the file is replaced atomically, so a failed edit leaves the file untouched.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from aggregator.config import Config, load_config_text
from aggregator.exceptions import ConfigError
from aggregator.publish import atomic_write_bytes
from aggregator.types import url_identity

__all__ = ["add_feed_to_config", "add_feeds_to_config", "remove_feed_from_config"]

_COMMENT = re.compile(r"\s*#")


def _read(path: Path) -> tuple[str, Config, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot be read: {exc.strerror or exc}", path=str(path)) from exc
    config = load_config_text(text, path)  # refuse to edit a file that is already invalid
    return text, config, YAML(typ="rt").load(text)


def _write(path: Path, text: str) -> Config:
    config = load_config_text(text, path)
    atomic_write_bytes(path, text.encode("utf-8"))
    return config


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _item_end(lines: Sequence[str], start: int) -> int:
    """The line after the last line belonging to the list item whose dash is on ``start``."""
    dash = _indent(lines[start])
    end = start + 1
    for number in range(start + 1, len(lines)):
        line = lines[number]
        if not line.strip():
            continue
        if _indent(line) <= dash:
            break
        end = number + 1
    return end


def _leading_comments(lines: Sequence[str], start: int, floor: int) -> int:
    """Move ``start`` up over the comment lines directly above it (no blank line between)."""
    while start > floor and _COMMENT.match(lines[start - 1]) and lines[start - 1].strip():
        start -= 1
    return start


def _render_items(feeds: Iterable[dict[str, Any]], dash: int) -> list[str]:
    yaml = YAML(typ="rt")
    yaml.width = 4096  # never fold a long URL or name
    items = CommentedSeq()
    for feed in feeds:
        item = CommentedMap(feed)
        if "tags" in item:
            tags = CommentedSeq(item["tags"])
            tags.fa.set_flow_style()
            item["tags"] = tags
        items.append(item)
    out = io.StringIO()
    yaml.dump(items, out)
    return [" " * dash + line + "\n" for line in out.getvalue().splitlines()]


def _feed_item(url: str, name: str | None, tags: Sequence[str]) -> dict[str, Any]:
    item: dict[str, Any] = {"url": url}
    if name:
        item["name"] = name
    if tags:
        item["tags"] = list(tags)
    return item


def _insert_items(text: str, root: Any, items: list[dict[str, Any]]) -> str:
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    feeds = root.get("feeds") if isinstance(root, CommentedMap) else None
    if isinstance(feeds, CommentedSeq) and feeds and not feeds.fa.flow_style():
        last_line, dash = feeds.lc.item(len(feeds) - 1)
        dash -= 2  # lc.item gives the column of the item's content, after "- "
        at = _item_end(lines, last_line)
        return "".join(lines[:at] + _render_items(items, dash) + lines[at:])
    if isinstance(root, CommentedMap) and "feeds" in root and (feeds is None or feeds == []):
        key_line = root.lc.key("feeds")[0]
        comment = lines[key_line].partition("#")[2]
        head = "feeds:" + (f"  #{comment.rstrip()}" if comment else "") + "\n"
        rest = lines[key_line + 1 :]
        return "".join([*lines[:key_line], head, *_render_items(items, 2), *rest])
    if isinstance(root, CommentedMap) and "feeds" not in root:
        return "".join([*lines, "feeds:\n", *_render_items(items, 2)])
    # A flow-style list (feeds: [{url: ...}]): let ruamel re-serialise, keeping what it can.
    assert isinstance(feeds, CommentedSeq)
    feeds.extend(CommentedMap(item) for item in items)
    return _dump(root)


def _dump(root: Any) -> str:
    out = io.StringIO()
    YAML(typ="rt").dump(root, out)
    return out.getvalue()


def add_feeds_to_config(
    path: str | os.PathLike[str], feeds: Sequence[tuple[str, str | None, Sequence[str]]]
) -> list[str]:
    """Append ``(url, name, tags)`` feeds to feeds.yml in one validated, atomic write.

    Feeds whose URL is already configured (or repeated in ``feeds``) are skipped; returns the
    URLs added.
    """
    file = Path(path)
    text, config, root = _read(file)
    known = {url_identity(f.url) for f in config.feeds}
    items = []
    for url, name, tags in feeds:
        key = url_identity(url.strip())
        if key not in known:
            known.add(key)
            items.append(_feed_item(url.strip(), name, tags))
    if items:
        _write(file, _insert_items(text, root, items))
    return [item["url"] for item in items]


def add_feed_to_config(
    path: str | os.PathLike[str], url: str, name: str | None = None, tags: Sequence[str] = ()
) -> None:
    """Append one feed to feeds.yml, keeping everything else as written.

    Raises ``ConfigError`` when the URL is already configured (naming its line) or the result
    would not be a valid configuration; the file is then left unchanged.
    """
    file = Path(path)
    _text, config, root = _read(file)
    for index, feed in enumerate(config.feeds):
        if url_identity(feed.url) == url_identity(url.strip()):
            line = root["feeds"].lc.item(index)[0] + 1
            raise ConfigError(
                f"{url} is already configured", path=str(file), line=line, key="feeds"
            )
    add_feeds_to_config(file, [(url, name, tuple(tags))])


def remove_feed_from_config(path: str | os.PathLike[str], url_or_name: str) -> str:
    """Remove the feed with this URL (or this name) and its comment lines; return its URL.

    Raises ``ConfigError`` when no feed matches or a name matches several feeds.
    """
    file = Path(path)
    text, config, root = _read(file)
    wanted = url_or_name.strip()
    matches = [
        i
        for i, feed in enumerate(config.feeds)
        if url_identity(feed.url) == url_identity(wanted) or feed.name == wanted
    ]
    if not matches:
        raise ConfigError(f"no feed has the URL or name {wanted!r}", path=str(file), key="feeds")
    if len(matches) > 1:
        urls = ", ".join(config.feeds[i].url for i in matches)
        raise ConfigError(f"{wanted!r} names several feeds: {urls}", path=str(file), key="feeds")
    index = matches[0]
    removed = config.feeds[index].url
    feeds = root["feeds"]
    if feeds.fa.flow_style():
        del feeds[index]
        new_text = _dump(root)
    else:
        lines = text.splitlines(keepends=True)
        start = feeds.lc.item(index)[0]
        if index:
            floor = _item_end(lines, feeds.lc.item(index - 1)[0])
        else:
            floor = root.lc.key("feeds")[0] + 1
        begin = _leading_comments(lines, start, floor)
        new_text = "".join(lines[:begin] + lines[_item_end(lines, start) :])
    after = _write(file, new_text)
    if len(after.feeds) != len(config.feeds) - 1:  # pragma: no cover - guards the text surgery
        raise AssertionError(f"removing {removed} changed {file} unexpectedly")
    return removed
