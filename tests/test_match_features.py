"""The matcher's bounded per-entry work: summary terms, the fuzzy text, pruning and expiry."""

from __future__ import annotations

import dataclasses
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rapidfuzz import fuzz

from aggregator.match import Matcher
from aggregator.match.matcher import HEAP_COMPACT_MIN, HEAP_PAIRS_PER_STORY
from aggregator.match.score import MatchConfig, prepare, score, score_above, story_norm
from aggregator.match.story import StoryState
from aggregator.match.text import (
    KEY_BITS,
    SUMMARY_LEAD_CHARS,
    SUMMARY_TERMS,
    WIRE_TEXT_MIN_CHARS,
    features,
    lead,
    text_key,
)
from aggregator.types import Entry

# The benchmarks package lives at the repository root, which pytest does not put on sys.path.
REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.data import cluster_scores  # noqa: E402
from benchmarks.match_realistic import entries as feedgen_entries  # noqa: E402

WHEN = datetime(2017, 9, 28, 17, 0, tzinfo=UTC)


def entry(feed: str, entry_id: str, title: str, summary: str = "", when: datetime = WHEN) -> Entry:
    return Entry(
        feed_url=f"https://{feed}/rss",
        entry_id=entry_id,
        title=title,
        summary=summary,
        url=None,
        link=None,
        published=when,
        updated=None,
        first_seen=when,
        content_hash=f"{feed}:{entry_id}",
    )


def test_summary_keeps_its_rarest_terms_only() -> None:
    common = (
        "people government year time world country city week state group money school "
        "family market health water power music story party "
    )
    summary = f"{common} Plosser Tbilisi Gazprom"
    feats = features(entry("a.com", "1", "Talks resume", summary))
    assert len(feats.summary_terms) == SUMMARY_TERMS
    assert {"plosser", "tbilisi", "gazprom"} <= set(feats.summary_terms)
    short = features(entry("a.com", "2", "Talks resume", "Plosser visits Tbilisi"))
    assert set(short.summary_terms) == {"plosser", "visit", "tbilisi"}


def test_links_and_wire_copies_are_kept_as_small_keys() -> None:
    """The features keep a KEY_BITS digest of the link and of a long summary, not the texts:
    the same text gives the same key in every process, a different one another key, and
    each key is an int of at most 32 bytes."""
    wire = "Turkish and Russian leaders met in Ankara to discuss Syria and gas deals. " * 3
    assert len(wire) >= WIRE_TEXT_MIN_CHARS
    plain = entry("a.com", "1", "Erdogan hosts Putin", wire)
    linked = dataclasses.replace(plain, url="https://a.com/news/1")
    feats = features(linked)
    assert feats.url_key == text_key("https://a.com/news/1") != text_key("https://a.com/news/2")
    assert features(plain).url_key is None  # no link, no key
    assert feats.wire_key is not None and feats.wire_key == features(plain).wire_key
    assert features(entry("a.com", "2", "Erdogan hosts Putin", "Short.")).wire_key is None
    for key in (feats.url_key, feats.wire_key):
        assert 0 <= key < 2**KEY_BITS and sys.getsizeof(key) <= 32
    # Fixed by the digest, not by the process's string hashes.
    assert text_key("https://a.com/news/1") == 0x7EEF5DFED2A2052


def test_lead_cuts_long_summaries_at_a_space() -> None:
    text = "word " * 300
    cut = lead(text)
    assert len(cut) <= SUMMARY_LEAD_CHARS
    assert text.startswith(cut) and cut.endswith("word")
    assert lead("short summary") == "short summary"
    assert lead("x" * 50, limit=10) == "x" * 10


def test_fuzzy_text_gives_token_sort_ratio() -> None:
    a = entry("a.com", "1", "Putin, Erdogan agree to step up Syria cooperation at Ankara talks")
    b = entry("b.com", "2", "Turkey's Erdogan, Russia's Putin agree to boost Syria cooperation")
    fa, fb = features(a), features(b)
    plain_a = "putin erdogan agree to step up syria cooperation at ankara talks"
    plain_b = "turkey erdogan russia putin agree to boost syria cooperation"
    assert fuzz.ratio(fa.fuzzy_text, fb.fuzzy_text) == fuzz.token_sort_ratio(plain_a, plain_b)


def test_pruned_candidates_could_not_have_scored_above_the_floor() -> None:
    matcher = Matcher()
    a = features(entry("a.com", "1", "Apple unveils new iPhone with facial recognition"))
    b = features(entry("b.com", "2", "Apple's new iPhone adds facial recognition"))
    story = StoryState("s")
    story.add(b)
    idf = matcher.index.idf
    query = prepare(a, idf)
    norm = story_norm(story, idf)
    df = matcher.index.df_of
    config = MatchConfig()
    full = score(a, query, story, norm, df, config)
    assert score_above(a, query, story, norm, df, config, full.score - 0.01) == full
    # A perfect fuzzy match could add at most w_fuzzy * (1 - fuzzy) to the score.
    ceiling = full.score + config.w_fuzzy * (1 - full.fuzzy) * full.time_factor
    assert score_above(a, query, story, norm, df, config, ceiling + 1e-9) is None


def test_story_expires_on_its_newest_member_after_that_member_leaves() -> None:
    matcher = Matcher(window=timedelta(hours=48))
    first = matcher.assign(entry("a.com", "1", "Apple unveils new iPhone X", when=WHEN))
    later = entry("b.com", "2", "Apple unveils the new iPhone X", when=WHEN + timedelta(hours=30))
    assert matcher.assign(later).story_id == first.story_id
    matcher.expire(WHEN + timedelta(hours=49))
    assert first.story_id in matcher.stories
    matcher.forbid(later.key, first.story_id)
    matcher.expire(WHEN + timedelta(hours=49))
    assert first.story_id not in matcher.stories


def test_feedgen_outlets_telling_one_story_are_grouped() -> None:
    stream, truth = feedgen_entries(8)
    matcher = Matcher()
    ids = [matcher.assign(e).story_id for e in stream]
    folded = {m.other: m.into for m in matcher.take_merges()}
    final = [folded.get(s, s) for s in ids]
    scores = cluster_scores(truth, final)
    assert scores.b3_precision >= 0.95
    assert scores.b3_recall >= 0.95


def test_the_expiry_heap_drops_stale_pairs_and_expires_the_same_stories() -> None:
    """Each time a story's newest time moves, a pair is queued for its expiry and the older
    one goes stale: past HEAP_PAIRS_PER_STORY pairs a story the stale ones are dropped, and
    expiry still takes exactly the stories whose newest member left the window."""
    matcher = Matcher(window=timedelta(hours=48))
    rounds, stories = 6, 400
    for r in range(rounds):
        for s in range(stories):
            when = WHEN + timedelta(minutes=r * 500 + s)
            news = entry(f"o{r}.com", str(s), f"story {s} told again round {r}", when=when)
            matcher.add_known(news, f"s{s:04d}")
    assert len(matcher.stories) == stories
    assert len(matcher._by_newest) <= max(HEAP_COMPACT_MIN, HEAP_PAIRS_PER_STORY * stories) + 1
    newest = {story_id: story.newest for story_id, story in matcher.stories.items()}
    for hours in (60, 70, 80, 200):
        now = WHEN + timedelta(hours=hours)
        matcher.expire(now)
        horizon = now - timedelta(hours=48)
        assert set(matcher.stories) == {
            s for s, n in newest.items() if n is not None and n >= horizon
        }
