"""Python code run in a fresh interpreter: for the tests that check what a process imports,
or that two processes (compiled and not, other hash seeds) decide alike."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Seconds a child may take unless its test says otherwise: the longest, a replay of 3,000
# entries with the meaning signal (tests/test_native.py), takes about 10 s here.
CHILD_TIMEOUT = 240.0


def python_output(
    code: str, *args: str, env: Mapping[str, str] | None = None, timeout: float = CHILD_TIMEOUT
) -> str:
    """The standard output of ``python -c code args``, run from the repository root (so that
    ``tests.*`` imports); fails the test, showing the child's stderr, unless it exited 0."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=REPO,
        env=None if env is None else dict(env),
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout
