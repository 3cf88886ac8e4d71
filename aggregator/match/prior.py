"""Prior term weights from general English word frequencies (the ``wordfreq`` data).

Online IDF knows nothing until the window fills, and inside one busy topic it wrongly makes the
topic's own name common. A prior from general usage says from the first entry that "says"
weighs little and "Plosser" much; :class:`~aggregator.match.index.TermIndex` blends the two.
"""

from __future__ import annotations

import math
from functools import cache, lru_cache

import wordfreq

# Word frequencies below this count as this (names wordfreq has never seen, typos): -ln(1e-7)
# is about the weight of a rare word such as "titanfall" (4e-7).
FLOOR_FREQUENCY = 1e-7
# Subtracted from -ln(frequency) to bring the prior onto the scale of online IDF
# (ln(N / df) + 1, about 1..10 for a window of thousands of entries): "the" -> 0.5 (floored),
# "says" -> 2.1, "stock" -> 3.4, "bankruptcy" -> 5.3, an unseen name -> 10.1.
SHIFT = 6.0
# Words whose prior is memoised: the index asks for it each time a term's document frequency
# changes; wordfreq's look-up and the logarithm cost ~10 us, a cache hit well under 1 us.
CACHE_TERMS = 1 << 18
# Lowest prior weight: function words keep a small positive weight.
MIN_PRIOR = 0.5


@cache
def _frequencies() -> dict[str, float]:
    """English word frequencies at or above FLOOR_FREQUENCY (the rest weigh as unseen words).

    Of wordfreq's 321k words only ~96k are that frequent, and wordfreq keeps its own cached
    copies of the whole list: trimming and releasing them took the table from ~40 to ~10 MiB
    in every process that extracts features (the service and each parse worker).
    """
    table = {
        word: frequency
        for word, frequency in wordfreq.get_frequency_dict("en", wordlist="best").items()
        if frequency >= FLOOR_FREQUENCY
    }
    wordfreq.get_frequency_dict.cache_clear()
    wordfreq.get_frequency_list.cache_clear()
    return table


def prior_idf(term: str) -> float | None:
    """The prior weight of a term (bigrams: that of their rarer word); None for figures."""
    if "_" not in term:
        return _word_prior(term)
    # The weight falls as the frequency rises: the rarer word's is the higher of the two.
    # Bigrams are not memoised: nearly every one is new (millions in a busy window), they
    # evicted the words from the cache, and two cached look-ups cost less than a miss.
    best = 0.0
    for part in term.split("_"):
        prior = _word_prior(part)
        if prior is None:
            return None
        best = max(best, prior)
    return best


@lru_cache(maxsize=CACHE_TERMS)
def _word_prior(term: str) -> float | None:
    if not term.isalpha() and any(c.isdigit() for c in term):
        return None
    frequency = _frequencies().get(term, 0.0)
    return max(MIN_PRIOR, -math.log(max(frequency, FLOOR_FREQUENCY)) - SHIFT)
