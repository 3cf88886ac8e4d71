"""Process-wide tuning the service applies at start (``refresh/processes.py``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from aggregator.refresh.processes import MALLOC_ARENAS, MALLOC_FIXED_THRESHOLD

# Eight threads allocate blocks above pymalloc's 512-byte limit, so glibc's malloc serves them;
# malloc_stats() then lists one "Arena N:" per arena on stderr.
_THREADS_ALLOCATE = """
import ctypes, sys, threading
from aggregator.refresh.processes import tune_malloc
if sys.argv[1] == "capped":
    tune_malloc()
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


def _run(code: str, mode: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter, without the operator's MALLOC_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    return subprocess.run(
        [sys.executable, "-c", code, mode], capture_output=True, text=True, check=True, env=env
    )


def _arenas(mode: str) -> int:
    out = _run(_THREADS_ALLOCATE, mode)
    return len(re.findall(r"^Arena \d+:", out.stderr, re.MULTILINE))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_threads_share_at_most_malloc_arenas() -> None:
    assert _arenas("default") > MALLOC_ARENAS  # the test can see the difference
    assert 1 <= _arenas("capped") <= MALLOC_ARENAS


# A 1 MB block is allocated, freed and allocated again; mallinfo2's hblkhd then says whether
# the second one got a mapping of its own (fixed threshold) or came from the heap (glibc raised
# its threshold when the first was freed).
_REALLOCATES = """
import ctypes, sys
from aggregator.refresh.processes import tune_malloc
if sys.argv[1] == "tuned":
    tune_malloc()

class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
libc.mallinfo2.restype = Info
libc.free(libc.malloc(1 << 20))
block = libc.malloc(1 << 20)
print(libc.mallinfo2().hblkhd >= 1 << 20)
"""


def _mapped_again(mode: str) -> bool:
    return _run(_REALLOCATES, mode).stdout.strip() == "True"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_large_blocks_keep_their_own_mapping_after_one_is_freed() -> None:
    assert MALLOC_FIXED_THRESHOLD < 1 << 20
    assert not _mapped_again("default")  # glibc moved its threshold above 1 MB
    assert _mapped_again("tuned")


# 20,000 blocks of 4 KiB (under the mapping threshold: they come from the heap) are freed but
# the last, which pins the top of the heap; the script prints RSS in KiB before and after.
_FREES_INSIDE_THE_HEAP = """
import ctypes, sys
from aggregator.refresh.processes import release_free_memory, tune_malloc
tune_malloc()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def rss():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))
blocks = [libc.malloc(4096) for _ in range(20_000)]
for block in blocks:
    ctypes.memset(block, 1, 4096)
for block in blocks[:-1]:
    libc.free(block)
before = rss()
if sys.argv[1] == "release":
    release_free_memory()
print(before, rss())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_free_heap_pages_go_back_when_released() -> None:
    kept = [int(n) for n in _run(_FREES_INSIDE_THE_HEAP, "keep").stdout.split()]
    released = [int(n) for n in _run(_FREES_INSIDE_THE_HEAP, "release").stdout.split()]
    assert kept[0] - kept[1] < 10_000  # without it the pages stay
    assert released[0] - released[1] > 50_000  # KiB: most of the 80 MB freed
