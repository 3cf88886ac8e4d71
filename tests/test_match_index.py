"""StoryState keeps the story's vector sum exact as members join, leave and move (packed sums)."""

from __future__ import annotations

import itertools
import pickle
import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from aggregator.match.cache import NORM_REFRESH, StoryCache
from aggregator.match.index import POSTING_LIST_MAX, TermIndex
from aggregator.match.matcher import Matcher
from aggregator.match.story import StoryState, share_at, shares
from aggregator.match.text import SUMMARY_WEIGHT, Features, features, text_key
from aggregator.types import Entry

T0 = datetime(2024, 5, 1, tzinfo=UTC)
TITLES = (
    "Putin and Erdogan meet in Ankara",
    "Erdogan hosts Putin for talks on Syria",
    "Turkey and Russia leaders discuss Idlib",
    "Ankara talks: Putin, Erdogan agree on Syria",
)


def feats_of(n: int, title: str, summary: str = "") -> Features:
    """The features of outlet ``n``'s report with this title (and summary)."""
    return features(
        Entry(
            feed_url=f"https://outlet{n}.example/feed",
            entry_id=f"e{n}",
            title=title,
            summary=summary,
            url=f"https://outlet{n}.example/{n}",
            link=f"https://outlet{n}.example/{n}",
            published=T0 + timedelta(minutes=n),
            updated=None,
            first_seen=T0,
            content_hash=f"{n:064x}",
        )
    )


def member(n: int) -> tuple[Features, float]:
    """An entry's features and a norm of its term weights."""
    return feats_of(n, TITLES[n % len(TITLES)]), random.Random(n).uniform(1.0, 9.0)


def share(feats: Features, norm: float) -> dict[str, float]:
    return dict(zip(feats.terms, shares(feats, norm), strict=True))


def expected_mass(parts: list[dict[str, float]]) -> dict[str, float]:
    total: dict[str, float] = {}
    for part in parts:
        for term, value in part.items():
            total[term] = total.get(term, 0.0) + value
    return total


def assert_mass(story: StoryState, parts: list[dict[str, float]]) -> None:
    want = expected_mass(parts)
    assert story.mass_dict().keys() == want.keys()
    for term, value in want.items():
        assert story.mass_of(term) == pytest.approx(value, abs=1e-9)


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_mass_stays_the_sum_of_the_members_left(order: tuple[int, ...]) -> None:
    members = [member(n) for n in range(3)]
    story = StoryState("s")
    for feats, norm in members:
        story.add(feats, norm)
    assert_mass(story, [share(*m) for m in members])
    left = list(range(3))
    for n in order:
        story.remove(members[n][0].key)
        left.remove(n)
        assert_mass(story, [share(*members[k]) for k in left])
        assert sorted(story.slots) == sorted({t for k in left for t in members[k][0].terms})
    assert story.mass_dict() == {} and not story.slots and not story.norms


def test_a_member_leaves_with_the_norm_it_came_with() -> None:
    members = [member(n) for n in range(3)]
    story = StoryState("s")
    for feats, norm in members:
        story.add(feats, norm)
    for feats, norm in members:
        assert story.norm_of(feats.key) == norm
    story.remove(members[1][0].key)
    assert story.norm_of(members[2][0].key) == members[2][1]
    with pytest.raises(KeyError):
        story.norm_of(members[1][0].key)


def test_a_share_is_the_weight_factor_over_the_norm() -> None:
    feats = feats_of(1, TITLES[1], "Ministers met in Ankara on Thursday to discuss tariffs.")
    norm = 3.0
    got = share(feats, norm)
    assert feats.title_terms and feats.summary_terms
    assert [got[t] for t in feats.title_terms] == [1.0 / norm] * len(feats.title_terms)
    assert [got[t] for t in feats.summary_terms] == [SUMMARY_WEIGHT / norm] * len(
        feats.summary_terms
    )
    assert [share_at(feats, norm, i) for i in range(len(feats.terms))] == shares(feats, norm)
    assert shares(feats, 0.0) == [0.0] * len(feats.terms)


def test_freed_slots_are_reused() -> None:
    members = [member(n) for n in range(3)]
    story = StoryState("s")
    for feats, norm in members[:2]:
        story.add(feats, norm)
    used = len(story.counts)
    story.remove(members[0][0].key)
    story.add(*members[2])
    assert len(story.counts) <= used + len(set(members[2][0].terms) - set(members[0][0].terms))
    assert_mass(story, [share(*members[1]), share(*members[2])])


def test_a_member_without_a_share_counts_its_terms_only() -> None:
    feats, norm = member(0)
    bare, _ = member(1)
    story = StoryState("s")
    story.add(bare)
    story.add(feats, norm)
    assert all(story.count(t) >= 1 for t in bare.terms)
    assert_mass(story, [share(feats, norm)])
    assert story.norm_of(bare.key) == 0.0
    story.remove(bare.key)
    assert_mass(story, [share(feats, norm)])


def test_a_term_keeps_its_id_while_counted_or_held_and_frees_it_after() -> None:
    index = TermIndex()
    unseen = index.idf("ankara")
    index.link("s1", ["ankara"])  # a story holds it before it is counted (a moved member)
    index.observe(["ankara", "talks"])
    assert index.terms == 2 and index.df_of("ankara") == 1
    index.forget(["ankara", "talks"])
    assert index.terms == 1  # "talks" is gone; "ankara" is still held by s1
    index.observe(["other"])
    never = TermIndex()
    never.observe(["other"])
    assert index.idf("ankara") == never.idf("ankara") != unseen  # as if never counted
    index.forget(["other"])
    index.unlink("s1", ["ankara"])
    assert index.terms == 0 and index.candidates({"ankara": 1.0}) == []
    index.observe(["putin"])
    assert index._ids["putin"] in (0, 1)  # a freed id is reused
    assert len(index._df) == 2


@pytest.mark.parametrize("stories", [5, 80])
def test_ids_and_postings_follow_a_random_stream_of_terms(stories: int) -> None:
    """With 80 stories, posting lists grow past POSTING_LIST_MAX and shrink back; a story
    is linked only to terms it does not hold (the matcher links the terms new to a story)."""
    rng = random.Random(stories)
    index = TermIndex()
    counted: dict[str, int] = {}
    held: dict[str, dict[str, None]] = {}  # the stories in the order they came
    longest = 0
    for _ in range(6_000):
        term, story = f"t{rng.randrange(12)}", f"s{rng.randrange(stories)}"
        action = rng.randrange(4)
        if action == 0:
            index.observe([term])
            counted[term] = counted.get(term, 0) + 1
        elif action == 1 and counted.get(term):
            index.forget([term])
            counted[term] -= 1
        elif action == 2 and story not in held.get(term, {}):
            index.link(story, [term])
            held.setdefault(term, {})[story] = None
        elif held.get(term):
            index.unlink(story, [term])
            held[term].pop(story, None)
        alive = {t for t, n in counted.items() if n} | {t for t, s in held.items() if s}
        assert index.terms == len(alive)
        assert index.df_of(term) == counted.get(term, 0)
        # One term: every holder scores the same, so ties keep the order they came in.
        assert index.candidates({term: 1.0}, 100) == list(held.get(term, {}))
        longest = max(longest, len(held.get(term, {})))
    assert len(index._df) <= 12
    assert (longest > POSTING_LIST_MAX) == (stories > POSTING_LIST_MAX)
    for term, holders in held.items():
        for story in list(holders):
            index.unlink(story, [term])
    assert index.candidates({f"t{n}": 1.0 for n in range(12)}, 100) == []
    assert all(posting is None for posting in index._postings)


def test_unlinking_finds_a_story_by_its_copy_of_the_id_or_else_by_value() -> None:
    index = TermIndex()
    ids = [f"story{n}" for n in range(POSTING_LIST_MAX + 8)]
    for story_id in ids:
        index.link(story_id, ["common"])
    index.unlink(ids[5], ["common"])  # the copy it was linked under
    index.unlink("".join(["story", "7"]), ["common"])  # an equal string, another object
    index.unlink("story-absent", ["common"])
    left = [s for s in ids if s not in ("story5", "story7")]
    assert index.candidates({"common": 1.0}, 100) == left


def test_names_and_figures_are_counted_only_while_a_member_has_them() -> None:
    plain = feats_of(1, "markets slide as prices rise again")
    rich = feats_of(2, "Turkey inflation hits 85% as Erdogan meets Putin in Ankara")
    assert rich.numbers and rich.entities and not plain.numbers and not plain.entities
    story = StoryState("s")
    story.add(plain)
    assert story.figures() is None and not story.names(rich.entities[0])
    story.add(rich)
    assert story.kept_numbers == Counter(rich.numbers) and story.names(rich.entities[0])
    assert story.kept_kinds == Counter(f.partition(":")[0] for f in rich.numbers)
    assert story.kept_entities == Counter(rich.entities)
    assert story.figures() == (story.kept_numbers, story.kept_kinds)
    assert story.holds(url_key=rich.url_key) and story.holds(url_key=plain.url_key)
    assert not story.holds(url_key=text_key("https://elsewhere.example/")) and not story.holds()
    story.remove(rich.key)
    assert story.kept_entities is None and story.kept_numbers is None
    assert story.kept_kinds is None and story.figures() is None
    assert not story.names(rich.entities[0]) and not story.holds(url_key=rich.url_key)


def test_indexed_entries_share_one_copy_of_each_term() -> None:
    """Features come from parse workers through a pipe, each with its own copies of the term
    strings; the index keeps the first copy and gives it to every later entry."""
    matcher = Matcher()
    first = pickle.loads(pickle.dumps(feats_of(1, "Putin and Erdogan meet in Ankara")))
    second = pickle.loads(pickle.dumps(feats_of(2, "Erdogan hosts Putin in Ankara talks")))
    assert not any(a is b for a in first.terms for b in second.terms)
    matcher.assign_features(first)
    matcher.assign_features(second)
    kept = {
        key: feats.terms
        for story in matcher.stories.values()
        for key, feats in story.members.items()
    }
    one, two = kept[first.key], kept[second.key]
    common = set(one) & set(two)
    assert {"putin", "erdogan", "ankara"} <= common
    for term in common:
        assert one[one.index(term)] is two[two.index(term)], term


def test_a_one_member_story_reads_its_figures_from_its_member() -> None:
    rich = feats_of(2, "Turkey inflation hits 85% as Erdogan meets Putin in Ankara")
    norm = 3.5
    story = StoryState("s")
    assert story.add(rich, norm) == list(rich.terms)
    assert story.kept_counts is None and story.kept_mass is None and story.free is None
    assert story.slots == {term: i for i, term in enumerate(rich.terms)}
    assert list(story.counts) == [1] * len(rich.terms)
    assert [story.mass_at(i) for i in range(len(rich.terms))] == shares(rich, norm)
    assert story.mass_dict() == share(rich, norm)
    assert all(story.count(t) == 1 and story.mass_of(t) == share(rich, norm)[t] for t in rich.terms)
    assert story.count("absent") == 0 and story.mass_of("absent") == 0.0
    assert all(story.names(name) for name in rich.entities) and not story.names("absent")
    assert story.figures() == (rich.numbers, [f.partition(":")[0] for f in rich.numbers])
    assert story.newest == rich.published
    assert story.remove(rich.key) == list(rich.terms)
    assert story.slots == {} and story.mass_dict() == {} and story.newest is None
    assert story.figures() is None and not story.names(rich.entities[0])


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_the_aggregate_built_at_the_second_member_is_the_one_kept_member_by_member(
    order: tuple[int, ...],
) -> None:
    """Built when a second member joins, the aggregate holds what adding each member to it
    gives, and it is kept when the story is down to one member again."""
    members = [member(n) for n in order]
    story = StoryState("s")
    fresh = [story.add(*m) for m in members]
    assert story.kept_counts is not None
    seen: set[str] = set()
    for (feats, _), new in zip(members, fresh, strict=True):
        assert new == [t for t in feats.terms if t not in seen]
        seen.update(feats.terms)
    assert list(story.slots) == list(dict.fromkeys(t for f, _ in members for t in f.terms))
    for feats, norm in members:
        share_of = share(feats, norm)
        assert all(story.mass_of(t) >= share_of[t] for t in feats.terms)
    assert_mass(story, [share(*m) for m in members])
    for feats, _ in members[1:]:
        story.remove(feats.key)
    assert story.kept_counts is not None and story.size == 1
    assert_mass(story, [share(*members[0])])


def test_a_story_keeps_its_cached_values_until_it_grows_past_the_refresh_factor() -> None:
    """StoryCache keeps each value on the story with the size it was computed at: read back
    while the story is under NORM_REFRESH times that size, computed again past it (or once
    it shrank), and a story made anew under the same id starts with nothing cached."""
    index = TermIndex()
    cache = StoryCache(index)
    members = [feats_of(n, f"Erdogan hosts Putin in Ankara talks day {n}") for n in range(10)]
    for feats in members:
        index.observe(feats.all_terms)
    story = StoryState("s")
    assert story.norm_size == 0 and story.tops is None and story.cohesion_size == 0
    computed_at = []
    for feats in members:
        story.add(feats, 1.0)
        norm, tops, value = cache.norm(story), cache.top_terms(story), cache.cohesion(story)
        assert story.norm_size == story.tops_size == story.cohesion_size
        if story.norm_size == story.size:
            computed_at.append(story.size)
            assert norm == index.centroid_norm(story) and tops and value > 0.0
        else:  # the value of the size it was computed at
            assert story.size < story.norm_size * NORM_REFRESH
            assert norm == story.norm_value and tops is story.tops
    assert computed_at == [1, 2, 3, 4, 5, 6, 7, 9]  # 8 < 7 * 1.15, 10 < 9 * 1.15
    story.remove(members[-1].key)
    story.remove(members[-2].key)  # 8, below the size computed at: computed again
    assert cache.norm(story) == index.centroid_norm(story) and story.norm_size == 8
    assert StoryState("s").norm_size == 0
