"""Named event-level cases for the matcher with its default meaning signal (the static model).

A story is one news event: differently worded reports of one event merge; the same people in
another event (a phone call three days earlier, another court's ruling, next week's figures)
stay apart.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from aggregator.match import MatchConfig, Matcher
from aggregator.match.embedding import StaticEmbedder, check_available, load_embedder
from aggregator.match.score import EVENT_DAY, EVENT_HOURS, meaning_bonus
from aggregator.match.semantic import (
    QUANT_LEVELS,
    ROWS_PER_BLOCK,
    SMALL_SUM_MAX,
    SemanticState,
    SemanticUnavailable,
)
from aggregator.match.story import StoryState
from aggregator.match.text import features
from tests.child import python_output
from tests.test_match import ANKARA, ANKARA_REPORTS, ASTANA_REPORTS, PHONE_CALL_REPORTS, entry

HOUR = timedelta(hours=1)

# Six agencies' reports of the Ankara talks (28 Sept 2017), worded as differently as they were:
# few rare words shared beyond the leaders, the place and the day.
SIX_AGENCIES = [
    entry(
        "afp.com",
        "afp-2",
        "Putin, Erdogan agree to deepen coordination on ending Syrian war",
        ANKARA,
        "Russian President Vladimir Putin and his Turkish counterpart Recep Tayyip Erdogan on "
        "Thursday agreed to deepen their coordination to end the six-year war in Syria, after "
        "talks in Ankara.",
    ),
    entry(
        "tass.com",
        "tass-2",
        "Putin, Erdogan confirm readiness to implement agreements on Syria de-escalation zones",
        ANKARA + 0.5 * HOUR,
        "The presidents of Russia and Turkey confirmed their readiness to fully implement the "
        "agreements reached in Astana on the de-escalation zones in Syria, Vladimir Putin told "
        "reporters in Ankara.",
    ),
    entry(
        "apnews.com",
        "ap-2",
        "Putin and Erdogan hold joint press conference in Ankara",
        ANKARA + 0.7 * HOUR,
        "Turkish President Recep Tayyip Erdogan and Russian President Vladimir Putin spoke to "
        "reporters at the presidential palace in Ankara on Thursday after their talks on Syria "
        "and trade.",
    ),
    entry(
        "reuters.com",
        "reuters-2",
        "Turkey's Erdogan, Russia's Putin agree to strengthen cooperation on Syria",
        ANKARA + 0.4 * HOUR,
        "Turkish President Tayyip Erdogan and Russian President Vladimir Putin agreed on "
        "Thursday to strengthen cooperation to end the war in Syria, Erdogan told a news "
        "conference in Ankara.",
    ),
    entry(
        "rferl.org",
        "rferl-2",
        "Putin, Erdogan Pledge To Closely Cooperate On Syria",
        ANKARA + 2 * HOUR,
        "Russian President Vladimir Putin and Turkish President Recep Tayyip Erdogan have "
        "pledged to cooperate closely to end the conflict in Syria, after talks in the Turkish "
        "capital.",
    ),
    entry(
        "aa.com.tr",
        "aa-2",
        "Turkish, Russian leaders meet in Ankara on Syria, energy and trade",
        ANKARA - 0.5 * HOUR,
        "President Recep Tayyip Erdogan hosted Russian President Vladimir Putin in Ankara on "
        "Thursday for talks on Syria, the TurkStream pipeline and bilateral trade.",
    ),
]


@pytest.fixture(scope="module")
def static() -> StaticEmbedder:
    return StaticEmbedder()


def stories_of(matcher: Matcher, groups: dict[str, list]) -> dict[str, set[str]]:  # type: ignore[type-arg]
    """Replay the groups' entries in published order; the set of stories each group got."""
    tagged = sorted(
        ((e, name) for name, entries in groups.items() for e in entries),
        key=lambda pair: pair[0].published,
    )
    folded: dict[str, str] = {}
    got: list[tuple[str, str]] = []
    for e, name in tagged:
        got.append((name, matcher.assign(e).story_id))
        for merge in matcher.take_merges():
            folded[merge.other] = merge.into

    def final(story: str) -> str:
        while story in folded:
            story = folded[story]
        return story

    result: dict[str, set[str]] = {}
    for name, story in got:
        result.setdefault(name, set()).add(final(story))
    return result


@pytest.mark.parametrize("window", [timedelta(hours=48), timedelta(days=30)])
def test_six_agencies_one_record_near_misses_apart(
    static: StaticEmbedder, window: timedelta
) -> None:
    groups = {"ankara": SIX_AGENCIES, "phone": PHONE_CALL_REPORTS, "astana": ASTANA_REPORTS}
    got = stories_of(Matcher(window=window, embedder=static), groups)
    assert all(len(ids) == 1 for ids in got.values()), got
    assert len(set.union(*got.values())) == 3, got


# Near misses of the AllSides kind: the same people or institutions, another event.
NEAR_MISSES = {
    "vaccine authorisations a week apart": (
        entry(
            "a.com",
            "fda-1",
            "FDA authorizes Pfizer coronavirus vaccine for emergency use",
            datetime(2020, 12, 11, 23, tzinfo=UTC),
            "The Food and Drug Administration on Friday authorized the Pfizer and BioNTech "
            "coronavirus vaccine for emergency use in people 16 and older.",
        ),
        entry(
            "b.com",
            "fda-2",
            "FDA authorizes Moderna coronavirus vaccine for emergency use",
            datetime(2020, 12, 18, 22, tzinfo=UTC),
            "The Food and Drug Administration on Friday authorized Moderna's coronavirus "
            "vaccine for emergency use, the second vaccine cleared in the United States.",
        ),
    ),
    "weekly jobless claims": (
        entry(
            "a.com",
            "claims-1",
            "Weekly jobless claims fall to 576,000, a pandemic low",
            datetime(2021, 4, 15, 12, 30, tzinfo=UTC),
            "First-time claims for unemployment benefits fell to 576,000 last week, the Labor "
            "Department said on Thursday, the lowest since the pandemic began.",
        ),
        entry(
            "b.com",
            "claims-2",
            "Weekly jobless claims sink to new pandemic low of 547,000",
            datetime(2021, 4, 22, 12, 30, tzinfo=UTC),
            "First-time claims for unemployment benefits sank to 547,000 last week, the Labor "
            "Department said on Thursday, another low since the pandemic began.",
        ),
    ),
}


@pytest.mark.parametrize("case", NEAR_MISSES.values(), ids=NEAR_MISSES.keys())
def test_same_people_another_event_stays_apart(static: StaticEmbedder, case: tuple) -> None:  # type: ignore[type-arg]
    matcher = Matcher(window=timedelta(days=14), embedder=static)
    first, second = (matcher.assign(e) for e in case)
    assert second.story_id != first.story_id, second.evidence


def test_evidence_names_the_meaning_similarity(static: StaticEmbedder) -> None:
    matcher = Matcher(embedder=static)
    matcher.assign(SIX_AGENCIES[0])
    joined = matcher.assign(SIX_AGENCIES[3])
    assert joined.evidence["rule"] == "score"
    assert 0.3 < float(joined.evidence["meaning"]) <= 1.0  # type: ignore[arg-type]
    assert "same_event" in joined.evidence


def test_meaning_counts_only_against_a_join_after_a_day() -> None:
    config = MatchConfig()
    alike, unlike = 0.9, 0.0
    hours = EVENT_HOURS / 2
    assert meaning_bonus(alike, hours, 0.0, 5, config)[0] > 0
    assert meaning_bonus(alike, EVENT_DAY + HOUR, 0.0, 5, config) == (0.0, False)
    assert meaning_bonus(unlike, EVENT_DAY + HOUR, 0.0, 5, config)[0] < 0
    assert meaning_bonus(unlike, hours, 0.0, 5, config)[0] < 0


def test_event_rule_needs_actors_hours_and_meaning() -> None:
    config = MatchConfig()
    near = EVENT_HOURS / 2
    assert meaning_bonus(0.8, near, 0.0, 4, config)[1]
    assert not meaning_bonus(0.8, EVENT_HOURS + HOUR, 0.0, 4, config)[1]  # hours apart
    assert not meaning_bonus(0.8, near, 0.0, 1, config)[1]  # who: too few named actors
    assert not meaning_bonus(0.8, near, 0.9, 4, config)[1]  # the story names other actors
    assert not meaning_bonus(0.1, near, 0.0, 4, config)[1]  # about something else
    assert not meaning_bonus(0.8, None, 0.0, 4, config)[1]  # no time to judge by


def test_centring_removes_the_direction_all_texts_share() -> None:
    rng = np.random.default_rng(0)
    common = np.zeros(16, dtype=np.float32)
    common[0] = 8.0

    def unit(v: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
        return (v / np.linalg.norm(v)).astype(np.float32)

    state = SemanticState(lambda texts: [])
    rows = [state.add(f"s{i}", unit(common + rng.normal(size=16))) for i in range(400)]
    first = rows[0]
    unrelated = unit(common + rng.normal(size=16))
    raw = float(np.dot(unrelated, state.member(first)))  # type: ignore[arg-type]
    prepared = state.prepare(unrelated)
    assert prepared is not None
    centred = state.entry_link(prepared, "s0", 1)
    assert raw > 0.5  # the shared direction alone makes unrelated texts look alike
    assert abs(centred) < raw - 0.3


def test_story_sums_stay_exact_as_members_come_and_go() -> None:
    """A one-member story shares its member's vector as its sum; a second member, a removal
    and a move between stories must leave every sum as if it had been built from scratch."""
    rng = np.random.default_rng(1)
    rows = [(v / np.linalg.norm(v)).astype(np.float32) for v in rng.normal(size=(4, 16))]
    state = SemanticState(lambda texts: [])
    row0 = state.add("a", rows[0])
    stored = state.member(row0)
    assert stored is not None and stored.dtype == np.float32
    row1 = state.add("a", rows[1], [row0])
    row2 = state.add("b", rows[2])
    # The shared sum (the member's own row) was not added to.
    assert np.array_equal(state.member(row0), stored)  # type: ignore[arg-type]
    state.remove("a", row0, [row1])
    moved = state.member(row2)
    state.remove("b", row2)
    state.add("a", moved, [row1])  # type: ignore[arg-type]

    fresh = SemanticState(lambda texts: [])
    fresh.add("a", rows[2], [fresh.add("a", rows[1])])
    fresh.remove("z", fresh.add("z", rows[0]))  # same window total, elsewhere
    for probe in rows:
        got, want = state.prepare(probe), fresh.prepare(probe)
        assert got is not None and want is not None
        assert state.entry_link(got, "a", 2) == pytest.approx(fresh.entry_link(want, "a", 2))


def test_a_story_sum_is_a_row_of_bytes_while_the_story_is_small() -> None:
    """Up to SMALL_SUM_MAX members a story's sum is a row of its own, made from its members'
    rows; past it, float32. Either way the link is the mean over the members' rows (to the
    rows' rounding), and shrinking back frees the story's own row."""
    rng = np.random.default_rng(4)
    vectors = [(v / np.linalg.norm(v)).astype(np.float32) for v in rng.normal(size=(12, 64))]
    state = SemanticState(lambda texts: [])
    rows: list[int] = []
    probe = state.prepare(vectors[0])
    assert probe is not None

    def exact_link() -> float:
        total = sum(state.member(r) for r in rows)  # type: ignore[misc]
        return float(probe.vector @ total) / len(rows)

    def free_rows() -> int:
        return len(state._free_rows)

    for vector in vectors:
        rows.append(state.add("s", vector, list(rows)))
        kept = state._sums["s"]
        if len(rows) == 1:
            assert kept == rows[0]  # shared
        elif len(rows) <= SMALL_SUM_MAX:
            assert isinstance(kept, int) and kept < 0 and ~kept not in rows
        else:
            assert not isinstance(kept, int) and kept.dtype == np.float32
        # entry_link divides by the spread; compare the raw mean through a spread of 1.
        got = state.entry_link(probe, "s", len(rows)) * state._mean()[1] + probe.dot_centre
        assert got == pytest.approx(exact_link(), abs=2e-3)
    while len(rows) > 1:
        gone = rows.pop(0)
        state.remove("s", gone, list(rows))
        got = state.entry_link(probe, "s", len(rows)) * state._mean()[1] + probe.dot_centre
        assert got == pytest.approx(exact_link(), abs=2e-3)
    assert state._sums["s"] == rows[0]
    before = free_rows()
    state.remove("s", rows.pop())
    assert "s" not in state._sums and free_rows() == before + 1
    assert free_rows() == len(state._blocks) * ROWS_PER_BLOCK  # every row back


def test_rows_of_members_gone_are_reused() -> None:
    rng = np.random.default_rng(2)
    state = SemanticState(lambda texts: [])
    rows = [(v / np.linalg.norm(v)).astype(np.float32) for v in rng.normal(size=(3, 8))]
    row0 = state.add("a", rows[0])
    row1 = state.add("b", rows[1])
    blocks = len(state._blocks)
    state.remove("a", row0)
    row2 = state.add("c", rows[2])
    assert len(state._blocks) == blocks and row2 == row0  # the freed row, no new block
    assert np.allclose(state.member(row2), rows[2], atol=1 / QUANT_LEVELS)  # type: ignore[arg-type]
    assert np.allclose(state.member(row1), rows[1], atol=1 / QUANT_LEVELS)  # type: ignore[arg-type]
    assert state.member(-1) is None


def test_a_story_keeps_its_members_rows_in_their_order() -> None:
    """Each story keeps its members' meaning rows beside their norms: -1 for a member without
    one, nothing at all while no member has one, and a leaving member takes its row along."""
    a, b, c = (
        features(entry(f"{n}.com", "1", f"Erdogan hosts Putin in Ankara {n}", ANKARA))
        for n in "abc"
    )
    story = StoryState("s")
    story.add(a)
    assert story.rows is None and story.row_of(a.key) == -1
    story.add(b, 0.0, 7)
    story.add(c, 0.0, 3)
    assert story.rows is not None and list(story.rows) == [-1, 7, 3]
    assert [story.row_of(f.key) for f in (a, b, c)] == [-1, 7, 3]
    story.remove(b.key)
    assert list(story.rows) == [-1, 3] and story.row_of(c.key) == 3


def _by_crc(texts: Sequence[str]) -> np.ndarray:  # type: ignore[type-arg]
    """A unit vector per text, the same for the same text in every run."""
    rows = [np.random.default_rng(zlib.crc32(t.encode())).normal(size=16) for t in texts]
    return np.array([r / np.linalg.norm(r) for r in rows], dtype=np.float32)


def test_a_matcher_frees_every_row_of_the_stories_it_drops() -> None:
    """Rows go back to the meaning state as members leave, move or expire with their story."""
    matcher = Matcher(embedder=_by_crc, window=timedelta(hours=48))
    for report in ANKARA_REPORTS:
        matcher.assign(report)
    state = matcher.semantic
    assert state is not None
    held = sum(1 for story in matcher.stories.values() for row in story.rows or () if row >= 0)
    assert held == len(ANKARA_REPORTS)
    matcher.expire(ANKARA + timedelta(days=30))
    assert not matcher.stories
    assert len(state._free_rows) == len(state._blocks) * ROWS_PER_BLOCK


def test_a_member_is_kept_within_half_a_step_of_its_largest_component() -> None:
    """A row keeps bytes and a scale: each component within half a step (the largest over
    QUANT_LEVELS) of the vector given, the largest exactly, zeros as zeros, and reading it
    twice gives the same floats (what a leaving member takes out of its story's sum)."""
    rng = np.random.default_rng(3)
    state = SemanticState(lambda texts: [])
    vectors = [(v / np.linalg.norm(v)).astype(np.float32) for v in rng.normal(size=(50, 256))]
    vectors.append(np.zeros(256, dtype=np.float32))
    rows = [state.add(f"s{i}", vector) for i, vector in enumerate(vectors)]
    for row, vector in zip(rows, vectors, strict=True):
        kept = state.member(row)
        assert kept is not None and kept.dtype == np.float32
        peak = float(np.abs(vector).max())
        step = peak / QUANT_LEVELS
        assert float(np.abs(kept - vector).max()) <= step / 2 + 1e-7
        assert float(np.abs(kept).max()) == pytest.approx(peak, rel=1e-6, abs=0.0)
        assert np.array_equal(kept, state.member(row))  # type: ignore[arg-type]
    assert not state.member(rows[-1]).any()  # type: ignore[union-attr]


def test_static_model_gives_unit_vectors_closer_for_one_event(static: StaticEmbedder) -> None:
    texts = [SIX_AGENCIES[0].title, SIX_AGENCIES[3].title, "Apple unveils a new iPhone", ""]
    vectors = static(texts)
    assert vectors.shape == (4, static.dimensions)
    assert np.allclose(np.linalg.norm(vectors[:3], axis=1), 1.0, atol=1e-5)
    assert not vectors[3].any()  # nothing to embed: no direction
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    assert np.array_equal(static(texts[:1])[0], vectors[0])  # batch or not, the same vector


def test_settings_choose_the_signal() -> None:
    assert load_embedder("off") is None
    assert isinstance(load_embedder("static"), StaticEmbedder)
    assert load_embedder("static") is load_embedder("static")  # loaded once per process


def test_minilm_without_its_extra_is_a_clear_error() -> None:
    import importlib.util

    if importlib.util.find_spec("sentence_transformers") is not None:
        pytest.skip("the semantic extra is installed here")
    with pytest.raises(SemanticUnavailable, match=r"settings\.semantic: minilm"):
        check_available("minilm")
    check_available("static")
    check_available("off")


def test_the_static_model_is_read_at_first_use_and_a_broken_one_is_named(tmp_path: Path) -> None:
    from aggregator.match.embedding import MODEL_FILES, STATIC_MODEL, ModelUnavailable

    with pytest.raises(ModelUnavailable, match=re.escape("model.safetensors missing")):
        StaticEmbedder(tmp_path)
    for name in MODEL_FILES:
        (tmp_path / name).write_bytes((STATIC_MODEL / name).read_bytes()[:100])
    damaged = StaticEmbedder(tmp_path)  # files present: checked, not read yet
    with pytest.raises(
        ModelUnavailable, match=re.escape(f"cannot read the static meaning model in {tmp_path}")
    ):
        damaged(["Putin meets Erdogan"])
    lazy = StaticEmbedder()
    assert lazy._loaded is None
    assert lazy(["Putin meets Erdogan"]).shape == (1, lazy.dimensions)
    assert lazy._loaded is not None


def test_numpy_waits_for_the_first_text_to_embed() -> None:
    """A service with nothing to match (``feeds: []``, a quiet start) does not load numpy,
    about 17 MB; the first entry to match does."""
    code = (
        "import sys\n"
        "import aggregator.service, aggregator.runtime\n"
        "from datetime import UTC, datetime\n"
        "from aggregator.match import Matcher\n"
        "from aggregator.match.embedding import load_embedder\n"
        "from tests.factories import make_entry\n"
        "m = Matcher(embedder=load_embedder('static'))\n"
        "print('numpy' in sys.modules)\n"
        "when = datetime(2024, 5, 1, tzinfo=UTC)\n"
        "m.assign(make_entry('f', '1', 'Storm hits coast', published=when, content_hash='h'))\n"
        "print('numpy' in sys.modules)\n"
    )
    assert python_output(code).split() == ["False", "True"]
