"""Named cases for the story matcher: what must merge, what must stay apart."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from aggregator.match import MatchConfig, Matcher
from aggregator.match.link import anchors_agree, average_link, figures_conflict
from aggregator.match.matcher import ALIAS_PRUNE_MIN
from aggregator.match.prior import prior_idf
from aggregator.match.semantic import (
    CachedEmbedder,
    SemanticUnavailable,
    load_minilm,
)
from aggregator.match.text import entities, numbers, terms
from aggregator.types import Entry
from tests.factories import make_entry


def entry(
    feed: str,
    entry_id: str,
    title: str,
    when: datetime,
    summary: str = "",
    url: str | None = None,
) -> Entry:
    return make_entry(
        f"https://{feed}/rss",
        entry_id,
        title,
        published=when,
        content_hash=f"{feed}:{entry_id}:{title}",
        summary=summary,
        url=url,
        link=url,
    )


ANKARA = datetime(2017, 9, 28, 17, 0, tzinfo=UTC)
PHONE_CALL = datetime(2017, 9, 25, 15, 0, tzinfo=UTC)
ASTANA = datetime(2017, 9, 15, 12, 0, tzinfo=UTC)

ANKARA_REPORTS = [
    entry(
        "afp.com",
        "afp-1",
        "Putin, Erdogan agree to step up Syria cooperation at Ankara talks",
        ANKARA,
        "Russian President Vladimir Putin and Turkish counterpart Recep Tayyip Erdogan agreed on "
        "Thursday in Ankara to step up efforts to end the war in Syria and to make the Idlib "
        "de-escalation zone work.",
    ),
    entry(
        "reuters.com",
        "reuters-1",
        "Turkey's Erdogan, Russia's Putin agree to strengthen cooperation on Syria",
        ANKARA + timedelta(minutes=25),
        "Turkish President Tayyip Erdogan and Russian President Vladimir Putin agreed on Thursday "
        "to strengthen cooperation to end the war in Syria, Erdogan told a news conference after "
        "their talks in Ankara.",
    ),
    entry(
        "tass.com",
        "tass-1",
        "Putin and Erdogan hold talks in Ankara, discuss Syrian settlement",
        ANKARA + timedelta(minutes=40),
        "Russian President Vladimir Putin and Turkish President Recep Tayyip Erdogan held talks "
        "in Ankara on Thursday, focusing on the Syrian settlement and bilateral cooperation.",
    ),
    entry(
        "apnews.com",
        "ap-1",
        "Putin, Erdogan say Russia and Turkey will work together to end Syria war",
        ANKARA + timedelta(hours=1),
        "Russian President Vladimir Putin and Turkish President Recep Tayyip Erdogan said after "
        "talks in Ankara on Thursday that their countries will deepen cooperation to end the "
        "war in Syria.",
    ),
    entry(
        "rferl.org",
        "rferl-1",
        "Putin, Erdogan Pledge To Closely Cooperate On Syria",
        ANKARA + timedelta(hours=2),
        "Russian President Vladimir Putin and Turkish President Recep Tayyip Erdogan have pledged "
        "to cooperate closely to end the conflict in Syria, after talks in Ankara.",
    ),
]

PHONE_CALL_REPORTS = [
    entry(
        "reuters.com",
        "reuters-0",
        "Putin, Erdogan discuss Kurdish independence referendum in phone call",
        PHONE_CALL,
        "Russian President Vladimir Putin and Turkish President Tayyip Erdogan discussed the "
        "independence referendum held by Iraq's Kurds in a telephone call on Monday, the Kremlin "
        "said.",
    ),
    entry(
        "tass.com",
        "tass-0",
        "Putin, Erdogan talk by phone about referendum in Iraqi Kurdistan",
        PHONE_CALL + timedelta(minutes=30),
        "Vladimir Putin and Recep Tayyip Erdogan had a telephone conversation on Monday and "
        "exchanged views on the referendum on independence of Iraqi Kurdistan.",
    ),
]

ASTANA_REPORTS = [
    entry(
        "afp.com",
        "afp-0",
        "Russia, Iran, Turkey agree on Idlib de-escalation zone at Astana talks",
        ASTANA,
        "Russia, Iran and Turkey agreed in Astana on Friday to jointly deploy monitors to a "
        "de-escalation zone in Syria's Idlib province.",
    ),
    entry(
        "apnews.com",
        "ap-0",
        "Astana talks: Russia, Turkey and Iran finalise Idlib safe zone deal",
        ASTANA + timedelta(hours=1),
        "The three sponsors of the Syria talks in Kazakhstan's capital finalised the boundaries "
        "of the fourth de-escalation zone, covering Idlib province.",
    ),
]


def assign_all(matcher: Matcher, entries: list[Entry]) -> list[str]:
    return [matcher.assign(e).story_id for e in entries]


def test_ankara_press_conference_merges_across_outlets() -> None:
    matcher = Matcher()
    ids = assign_all(matcher, ANKARA_REPORTS)
    assert len(set(ids)) == 1


def test_story_keeps_its_id_as_sources_join() -> None:
    matcher = Matcher()
    first = matcher.assign(ANKARA_REPORTS[0])
    assert first.new_story
    for report in ANKARA_REPORTS[1:]:
        later = matcher.assign(report)
        assert not later.new_story
        assert later.story_id == first.story_id


def test_phone_call_about_kurdish_referendum_is_not_the_ankara_talks() -> None:
    # A week-long window so that the earlier stories are candidates: content must decide.
    matcher = Matcher(window=timedelta(days=7))
    call = assign_all(matcher, PHONE_CALL_REPORTS)
    talks = assign_all(matcher, ANKARA_REPORTS)
    assert len(set(call)) == 1
    assert len(set(talks)) == 1
    assert call[0] != talks[0]


def test_astana_idlib_agreement_is_not_the_ankara_talks() -> None:
    matcher = Matcher(window=timedelta(days=30))
    astana = assign_all(matcher, ASTANA_REPORTS)
    talks = assign_all(matcher, ANKARA_REPORTS)
    assert len(set(astana)) == 1
    assert len(set(talks)) == 1
    assert astana[0] != talks[0]


def test_all_three_stories_in_one_window_stay_apart() -> None:
    matcher = Matcher(window=timedelta(days=30))
    ids = assign_all(matcher, ASTANA_REPORTS + PHONE_CALL_REPORTS + ANKARA_REPORTS)
    assert len(set(ids)) == 3


def test_same_canonical_url_joins() -> None:
    matcher = Matcher()
    url = "https://example.org/2017/09/28/putin-erdogan"
    a = matcher.assign(entry("a.com", "1", "Putin in Ankara", ANKARA, url=url))
    b = matcher.assign(entry("b.com", "2", "Kremlin leader visits Turkey", ANKARA, url=url))
    assert b.story_id == a.story_id
    assert b.evidence["rule"] == "same_url"


def test_identical_wire_text_joins() -> None:
    matcher = Matcher()
    wire = ANKARA_REPORTS[1].summary + " The two leaders also discussed energy projects."
    a = matcher.assign(entry("a.com", "1", "Erdogan hosts Putin", ANKARA, wire))
    b = matcher.assign(entry("b.com", "2", "Leaders meet in Turkish capital", ANKARA, wire))
    assert b.story_id == a.story_id
    assert b.evidence["rule"] == "same_wire_text"


def test_different_figures_keep_apart() -> None:
    matcher = Matcher()
    a = matcher.assign(entry("a.com", "1", "Poll: 92% of Germans back coal exit by 2030", ANKARA))
    b = matcher.assign(entry("b.com", "2", "Poll: 72% of Germans back coal exit by 2030", ANKARA))
    assert a.story_id != b.story_id
    assert b.evidence.get("number_conflict") is True


def test_unrelated_stories_stay_apart() -> None:
    matcher = Matcher()
    ids = assign_all(
        matcher,
        [
            ANKARA_REPORTS[0],
            entry("x.com", "1", "Apple unveils new iPhone with facial recognition", ANKARA),
            entry("y.com", "2", "Bayern Munich sack coach Carlo Ancelotti", ANKARA),
            entry("z.com", "3", "Hurricane Maria leaves Puerto Rico without power", ANKARA),
        ],
    )
    assert len(set(ids)) == 4


def test_same_key_never_joins_its_own_story_twice() -> None:
    matcher = Matcher()
    first = matcher.assign(ANKARA_REPORTS[0])
    again = matcher.assign(ANKARA_REPORTS[0])
    assert again.story_id != first.story_id


def test_two_entries_of_one_feed_may_share_a_story() -> None:
    matcher = Matcher()
    first = matcher.assign(ANKARA_REPORTS[1])
    update = entry(
        "reuters.com",
        "reuters-2",
        "UPDATE 1-Turkey's Erdogan, Russia's Putin agree to strengthen cooperation on Syria",
        ANKARA + timedelta(hours=2),
        ANKARA_REPORTS[1].summary,
    )
    assert matcher.assign(update).story_id == first.story_id


def test_forbid_takes_entry_out_and_keeps_it_out() -> None:
    matcher = Matcher()
    story = matcher.assign(ANKARA_REPORTS[0]).story_id
    matcher.assign(ANKARA_REPORTS[1])
    matcher.forbid(ANKARA_REPORTS[1].key, story)
    assert matcher.story_of(ANKARA_REPORTS[1].key) is None
    assert matcher.assign(ANKARA_REPORTS[1]).story_id != story


def test_merge_folds_other_story_into_target() -> None:
    matcher = Matcher()
    a = matcher.assign(ANKARA_REPORTS[0]).story_id
    b = matcher.assign(entry("x.com", "1", "Apple unveils new iPhone", ANKARA)).story_id
    assert a != b
    matcher.merge(a, b)
    assert matcher.story_of(("https://x.com/rss", "1")) == a
    joined = matcher.assign(entry("y.com", "2", "Apple unveils new iPhone X", ANKARA))
    assert joined.story_id == a
    matcher.add_known(entry("z.com", "3", "Old iPhone report", ANKARA), b)
    assert matcher.story_of(("https://z.com/rss", "3")) == a


def test_add_known_rebuilds_index() -> None:
    matcher = Matcher()
    matcher.add_known(ANKARA_REPORTS[0], "stored-story")
    assert matcher.assign(ANKARA_REPORTS[1]).story_id == "stored-story"


def test_update_entry_replaces_features() -> None:
    matcher = Matcher()
    story = matcher.assign(ANKARA_REPORTS[0]).story_id
    edited = entry("afp.com", "afp-1", "Apple unveils new iPhone with facial recognition", ANKARA)
    matcher.update_entry(edited)
    assert matcher.story_of(edited.key) == story
    follow = matcher.assign(entry("x.com", "1", "Apple unveils iPhone with face unlock", ANKARA))
    assert follow.story_id == story


def test_stories_expire_outside_the_window() -> None:
    matcher = Matcher(window=timedelta(hours=48))
    old = matcher.assign(ANKARA_REPORTS[0]).story_id
    matcher.expire(ANKARA + timedelta(hours=49))
    assert old not in matcher.stories
    later = replace_time(ANKARA_REPORTS[1], ANKARA + timedelta(hours=50))
    assert matcher.assign(later).story_id != old


def test_entry_outside_window_does_not_join_without_expire() -> None:
    matcher = Matcher(window=timedelta(hours=48))
    old = matcher.assign(ANKARA_REPORTS[0]).story_id
    later = replace_time(ANKARA_REPORTS[1], ANKARA + timedelta(days=5))
    assert matcher.assign(later).story_id != old


TOPICS = (
    "Apple unveils new iPhone at Cupertino event",
    "Storm floods coastal towns in southern Brazil",
    "Central bank raises interest rates by half a point",
    "Chess champion wins world title in Dubai",
)


def test_a_full_index_drops_the_stories_updated_longest_ago() -> None:
    matcher = Matcher(window=timedelta(days=30), max_entries=3)
    apple, storm, bank, chess = (
        matcher.assign(entry("a.com", f"a{n}", title, ANKARA + timedelta(hours=n))).story_id
        for n, title in enumerate(TOPICS)
    )
    # Four entries for a bound of three: the story updated longest ago (Apple) left.
    assert matcher.entries == 3
    assert set(matcher.stories) == {storm, bank, chess}
    # The storm takes a new report: it is now the story updated last but one...
    update = entry("b.com", "b1", "Storm floods coastal towns across southern Brazil", ANKARA)
    joined = matcher.assign(replace_time(update, ANKARA + timedelta(hours=4)))
    assert joined.story_id == storm and not joined.new_story
    # ...so the central bank, not the storm, made room for it.
    assert set(matcher.stories) == {storm, chess}
    assert matcher.entries == 3
    # A late report of the dropped story starts a story of its own, as after expiry.
    late = matcher.assign(entry("b.com", "b2", TOPICS[0], ANKARA + timedelta(hours=5)))
    assert late.new_story and late.story_id != apple
    assert set(matcher.stories) == {storm, late.story_id}


def test_an_index_emptied_by_expiry_and_by_its_bound_holds_nothing_more() -> None:
    reports = [*ANKARA_REPORTS, *PHONE_CALL_REPORTS, *ASTANA_REPORTS]
    for matcher in (
        Matcher(window=timedelta(days=30)),
        Matcher(window=timedelta(days=30), max_entries=2),
    ):
        for report in reports:
            matcher.assign(report)
        matcher.expire(ANKARA + timedelta(days=31))
        assert matcher.stories == {} and matcher.entries == 0
        index = matcher.index
        assert index.terms == 0 and index.docs == 0
        assert matcher._urls == {} and matcher._wires == {}
        # A later report starts afresh.
        late = matcher.assign(replace_time(ANKARA_REPORTS[0], ANKARA + timedelta(days=32)))
        assert late.new_story


def test_the_entry_bound_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_entries must be positive"):
        Matcher(max_entries=0)


def replace_time(e: Entry, when: datetime) -> Entry:
    return entry(e.feed_url.split("/")[2], e.entry_id, e.title, when, e.summary, e.url)


def test_evidence_explains_the_join_and_is_json() -> None:
    matcher = Matcher()
    matcher.assign(ANKARA_REPORTS[0])
    joined = matcher.assign(ANKARA_REPORTS[1])
    evidence = json.loads(json.dumps(joined.evidence))
    assert evidence["rule"] == "score"
    assert {"cosine", "coverage", "fuzzy", "shared_terms"} <= set(evidence)
    assert {"putin", "erdogan"} & set(evidence["shared_terms"])


def test_pair_score_orders_same_above_different() -> None:
    matcher = Matcher()
    matcher.learn_terms(ANKARA_REPORTS + PHONE_CALL_REPORTS + ASTANA_REPORTS)
    same = matcher.pair_score(ANKARA_REPORTS[0], ANKARA_REPORTS[4])
    other = matcher.pair_score(ANKARA_REPORTS[0], PHONE_CALL_REPORTS[0])
    assert same > other


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("92% back it", {"%:92"}),
        ("$5 billion deal", {"$:5"}),
        ("Turnout 72 percent in 2017", {"%:72", "n:2017"}),
    ],
)
def test_numbers_are_tagged_with_kind(text: str, expected: set[str]) -> None:
    assert numbers(text) == expected


def test_text_features() -> None:
    assert "erdogan" in terms("Erdoğan's talks")
    assert "talk" in terms("Erdoğan's talks")
    assert entities("Talks held by Putin and NATO in Ankara") == {"putin", "nato", "ankara"}


def test_no_story_merges_between_the_three_syria_stories() -> None:
    matcher = Matcher(window=timedelta(days=30))
    assign_all(matcher, ASTANA_REPORTS + PHONE_CALL_REPORTS + ANKARA_REPORTS)
    assert matcher.take_merges() == []


def test_alike_stories_merge_into_the_older_and_the_merge_is_reported() -> None:
    # Two stored stories about the same talks (as a rebuild from storage may hold them).
    matcher = Matcher()
    matcher.add_known(ANKARA_REPORTS[0], "story-old")
    matcher.add_known(ANKARA_REPORTS[2], "story-old")
    matcher.add_known(ANKARA_REPORTS[1], "story-new")
    joined = matcher.assign(ANKARA_REPORTS[3])
    merges = matcher.take_merges()
    assert [(m.into, m.other) for m in merges] == [("story-old", "story-new")]
    assert merges[0].evidence["rule"] == "average_link"
    assert merges[0].score >= MatchConfig().link_threshold
    assert json.loads(json.dumps(merges[0].evidence))["link_terms"]
    assert matcher.story_of(ANKARA_REPORTS[1].key) == "story-old"
    assert joined.story_id in {"story-old", "story-new"}
    assert matcher.take_merges() == []
    matcher.add_known(ANKARA_REPORTS[4], "story-new")
    assert matcher.story_of(ANKARA_REPORTS[4].key) == "story-old"


def test_stories_with_different_figures_do_not_merge() -> None:
    matcher = Matcher()
    matcher.add_known(entry("a.com", "1", "Poll: 92% of Germans back coal exit", ANKARA), "a")
    matcher.add_known(entry("b.com", "2", "Poll: 72% of Germans back coal exit", ANKARA), "b")
    matcher.assign(entry("c.com", "3", "Poll: 92% of Germans back a coal exit", ANKARA))
    assert matcher.take_merges() == []
    assert matcher.story_of(("https://b.com/rss", "2")) == "b"


def test_forbidden_entry_blocks_a_story_merge() -> None:
    matcher = Matcher()
    matcher.add_known(ANKARA_REPORTS[0], "story-old")
    matcher.add_known(ANKARA_REPORTS[2], "story-old")
    matcher.add_known(ANKARA_REPORTS[1], "story-new")
    matcher.forbid(ANKARA_REPORTS[1].key, "story-old")
    matcher.add_known(ANKARA_REPORTS[1], "story-new")
    matcher.assign(ANKARA_REPORTS[3])
    assert matcher.take_merges() == []


def test_average_link_and_anchors() -> None:
    # Every member names its firm; some mention the bankruptcy filing.
    idf = {"sbarro": 9.0, "pizza": 7.0, "gox": 9.0, "bitcoin": 7.0, "bankruptcy": 5.0}.__getitem__
    a = {"sbarro": 0.1, "pizza": 0.06, "bankruptcy": 0.05}
    b = {"gox": 0.1, "bitcoin": 0.06, "bankruptcy": 0.05}
    same, _ = average_link(a, 1, a, 1, idf)
    other, terms = average_link(a, 1, b, 1, idf)
    assert same > other > 0
    assert terms[0] == "bankruptcy"
    assert anchors_agree(a, a, idf)
    assert not anchors_agree(a, b, idf)
    assert figures_conflict({"%:92"}, {"%:72": 1})
    assert not figures_conflict({"%:92", "n:2014"}, {"%:92": 1, "n:2013": 1})


def test_prior_weighs_rare_names_above_common_words() -> None:
    assert (prior_idf("plosser") or 0) > (prior_idf("bankruptcy") or 0) > (prior_idf("says") or 0)
    assert prior_idf("2014") is None


def _topic_embedder(texts: Sequence[str]) -> list[list[float]]:
    """A stand-in sentence encoder: headlines naming Putin or the Kremlin point one way."""
    return [[1.0, 0.0] if ("Putin" in t or "Kremlin" in t) else [0.0, 1.0] for t in texts]


def test_semantic_signal_joins_what_words_alone_do_not() -> None:
    paraphrase = entry(
        "x.com", "1", "Kremlin chief, Turkish leader pledge closer cooperation", ANKARA
    )
    plain = Matcher()
    base = plain.assign(ANKARA_REPORTS[4]).story_id
    assert plain.assign(paraphrase).story_id != base
    semantic = Matcher(embedder=_topic_embedder)
    story = semantic.assign(ANKARA_REPORTS[4]).story_id
    joined = semantic.assign(paraphrase)
    assert joined.story_id == story
    semantic.forbid(paraphrase.key, story)
    assert semantic.assign(paraphrase).story_id != story


def test_cached_embedder_encodes_each_text_once() -> None:
    calls: list[int] = []

    def embed(texts: Sequence[str]) -> list[list[float]]:
        calls.append(len(texts))
        return [[float(len(t))] for t in texts]

    cached = CachedEmbedder(embed)
    cached.prime(["a", "bb", "a"])
    assert cached(["bb", "a"]).tolist() == [[2.0], [1.0]]
    assert calls == [2]


def test_missing_semantic_extra_is_reported() -> None:
    if importlib.util.find_spec("sentence_transformers") is not None:
        pytest.skip("the semantic extra is installed here")
    with pytest.raises(SemanticUnavailable):
        load_minilm()


def test_aliases_of_stories_gone_from_the_index_are_pruned() -> None:
    """Each merge leaves an alias behind; once its story has left the window the alias is
    forgotten, so a long-running index does not keep one per merge for good."""
    matcher = Matcher(window=timedelta(hours=48))
    merges = ALIAS_PRUNE_MIN + 10
    for i in range(merges):
        when = ANKARA + timedelta(seconds=i)
        matcher.add_known(entry("a.com", f"a{i}", f"Report number {i} on topic", when), f"a{i}")
        matcher.add_known(entry("b.com", f"b{i}", f"Other report {i} on topic", when), f"b{i}")
        matcher.merge(f"a{i}", f"b{i}")
    live = entry("c.com", "live", "Fresh report", ANKARA + timedelta(days=3))
    matcher.add_known(live, "c")
    matcher.merge("c", "d")  # an alias whose story is still in the window
    matcher.expire(ANKARA + timedelta(days=3))
    assert matcher.entries == 1
    assert matcher._alias == {"d": "c"}
    # Still followed: an entry stored under the merged-away id joins the surviving story.
    matcher.add_known(entry("d.com", "late", "Late report", ANKARA + timedelta(days=3)), "d")
    assert matcher.story_of(("https://d.com/rss", "late")) == "c"
    # Below the bound, nothing is pruned: a few aliases cost less than a pass over them.
    matcher.merge("c", "e")
    matcher.expire(ANKARA + timedelta(days=3))
    assert set(matcher._alias) == {"d", "e"}
