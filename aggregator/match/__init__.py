"""Story matching: decide which story a new entry tells, or start a new one.

Design (written down here; thresholds and their measurements live beside each constant):

Candidates. Each entry is reduced once to features (``text.py``): stemmed informative title
terms, the ``SUMMARY_TERMS`` rarest terms of the summary's lead (its first
``SUMMARY_LEAD_CHARS``), named-entity-like tokens, numbers tagged with their kind, canonical
URL and a hash of long summaries (wire copy). The work per entry is thus bounded however long
its summary. Each story keeps the aggregate of its members (``story.py``). An inverted
index (``index.py``) maps each term to the stories holding it; only
stories inside the window are indexed, only the ``QUERY_TERMS`` heaviest terms of an entry are
looked up, and posting lists longer than ``POSTING_CAP`` are skipped, so finding candidates
costs a few short posting lists whatever the number of stories. The best ``MAX_CANDIDATES`` by
shared IDF weight are scored in full, best first; a candidate whose score could not beat the
best so far even with a perfect fuzzy title match is not fuzzy-matched at all.

Signals (``score.py``). IDF is learnt online from the entries in the window (a rare name counts
more than "stocks"); each term's weight is updated when its count changes, so reading it is one
look-up. For an entry against a story: cosine between the entry's IDF vector and the
story centroid (sublinear member counts); coverage, the IDF share of the entry's terms that are
characteristic of the story; rapidfuzz token-sort similarity against the story's first and
latest members; a penalty for named entities the story never mentions; a penalty when both
state figures of one kind (92% vs 72%) and none agree; a mild time-proximity factor. Identical
canonical URL or identical long summary (wire copy) joins outright.

Prior weights (``prior.py``). Each term's weight blends the online IDF with a prior from
general English word frequencies (wordfreq's data, shipped as a compact table in
``word_priors/``), so from the first entry "says" weighs little
and a rare name much, and a busy topic's own name is not made common by its many reports.

Average link (``link.py``). Each member is a unit TF-IDF vector; a story keeps their sum, so the
mean cosine over all member pairs of two stories is one sparse dot product. An entry no story
scores high enough for still joins the story its members resemble on average (the link,
times the time-proximity factor, at least ``LINK_THRESHOLD``), and a story that has grown by
half since it was last compared is folded into its closest neighbour above the same threshold:
the older story id survives, and the merge is queued with its evidence for the pipeline to
persist (:meth:`Matcher.take_merges`). Average link does not chain the way single link does,
and both sides' top terms must appear on the other side (two bankruptcies of different firms
share only "files for bankruptcy"), and no conflicting figures may be stated.

Assignment (``matcher.py``). The entry is compared with each candidate story as a whole (the
centroid and several members), never with its latest entry alone, so a story cannot drift
link by link. The best story above the threshold wins; otherwise a new story id is minted. An
entry never joins a story that already holds its (feed, entry id) key, nor one it is forbidden
from (manual split). Two different entries of one feed may share a story: outlets re-post and
update. The core decision is a pure function of the index and the entry (no clocks, no I/O);
the window is measured on published times.

Meaning (``embedding.py``, ``semantic.py``; ``settings.semantic``, on by default). Each entry's
title and summary lead become one sentence vector (``static``: a static model distilled from
all-MiniLM-L6-v2 and shipped with the package; ``minilm``: the full transformer; ``off``: none).
Vectors are compared centred on the mean vector of the window, so unrelated reports score about
0 whatever the feeds, and a story keeps the sum of its members' vectors, so the mean centred
cosine of an entry to a story is one dot product. It moves the join margin by
``W_MEANING * (cosine - MEANING_MID)``; the average links use words alone.

Events (``score.py``). A story is one news event; reports of one event share who (named people,
organisations, places), where, when (hours apart) and what (the meaning). The rule, both ways:
- same actors (at least ``EVENT_MIN_ENTITIES`` named, the story mentioning all but
  ``EVENT_MAX_MISS`` of them by IDF share), within ``EVENT_HOURS`` of the story's newest report
  and alike in meaning (centred cosine at least ``EVENT_MEANING``) is strong evidence of one
  event even with few shared words: ``EVENT_BONUS`` on the margin;
- more than ``EVENT_DAY`` apart, similar meaning no longer counts for a join (only against), and
  every further day takes ``DAY_PENALTY`` off the join score and off the average link: the same
  people days later is another event (the phone call three days before the Ankara talks);
- named entities the story never mentions cost ``ENTITY_PENALTY`` per IDF share (another place,
  another company), and conflicting figures of one kind veto a join (``NUMBER_PENALTY``).
The evidence of each join names the meaning similarity and whether the event rule held.

Story merges the pipeline must persist: after storing the assignments of a batch, call
:meth:`Matcher.take_merges` and apply each ``StoryMerge`` with
``storage.record_merge(merge.into, merge.other, now)``, in order.
"""

from importlib.machinery import EXTENSION_SUFFIXES

from aggregator.match import matcher as _matcher
from aggregator.match.link import StoryMerge
from aggregator.match.matcher import Decision, Matcher
from aggregator.match.score import MatchConfig, Signals

__all__ = ["Decision", "MatchConfig", "Matcher", "Signals", "StoryMerge", "build"]


def build() -> str:
    """How the match index runs here: "compiled" (mypyc, see ``setup.py``) or "interpreted"
    (no C compiler at install, or ``AGGREGATOR_PURE_PYTHON=1``): about 1.4x apart in speed, so
    logs and benchmark figures say which."""
    path = _matcher.__file__ or ""
    return "compiled" if path.endswith(tuple(EXTENSION_SUFFIXES)) else "interpreted"
