"""Build script: the match index compiled to C with mypyc, or pure Python where that fails.

Matching runs one entry at a time in one process, and in a first poll of many feeds it is what
the others wait for (``benchmarks.poll`` splits the CPU by process). The modules below are
already checked by ``mypy --strict``; mypyc compiles them as they are, and the same code runs
interpreted when there is no C compiler or ``AGGREGATOR_PURE_PYTHON=1`` is set. Everything
else (and ``text.py``, whose ``Features`` records cross process boundaries by pickle, which a
compiled frozen dataclass does not survive) stays interpreted.

After editing one of these modules in a development checkout, rebuild them in place with
``make native`` (``make test`` does it when a source is newer than its build).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

COMPILED = [
    "aggregator/match/cache.py",
    "aggregator/match/index.py",
    "aggregator/match/link.py",
    "aggregator/match/matcher.py",
    "aggregator/match/prior.py",
    "aggregator/match/score.py",
    "aggregator/match/story.py",
]
# Each module is compiled on its own (mypyc's separate mode: ``index__mypyc.*.so`` holds the
# code of ``index``, beside it in the package, where an editable install finds it as it finds the
# modules), so that ``build_ext --parallel`` compiles them on every core: a fresh build took
# 21 s as one shared library and 13 s this way on two cores, and the matcher ran the same
# number of instructions either way (callgrind: 1.553 and 1.556 G on 600 feed entries).


class BuildExtOrPure(build_ext):
    """``build_ext`` that leaves the pure-Python modules in charge when compiling fails."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler, no Python headers, ...
            print(f"aggregator: compiling the match index failed ({exc}); it runs as pure Python")
            for ext in self.extensions:
                Path(self.get_ext_fullpath(ext.name)).unlink(missing_ok=True)


def remove_compiled_modules() -> None:
    """Delete the compiled match index an earlier build left beside the sources: when this
    build cannot compile them, those libraries would still be imported instead of the sources,
    running code older than the files."""
    root = Path(__file__).parent
    for source in COMPILED:
        path = root / source
        for built in [
            *path.parent.glob(f"{path.stem}.*.so"),
            *path.parent.glob(f"{path.stem}__mypyc.*.so"),
        ]:
            built.unlink(missing_ok=True)


def native_modules() -> list[object]:
    if os.environ.get("AGGREGATOR_PURE_PYTHON") == "1":
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("aggregator: mypyc is not installed; the match index runs as pure Python")
        remove_compiled_modules()
        return []
    # pip's isolated build environment holds mypy, not the project's dependencies: their types
    # are unknown there and taken as Any (mypy --strict over the installed project checks
    # them), which leaves the type: ignore comments on those imports unused, an error under
    # strict. Without both options such a build fell back to pure Python every time.
    options = ["--ignore-missing-imports", "--no-warn-unused-ignores"]
    try:
        return list(mypycify([*options, *COMPILED], opt_level="3", separate=True))
    except (Exception, SystemExit) as exc:  # mypyc refused the code: it runs interpreted
        print(f"aggregator: mypyc could not compile the match index ({exc!r}); pure Python")
        remove_compiled_modules()
        return []


sys.path.insert(0, str(Path(__file__).parent))  # mypyc type-checks the package from here
setup(ext_modules=native_modules(), cmdclass={"build_ext": BuildExtOrPure})
