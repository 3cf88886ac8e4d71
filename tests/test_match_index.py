"""StoryState keeps the story's vector sum exact as members join, leave and move (packed shares)."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

import pytest

from aggregator.match.index import StoryState
from aggregator.match.text import Features, features
from aggregator.types import Entry

T0 = datetime(2024, 5, 1, tzinfo=UTC)
TITLES = (
    "Putin and Erdogan meet in Ankara",
    "Erdogan hosts Putin for talks on Syria",
    "Turkey and Russia leaders discuss Idlib",
    "Ankara talks: Putin, Erdogan agree on Syria",
)


def member(n: int) -> tuple[Features, dict[str, float]]:
    entry = Entry(
        feed_url=f"https://outlet{n}.example/feed",
        entry_id=f"e{n}",
        title=TITLES[n % len(TITLES)],
        summary="",
        url=f"https://outlet{n}.example/{n}",
        link=f"https://outlet{n}.example/{n}",
        published=T0 + timedelta(minutes=n),
        updated=None,
        first_seen=T0,
        content_hash=f"{n:064x}",
    )
    feats = features(entry)
    rng = random.Random(n)
    return feats, {term: rng.uniform(0.01, 1.0) for term in feats.terms}


def expected_mass(shares: list[dict[str, float]]) -> dict[str, float]:
    total: dict[str, float] = {}
    for share in shares:
        for term, value in share.items():
            total[term] = total.get(term, 0.0) + value
    return total


def assert_mass(story: StoryState, shares: list[dict[str, float]]) -> None:
    want = expected_mass(shares)
    assert story.mass_dict().keys() == want.keys()
    for term, value in want.items():
        assert story.mass_of(term) == pytest.approx(value, abs=1e-9)


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_mass_stays_the_sum_of_the_members_left(order: tuple[int, ...]) -> None:
    members = [member(n) for n in range(3)]
    story = StoryState("s")
    for feats, share in members:
        story.add(feats, share)
    assert_mass(story, [share for _, share in members])
    left = list(range(3))
    for n in order:
        story.remove(members[n][0].key)
        left.remove(n)
        assert_mass(story, [members[k][1] for k in left])
    assert story.mass_dict() == {} and not story.slots
    assert story.solo is None and not story.member_mass


def test_a_members_own_share_is_given_back_exactly() -> None:
    members = [member(n) for n in range(3)]
    story = StoryState("s")
    story.add(*members[0])
    # Alone, the member's share is the story's sum itself, not a packed copy.
    assert story.solo == members[0][0].key and not story.member_mass
    assert story.vector_of(members[0][0].key) == members[0][1]
    for feats, share in members[1:]:
        story.add(feats, share)
    assert story.solo is None
    for feats, share in members:
        got = story.vector_of(feats.key)
        assert got is not None and got.keys() == share.keys()
        assert all(got[t] == pytest.approx(v) for t, v in share.items())


def test_a_member_without_terms_carries_no_share() -> None:
    feats, share = member(0)
    empty, _ = member(1)
    story = StoryState("s")
    story.add(empty, {})
    story.add(feats, share)
    assert story.solo == feats.key  # the first member with a share
    assert story.vector_of(empty.key) is None
    story.remove(empty.key)
    assert_mass(story, [share])
