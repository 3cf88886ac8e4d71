"""The compiled match index (``setup.py``, mypyc) decides exactly as its Python source does.

The same replay runs in two fresh interpreters: one imports the extension modules built in
place, the other is made to import the ``.py`` sources beside them. Every assignment (story,
new or not, score to the last digit, evidence) and every story merge must agree: the two
processes hash strings with different seeds, and the links add their parts in the same order
whatever the seed (``link.story_link``). The replay mixes the bundled
demo feeds (five outlets, one event), benchmark feeds (four outlets per story) and a Zipf
stream of near-misses, with expiry, a bound on the index, a forbidden pair and a manual merge,
so most code paths of the matcher run in both.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.child import python_output

REPO = Path(__file__).resolve().parents[1]
MATCH = REPO / "aggregator" / "match"
# The modules built as extensions beside their sources (not the shared library they load).
COMPILED = sorted(
    name
    for name in (p.name.split(".")[0] for p in MATCH.glob("*.so"))
    if (MATCH / f"{name}.py").exists()
)

REPLAY = r"""
import importlib.util, itertools, json, random, sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

if sys.argv[1] == "source":
    class SourceOnly:
        # Finds aggregator.match modules as .py files although extension modules sit beside
        # them (the import system would prefer the extensions).
        @staticmethod
        def find_spec(name, path=None, target=None):
            if name.startswith("aggregator.match.") and path:
                source = Path(path[0]) / (name.rsplit(".", 1)[1] + ".py")
                if source.exists():
                    return importlib.util.spec_from_file_location(name, source)
            return None
    sys.meta_path.insert(0, SourceOnly)

from importlib import resources
from aggregator.match import Matcher
from aggregator.match.embedding import StaticEmbedder
from aggregator.normalise import normalise_entry
from aggregator.parse import parse_feed
from aggregator.testing import feedgen
from benchmarks.data import make_entry

now = datetime(2024, 5, 1, tzinfo=UTC)
stream = []
for name in ("afp", "ap", "reuters", "rferl", "tass"):
    body = resources.files("aggregator").joinpath("demo_feeds", f"{name}.xml").read_bytes()
    url = f"https://{name}.example.com/feed"
    stream += [normalise_entry(e, url, now) for e in parse_feed(body, {}, url).entries]
for n in range(12):
    url = f"https://outlet{n}.example.com/feed"
    body = feedgen.document(n, 0, now.timestamp() - 86400).body
    stream += [normalise_entry(e, url, now) for e in parse_feed(body, {}, url).entries]
rng = random.Random(7)
weights = list(itertools.accumulate(1.0 / (rank + 1) for rank in range(400)))
events = [[f"e{k}x{j}" for j in range(8)] for k in range(150)]
for i in range(1500):
    # Reports of one event share some of its words: stories split, join, link and merge.
    event = events[(i * 7919) % 150 if i % 3 else rng.randrange(150)]
    common = rng.choices(range(400), cum_weights=weights, k=3)
    words = rng.sample(event, 4) + [f"w{c}" for c in common]
    if i % 7 == 0:
        words.append(f"{rng.randrange(90)}%")
    stream.append(make_entry(
        title=" ".join(words), published=now - timedelta(days=4) + i * timedelta(minutes=4),
        entry_id=f"z{i}", source=f"s{i % 5}", summary=" ".join(rng.choices(words, k=12)),
    ))
stream.sort(key=lambda e: (e.published, e.feed_url, e.entry_id))

import secrets
ids = itertools.count()
# Story ids are random, and ties (the order of equal scores, of stories updated at the same
# time) are broken by id: numbered ids make both runs meet the same ties.
secrets.token_hex = lambda nbytes: f"{next(ids):0{2 * nbytes}x}"
matcher = Matcher(max_entries=900, embedder=StaticEmbedder())  # the default meaning signal
names = {}
def name(story_id):
    return names.setdefault(story_id, len(names))
out = []
for i, entry in enumerate(stream):
    a = matcher.assign(entry)
    evidence = dict(a.evidence)
    if "candidate" in evidence:  # story ids are random: compared by order of appearance
        evidence["candidate"] = name(evidence["candidate"])
    evidence_text = json.dumps(evidence, sort_keys=True)
    out.append([name(a.story_id), a.new_story, repr(a.score), evidence_text])
    out += [["merge", name(m.into), name(m.other)] for m in matcher.take_merges()]
    if i % 50 == 0:
        matcher.expire(entry.published)
    if i == 700:
        matcher.forbid(stream[690].key, a.story_id)
        out.append(["forbid", name(matcher.story_of(stream[690].key) or "none")])
    if i == 900:
        matcher.merge(matcher.story_of(stream[899].key), a.story_id)
modules = {m: getattr(sys.modules[f"aggregator.match.{m}"], "__file__", "") for m in sys.argv[2:]}
print(json.dumps({"modules": modules, "out": out}))
"""


def _replay(mode: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(python_output(REPLAY, mode, *COMPILED, timeout=240))
    return result


@pytest.mark.skipif(
    not COMPILED,
    reason="the match index is not compiled here (no C compiler or mypyc at install, or "
    "AGGREGATOR_PURE_PYTHON=1): nothing to compare",
)
def test_compiled_match_index_decides_as_its_source() -> None:
    compiled, source = _replay("compiled"), _replay("source")
    assert compiled["modules"] != source["modules"]
    for module, file in compiled["modules"].items():
        assert file.endswith(".so"), module
    for module, file in source["modules"].items():
        assert file.endswith(".py"), module
    out = compiled["out"]
    assignments = [row for row in out if isinstance(row[0], int)]
    assert len(assignments) > 2_000
    assert any(row[0] == "merge" for row in out)  # the replay reaches story merges
    assert sum(1 for row in assignments if not row[1]) > 500  # and joins
    assert out == source["out"]


def test_build_says_whether_the_index_runs_compiled() -> None:
    from aggregator.match import build

    assert build() == ("compiled" if "matcher" in COMPILED else "interpreted")


def test_compiled_modules_are_not_older_than_their_sources() -> None:
    """An extension module built before its source was edited runs the old code.

    Each module's compiled code lives in its own library (``index__mypyc.*.so``, mypyc's
    separate mode); the module's extension only loads it, and a rebuild rewrites either only
    when its C text changed, so the library's time is the build's time."""

    def built(name: str) -> float:
        library = next(MATCH.glob(f"{name}__mypyc.*.so"), None)
        return (library or next(MATCH.glob(f"{name}.*.so"))).stat().st_mtime

    stale = [name for name in COMPILED if built(name) < (MATCH / f"{name}.py").stat().st_mtime]
    assert not stale, f"rebuild with `make native`: compiled before their last edit: {stale}"


def test_the_match_index_type_checks_without_its_dependencies_types(tmp_path: Path) -> None:
    """``pip install .`` compiles in an isolated environment that holds mypy and none of the
    project's dependencies; mypyc compiles only code that type-checks there (``setup.py``
    takes missing imports as Any). An implicit alias to a numpy type became a variable there,
    and every such install ran the index interpreted without a word."""
    setup_text = (REPO / "setup.py").read_text()
    compiled = re.findall(r'"(aggregator/match/\w+\.py)"', setup_text)
    assert len(compiled) >= 5
    # Only the package's own files, as the isolated build sees them: no site-packages.
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--ignore-missing-imports",
            "--no-warn-unused-ignores",
            "--no-site-packages",
            "--cache-dir",
            str(tmp_path),
            *compiled,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
