"""Reading feeds.yml with ruamel.yaml's round-trip loader, which remembers where everything is.

The loaded tree is kept beside its plain-Python copy so that any error, found by pydantic or by
a later check, can be reported at the line of the key or list item it concerns.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    ScalarEvent,
)

from aggregator.exceptions import ConfigError

Loc = Sequence[str | int]
_ABSENT = object()

# Bounds checked before the tree is built (issue #19), so a hostile or careless edit is a
# ConfigError naming its line, never a crash or minutes of work in `check` or live reload.
# A feeds.yml of 10,000 feeds is about 1.5 MB.
MAX_CONFIG_BYTES = 16 * 1024 * 1024
# A valid feeds.yml is at most four levels deep (feeds -> item -> tags -> tag); ruamel builds
# the tree recursively and 600 nested "[" raised RecursionError.
MAX_NESTING = 32
# Nodes once every alias is expanded: a 330-byte alias bomb of 8 levels cost 59 s and 1.2 GB,
# 9 levels would need 10 GB. 10,000 feeds with every optional key come to about 100,000 nodes.
MAX_EXPANDED_NODES = 1_000_000


def _check_shape(text: str, display: str) -> None:
    """Reject nesting deeper than ``MAX_NESTING`` and more than ``MAX_EXPANDED_NODES`` nodes
    after alias expansion, from the parser's events (the parser is not recursive)."""
    # Each open collection: the expanded count when it began, and its anchor.
    open_collections: list[tuple[int, str | None]] = []
    anchored: dict[str, int] = {}  # anchor -> expanded size of its node
    expanded = 0
    for event in YAML(typ="rt").parse(text):
        line = event.start_mark.line + 1 if event.start_mark is not None else None
        if isinstance(event, CollectionStartEvent):
            if len(open_collections) >= MAX_NESTING:
                problem = f"nested more than {MAX_NESTING} levels deep"
                raise ConfigError(problem, path=display, line=line)
            open_collections.append((expanded, event.anchor))
            expanded += 1
        elif isinstance(event, CollectionEndEvent):
            began, anchor = open_collections.pop()
            if anchor is not None:
                anchored[str(anchor)] = expanded - began
        elif isinstance(event, ScalarEvent):
            expanded += 1
            if event.anchor is not None:
                anchored[str(event.anchor)] = 1
        elif isinstance(event, AliasEvent):
            expanded += anchored.get(str(event.anchor), 1)
        if expanded > MAX_EXPANDED_NODES:
            problem = f"more than {MAX_EXPANDED_NODES:,} values once aliases are expanded"
            raise ConfigError(problem, path=display, line=line)


def load_yaml(text: str, display: str) -> Any:
    """Parse YAML text into ruamel's commented tree; a syntax error names ``file:line``; so
    does a file over the size, nesting or alias expansion bounds."""
    size = len(text.encode("utf-8", errors="replace"))
    if size > MAX_CONFIG_BYTES:
        limit = MAX_CONFIG_BYTES // (1024 * 1024)
        raise ConfigError(f"is {size:,} bytes, over the {limit} MiB limit", path=display, line=1)
    try:
        _check_shape(text, display)
        return YAML(typ="rt").load(text)
    except RecursionError as exc:  # a bound above should have caught it first
        raise ConfigError("invalid YAML: nested too deeply", path=display, line=1) from exc
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        # ruamel appends advice about its own API after the first line; keep only the problem.
        problem = (exc.problem or "invalid YAML").splitlines()[0]
        if exc.context:
            started = exc.context_mark.line + 1 if exc.context_mark is not None else None
            where = f" (from line {started})" if started not in (None, line) else ""
            problem = f"{exc.context}{where}: {problem}"
        raise ConfigError(f"invalid YAML: {problem}", path=display, line=line) from exc
    except YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", path=display) from exc


def to_plain(node: Any) -> Any:
    """A copy of the tree made of plain dict, list, str, int, float and bool.

    ruamel keeps formatting in subclasses (``HexInt``, ``ScalarFloat``, quoted strings); pydantic's
    strict mode should judge the value, not the subclass.
    """
    if isinstance(node, dict):
        return {key_text(key): to_plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [to_plain(item) for item in node]
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node


def key_text(key: object) -> str:
    """A mapping key as text, the way it was written: ``null: 1`` has the key ``null``."""
    if key is None:
        return "null"
    if isinstance(key, bool):
        return str(key).lower()
    return str(key)


def _walk(root: Any, loc: Loc) -> Iterator[int]:
    """The 1-based line of each step of ``loc`` that exists in the file, stopping at a gap."""
    node = root
    for part in loc:
        if isinstance(node, CommentedMap):
            key = next((k for k in node if key_text(k) == part), _ABSENT)
            if key is _ABSENT:
                return
            yield node.lc.key(key)[0] + 1
            node = node[key]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            yield node.lc.item(part)[0] + 1
            node = node[part]
        else:
            return


def line_of(root: Any, loc: Loc) -> int | None:
    """The 1-based line of the deepest key or item of ``loc`` that exists in the file.

    A missing key reports the line of the mapping that should hold it, so "feeds[2].url:
    required key is missing" points at feed 2.
    """
    steps = list(_walk(root, loc))
    if steps:
        return steps[-1]
    # An empty document has no position; its problems are reported at line 1.
    start = root.lc.line if isinstance(root, CommentedMap | CommentedSeq) else None
    return (start or 0) + 1


def has_key(root: Any, loc: Loc) -> bool:
    """Whether the file itself spells out ``loc`` (as opposed to a default filling it)."""
    return sum(1 for _ in _walk(root, loc)) == len(loc)


def key_path(loc: Loc) -> str:
    """``('feeds', 3, 'interval')`` -> ``feeds[3].interval``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text
