"""Story matching: decide which story a new entry tells, or start a new one.

Design (written down here; thresholds and their measurements live beside each constant):

Candidates. Each entry is reduced once to features (``text.py``): stemmed informative title
terms, summary terms, title bigrams, named-entity-like tokens, numbers tagged with their kind,
canonical URL and a hash of long summaries (wire copy). An inverted index (``index.py``) maps
each term to the stories holding it; only stories inside the window are indexed, and posting
lists longer than ``POSTING_CAP`` are skipped, so finding candidates costs a few short posting
lists whatever the number of stories. The best ``MAX_CANDIDATES`` by shared IDF weight are
scored in full.

Signals (``score.py``). IDF is learnt online from the entries in the window (a rare name counts
more than "stocks"). For an entry against a story: cosine between the entry's IDF vector and the
story centroid (sublinear member counts); coverage, the IDF share of the entry's terms that are
characteristic of the story; rapidfuzz token-sort similarity against the story's first and
latest members; a penalty for named entities the story never mentions; a penalty when both
state figures of one kind (92% vs 72%) and none agree; a mild time-proximity factor. Identical
canonical URL or identical long summary (wire copy) joins outright.

Assignment (``matcher.py``). The entry is compared with each candidate story as a whole (the
centroid and several members), never with its latest entry alone, so a story cannot drift
link by link. The best story above the threshold wins; otherwise a new story id is minted. An
entry never joins a story that already holds its (feed, entry id) key, nor one it is forbidden
from (manual split). Two different entries of one feed may share a story: outlets re-post and
update. The core decision is a pure function of the index and the entry (no clocks, no I/O);
the window is measured on published times.
"""

from aggregator.match.matcher import Decision, Matcher
from aggregator.match.score import MatchConfig, Signals

__all__ = ["Decision", "MatchConfig", "Matcher", "Signals"]
