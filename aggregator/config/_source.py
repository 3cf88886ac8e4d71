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

from aggregator.exceptions import ConfigError

Loc = Sequence[str | int]
_ABSENT = object()


def load_yaml(text: str, display: str) -> Any:
    """Parse YAML text into ruamel's commented tree; a syntax error names ``file:line``."""
    try:
        return YAML(typ="rt").load(text)
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
