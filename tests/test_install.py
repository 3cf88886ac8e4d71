"""The install: `make run` gets the service and its runtime dependencies only (issue #16)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# Tools for testing, checking, benchmarking or other backends: never needed to run the service.
DEVELOPMENT_ONLY = {"pytest", "pytest-asyncio", "pytest-timeout", "mypy", "ruff", "playwright"}
DEVELOPMENT_ONLY |= {"scipy", "psycopg", "setuptools"}


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\[<>=!~; ]", r, maxsplit=1)[0].lower() for r in requirements}


def test_runtime_dependencies_hold_no_development_tools() -> None:
    runtime = _names(PYPROJECT["project"]["dependencies"])
    assert not runtime & DEVELOPMENT_ONLY
    # The meaning model of matching is part of the default service.
    assert {"numpy", "tokenizers"} <= runtime
    dev = _names(PYPROJECT["project"]["optional-dependencies"]["dev"])
    assert {"pytest", "mypy", "ruff"} <= dev


def test_license_is_an_spdx_expression_with_its_file() -> None:
    """A table here made setuptools warn six times per install."""
    project = PYPROJECT["project"]
    assert project["license"] == "MIT"
    assert all((ROOT / name).is_file() for name in project["license-files"])
    build = _names(PYPROJECT["build-system"]["requires"])
    assert {"setuptools", "mypy"} <= build  # mypyc compiles the match index at build time


def test_make_run_installs_no_extra_and_make_test_adds_dev() -> None:
    makefile = (ROOT / "Makefile").read_text()
    rules = {m[0]: m[1] for m in re.findall(r"^(\S+):(.*)$", makefile, flags=re.MULTILINE)}
    assert "DEV_STAMP" not in rules["run"] and "DEV_STAMP" not in rules["$(NATIVE)"]
    assert "$(DEV_STAMP)" in rules["test"]
    stamp = makefile.split("$(STAMP): pyproject.toml", 1)[1].split("\n\n", 1)[0]
    # The project itself with no extra (its bytecode is written by $(BYTECODE) beside the
    # compile, hence --no-compile).
    assert re.search(r"\$\(PIP\) install --quiet --no-compile -e \.\n", stamp + "\n")
    assert "[dev]" not in stamp
    assert "$(STAMP)" in rules["$(BYTECODE)"] and "$(BYTECODE)" in makefile.split("installs:")[1]
