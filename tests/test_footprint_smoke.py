"""A tiny run of ``benchmarks.footprint``, so it keeps working as the service changes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from benchmarks.footprint import tree_rss

REPO = Path(__file__).resolve().parents[1]


def test_tree_rss_sums_a_process_and_its_children() -> None:
    alone = tree_rss(os.getpid())
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) as child:
        try:
            with_child = tree_rss(os.getpid())
        finally:
            child.kill()
    assert alone.processes >= 1 and alone.rss_mb > 5
    assert with_child.processes == alone.processes + 1
    assert with_child.rss_mb > alone.rss_mb


def test_footprint_smoke_prints_the_table_and_the_summary_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.footprint", "--smoke"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].split() == [
        "state",
        "processes",
        "rss_mb",
        "steady",
        "procs",
        "peak_mb",
        "poll_s",
        "steady",
        "by",
        "process",
        "(service",
        "first)",
    ]
    assert lines[1].startswith("idle, feeds: []") and lines[3].startswith("after 5 feeds")
    for row in lines[1:4]:  # the steady figure is the sum of its processes' shares
        figures, split = row.rsplit("  ", 1)
        _, _, steady, procs, _, _ = (float(x) for x in figures.split()[-6:])
        shares = [float(mb) for mb in split.split(" + ")]
        assert len(shares) == procs and all(mb > 0 for mb in shares)
        assert abs(sum(shares) - steady) <= len(shares)  # each rounded to a whole MB
    summary = re.fullmatch(r"footprint idle_mb=(\d+) feeds2_mb=(\d+) feeds5_mb=(\d+)", lines[-1])
    assert summary, lines[-1]
    idle, _two, five = (int(x) for x in summary.groups())
    assert 0 < idle <= five  # polling never shrinks the service below idle
