"""Process-wide tuning the service applies at start (``refresh/processes.py``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from aggregator.refresh.processes import MALLOC_ARENAS

# Eight threads allocate blocks above pymalloc's 512-byte limit, so glibc's malloc serves them;
# malloc_stats() then lists one "Arena N:" per arena on stderr.
_THREADS_ALLOCATE = """
import ctypes, sys, threading
from aggregator.refresh.processes import cap_malloc_arenas
if sys.argv[1] == "capped":
    cap_malloc_arenas()
barrier = threading.Barrier(8)
def work():
    barrier.wait()
    blocks = [bytearray(2048) for _ in range(2000)]
    barrier.wait()
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
ctypes.CDLL(None).malloc_stats()
"""


def _arenas(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    out = subprocess.run(
        [sys.executable, "-c", _THREADS_ALLOCATE, mode],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return len(re.findall(r"^Arena \d+:", out.stderr, re.MULTILINE))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_threads_share_at_most_malloc_arenas() -> None:
    assert _arenas("default") > MALLOC_ARENAS  # the test can see the difference
    assert 1 <= _arenas("capped") <= MALLOC_ARENAS
