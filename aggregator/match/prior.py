"""Prior term weights from general English word frequencies (the ``wordfreq`` data).

Online IDF knows nothing until the window fills, and inside one busy topic it wrongly makes the
topic's own name common. A prior from general usage says from the first entry that "says"
weighs little and "Plosser" much; :class:`~aggregator.match.index.TermIndex` blends the two.

The frequencies ship with the package as a compact table (``word_priors/``, built from
wordfreq by ``scripts/build_prior_table.py``), so no process imports wordfreq or holds its
word list: the table is one array of 8-byte keys, about 0.8 MB where wordfreq's trimmed
dictionary held about 17 MB and importing wordfreq another 17 MB in every process that
extracts features.
"""

from __future__ import annotations

import gzip
import hashlib
import math
from array import array
from bisect import bisect_left
from functools import cache, lru_cache
from pathlib import Path

from aggregator.exceptions import AggregatorError

# Word frequencies below this count as this (names wordfreq has never seen, typos): -ln(1e-7)
# is about the weight of a rare word such as "titanfall" (4e-7).
FLOOR_FREQUENCY = 1e-7
# Subtracted from -ln(frequency) to bring the prior onto the scale of online IDF
# (ln(N / df) + 1, about 1..10 for a window of thousands of entries): "the" -> 0.5 (floored),
# "says" -> 2.1, "stock" -> 3.4, "bankruptcy" -> 5.3, an unseen name -> 10.1.
SHIFT = 6.0
# Words whose prior is memoised: the index asks for it each time a term's document frequency
# changes; a table look-up and the logarithm cost ~3 us, a cache hit well under 1 us. Twice
# text.TOKEN_CACHE: the window's terms come through here, not only a poll's; see there for
# what the caches hold when full.
CACHE_TERMS = 1 << 15
# Lowest prior weight: function words keep a small positive weight.
MIN_PRIOR = 0.5

# The table: a header line, then line ``k + 1`` holds the words (space-separated, sorted) of
# frequency ``10 ** (-k / 100)``: wordfreq's own scale of centibels, so every frequency is exact.
TABLE = Path(__file__).resolve().parent / "word_priors" / "frequencies.txt.gz"
HEADER = "# English word frequencies: line k+1 holds the words of frequency 10**(-k/100)"
# Bits of a key that hold the word's bucket (k <= 700 for frequencies down to 1e-7); the
# other 54 hold a hash of the word. A word outside the table matches a key by chance with
# probability (words in the table) / 2**54, about 5e-12 per look-up; the table's own words
# have distinct hashes (``tests/test_prior.py``).
BUCKET_BITS = 10
_BUCKET_MASK = (1 << BUCKET_BITS) - 1


class PriorTableUnavailable(AggregatorError):
    """The word-frequency table shipped with the package is missing or damaged."""


def _word_hash(word: str) -> int:
    digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> BUCKET_BITS


def check_table() -> None:
    """Raise ``PriorTableUnavailable`` when the shipped table is missing or is not one: checked
    at start (its header only), so a broken install does not fail feed by feed later."""
    _read_table(header_only=True)


def _read_table(header_only: bool) -> list[str]:
    """The table's lines (its header alone when ``header_only``), the header checked."""
    try:
        if header_only:
            with gzip.open(TABLE, "rt", encoding="utf-8") as table:
                lines = [table.readline().rstrip("\n")]
        else:
            lines = gzip.decompress(TABLE.read_bytes()).decode().split("\n")
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise PriorTableUnavailable(f"cannot read the word-frequency table {TABLE}: {exc}") from exc
    if lines[0] != HEADER:
        raise PriorTableUnavailable(f"{TABLE} is not a word-frequency table (wrong header)")
    return lines


@cache
def _keys() -> array[int]:
    """Sorted ``hash << BUCKET_BITS | bucket`` of every word in the table."""
    lines = _read_table(header_only=False)
    if len(lines) - 1 > _BUCKET_MASK + 1:
        raise PriorTableUnavailable(f"{TABLE} holds more frequencies than a key can name")
    keys = sorted(
        _word_hash(word) << BUCKET_BITS | bucket
        for bucket, line in enumerate(lines[1:])
        for word in line.split()
    )
    return array("Q", keys)


def frequency(word: str) -> float:
    """The word's frequency in general English; 0.0 for a word below ``FLOOR_FREQUENCY``."""
    keys = _keys()
    wanted = _word_hash(word)
    i = bisect_left(keys, wanted << BUCKET_BITS)
    if i < len(keys) and keys[i] >> BUCKET_BITS == wanted:
        return float(10 ** (-(keys[i] & _BUCKET_MASK) / 100))
    return 0.0


@lru_cache(maxsize=CACHE_TERMS)
def prior_idf(term: str) -> float | None:
    """The prior weight of a term; None for figures."""
    if not term.isalpha() and any(c.isdigit() for c in term):
        return None
    return max(MIN_PRIOR, -math.log(max(frequency(term), FLOOR_FREQUENCY)) - SHIFT)


def table_text() -> bytes:
    """The table's bytes, built from the installed wordfreq (``scripts/build_prior_table.py``).

    Words holding a digit are left out: their prior is never read (figures have none).
    """
    import wordfreq  # the build's and the tests' dependency only

    buckets: list[list[str]] = []
    for word, freq in wordfreq.get_frequency_dict("en", wordlist="best").items():
        if freq < FLOOR_FREQUENCY or any(c.isdigit() for c in word):
            continue
        bucket = round(-100 * math.log10(freq))
        if 10 ** (-bucket / 100) != freq:
            raise ValueError(f"wordfreq's frequency of {word!r} is off its centibel scale")
        buckets.extend([] for _ in range(bucket + 1 - len(buckets)))
        buckets[bucket].append(word)
    lines = [HEADER, *[" ".join(sorted(words)) for words in buckets]]
    return gzip.compress("\n".join(lines).encode(), mtime=0)
