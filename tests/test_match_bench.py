"""Smoke runs of the matching benchmark: on a tiny TSV, and on the shared data when present."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The benchmarks package lives at the repository root, which pytest does not put on sys.path
# (its pytest config has no `pythonpath`).
REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import match as bench  # noqa: E402
from benchmarks.data import (  # noqa: E402
    SHARED_DATA,
    cluster_scores,
    load_tsv,
    roc_auc,
    stsb_pair_check,
)

TINY = """entry_id\ttitle\tstory_id\tsource
1\tFed's Plosser sees high bar for change in pace of tapering\tfed\tReuters
2\tApple unveils new iPhone with facial recognition\tapple\tAP
3\tFed official Plosser says weather, not economy, slowed tapering data\tfed\tLA Times
4\tApple's new iPhone adds facial recognition, drops home button\tapple\tVerge
"""


def test_benchmark_runs_on_a_tiny_tsv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "tiny.tsv"
    data.write_text(TINY, encoding="utf-8")
    assert bench.main(["--data", str(data), "--no-extra"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("B3 precision=")
    fields = dict(part.split("=") for part in last.removeprefix("B3 ").split())
    assert set(fields) == {"precision", "recall", "f1", "entries_per_s"}
    assert float(fields["precision"]) == 1.0


def test_compare_replays_with_each_meaning_signal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "tiny.tsv"
    data.write_text(TINY, encoding="utf-8")
    assert bench.main(["--data", str(data), "--no-extra", "--compare"]) == 0
    out = capsys.readouterr().out
    assert "meaning signal: static" in out.splitlines()[0]
    for signal in ("off", "static"):
        line = next(x for x in out.splitlines() if f"semantic={signal}:" in x)
        assert "B3 P=1.000" in line
    assert "semantic=minilm" in out  # measured, or skipped with the reason


def test_unavailable_signal_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    if importlib.util.find_spec("sentence_transformers") is not None:
        pytest.skip("the semantic extra is installed here")
    data = tmp_path / "tiny.tsv"
    data.write_text(TINY, encoding="utf-8")
    assert bench.main(["--data", str(data), "--semantic", "minilm"]) == 2
    assert "semantic extra" in capsys.readouterr().err


def test_tsv_without_published_follows_the_replay_protocol(tmp_path: Path) -> None:
    data = tmp_path / "tiny.tsv"
    data.write_text(TINY, encoding="utf-8")
    stream = load_tsv(data)
    times = [item.entry.published for item in stream]
    assert times == sorted(times)
    assert sorted(item.entry.entry_id for item in stream) == ["1", "2", "3", "4"]
    assert [item.entry.entry_id for item in stream] != ["1", "2", "3", "4"] or len(stream) < 3


def test_missing_data_skips_cleanly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--data", str(tmp_path / "absent.tsv")]) == 0
    assert "skipped" in capsys.readouterr().out


def test_metrics_on_known_clusterings() -> None:
    perfect = cluster_scores(["a", "a", "b"], ["x", "x", "y"])
    assert perfect.b3_f1 == 1.0 and perfect.pair_f1 == 1.0
    lumped = cluster_scores(["a", "a", "b"], ["x", "x", "x"])
    assert lumped.b3_recall == 1.0
    assert lumped.b3_precision == pytest.approx((2 / 3 * 2 + 1 / 3) / 3)
    assert lumped.pair_precision == pytest.approx(1 / 3)
    assert roc_auc([0.1, 0.9, 0.5], [False, True, False]) == 1.0
    assert roc_auc([0.5, 0.5], [False, True]) == 0.5


@pytest.mark.skipif(not (SHARED_DATA / "uci-news-head").is_dir(), reason="../shared/data absent")
def test_shared_data_loads() -> None:
    stream = load_tsv(SHARED_DATA / "uci-news-head" / "entries.tsv")
    assert len(stream) == 6366
    assert len({item.story for item in stream}) == 87


def test_stsb_pair_check_counts_only_judged_pairs() -> None:
    pairs = [(4.6, "a", "b"), (0.4, "a", "c"), (3.0, "b", "c"), (1.8, "d", "e")]
    check = stsb_pair_check(pairs, {"a": "s1", "b": "s1", "c": "s1", "d": "s2", "e": "s3"})
    assert (check.merged_same, check.same) == (1, 1)
    assert (check.merged_different, check.different) == (1, 2)
    assert check.precision == 0.5
    assert check.recall == 1.0


def test_realistic_benchmark_runs_on_a_few_feeds(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks import match_realistic

    assert match_realistic.main(["--feeds", "4", "--runs", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("4 feeds, 200 entries")
    assert "B3 P=" in lines[1]
    assert float(lines[-1].split("=")[1]) > 0


def test_ceiling_benchmark_finds_the_two_stories_of_a_tiny_tsv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from benchmarks import match_ceiling

    data = tmp_path / "tiny.tsv"
    data.write_text(TINY, encoding="utf-8")
    assert match_ceiling.main(["--data", str(data)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0] == "tiny.tsv: 4 entries, 2 labelled stories"
    fields = dict(part.split("=") for part in out[-1].removeprefix("ceiling ").split())
    assert set(fields) == {"precision_floor", "offline_best_f1", "online_f1"}
    # Each pair shares its rare words (plosser, tapering; iphone, facial recognition) and
    # nothing with the other pair: average link separates them exactly at some threshold.
    assert float(fields["offline_best_f1"]) == 1.0
    assert any(line.startswith("offline lexical average") and "F1=1.000" in line for line in out)


def test_ceiling_keeps_only_cuts_at_the_precision_floor() -> None:
    from benchmarks.match_ceiling import Cut, best_at_floor

    truth = ["a", "a", "b", "b"]
    loose = Cut(0.1, cluster_scores(truth, ["x", "x", "x", "x"]))  # P .5, F1 .667
    split = Cut(0.5, cluster_scores(truth, ["x", "y", "z", "w"]))  # P 1, F1 .5
    assert best_at_floor([loose, split]) == split
    assert best_at_floor([loose]) is None
