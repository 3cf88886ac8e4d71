"""Text features of one entry: informative tokens, named entities, numbers.

Everything here is a pure function of the entry's text, computed once when the entry arrives.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Container
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from aggregator.match.prior import prior_idf
from aggregator.types import Entry

# Words that say nothing about which event a headline reports. Kept short on purpose: online IDF
# already down-weights frequent words; this list only removes function words and reporting verbs
# whose counts would otherwise crowd the candidate index.
STOPWORDS = frozenset(
    """a an the and or but if of to in on at by for with from into onto over under about after
    before as is are was were be been being has have had do does did will would shall should can
    could may might must not no nor so than then that this these those there here it its it's he
    she they them their his her him we us our you your i me my who whom whose which what when
    where why how all any each more most other some such only own same too very just also up down
    out off again new says say said saying report reports reported update updates live video
    photos watch via amid vs per""".split()  # noqa: SIM905 (a word list reads better)
)

# Bits of the digest that stands for an entry's link or wire copy in its features (``text_key``):
# a window of 200,000 entries has a chance of about 2e-8 that two different links share one,
# and below 2**62 a Python int takes 32 bytes, where the link itself took about 120 and the
# hex digest of the wire copy 73 (1,000 feedgen feeds: 6.5 MB of the index).
KEY_BITS = 60

# Minimum length of a summary, in characters, for identical summaries to count as the same wire
# copy: short summaries ("Read more", a dateline) repeat across unrelated stories.
WIRE_TEXT_MIN_CHARS = 120

# Characters of a summary that give an entry its terms, names, figures and wire hash (about
# two sentences): the lead states the event, later sentences wander into background, and every
# term costs time in each comparison. Summaries are cut to 1,000 characters by normalise.
# benchmarks.match_realistic (feedgen entries, ~530-character summaries): 1000 -> B3 F1 .974
# at 978 entries/s, 600 -> .973, 400 -> .995 at 1,306/s, 250 -> 1.000 at 1,882/s. UCI head has
# no summaries. 250 would often keep a single sentence of a real lead: 400 keeps two.
SUMMARY_LEAD_CHARS = 300

# Characters of the summary's lead that the meaning signal embeds with the title (about one
# sentence). AllSides seeds 0/1, static model, B3 P/F1: title alone .948/.611 .949/.611; 150
# characters .941/.620 .940/.620; 300 .934/.622 .936/.622 at about 3/4 of the speed (the
# tokenizer's cost grows with the text). The first sentence states the event; later ones
# bring in the background that different events share.
MEANING_LEAD_CHARS = 150

# Summary terms (not in the title) an entry keeps: the rarest in general English (``prior.py``),
# the earliest first among equals. Names and rare words tell the event; common words weigh
# little and each costs as much as a name in every comparison.
SUMMARY_TERMS = 16

# Distinct raw tokens whose normalised, stemmed form is memoised: news vocabulary is Zipfian,
# so a few thousand tokens cover nearly every word of a busy window; the stemming and stopword
# checks then cost one cache hit per token instead of a dozen string operations. Each of the
# four caches below holds this many. AllSides and UCI head together (474k token occurrences,
# 30k distinct): LRU hit rate .925 at 16,384 and .936 at 131,072 (every token but its first
# sighting); extracting the features of their 14,381 entries took the same instructions at
# both sizes (callgrind: 12.747 and 12.750 G). Filled with 300,000 distinct words, as a
# long-running service's vocabulary fills them, these caches and prior.py's held 168 MB at
# 131,072 (and 262,144) in every process that extracts features, 21 MB at these sizes.
TOKEN_CACHE = 1 << 14

_WORD_RE = re.compile(r"[^\W\d_](?:[\w'’.-]*[^\W_])?|\d+(?:[.,]\d+)*")
_NUMBER_RE = re.compile(
    r"(?P<cur>[$€£¥])?\s?(?P<num>\d+(?:[.,]\d+)*)\s?(?P<unit>%|percent\b|per cent\b|"
    r"pct\b|bn\b|billion\b|mn\b|million\b|m\b|k\b|gb\b|mb\b|tb\b|points?\b|pts\b|"
    r"dead\b|killed\b|people\b|years?\b)?",
    re.IGNORECASE,
)
# The same figures found from their digits: scanning for a digit is much faster than trying
# the optional currency prefix of _NUMBER_RE at every position of a long summary.
_DIGITS_RE = re.compile(r"\d+(?:[.,]\d+)*")
_UNIT_RE = re.compile(
    r"\s?(?P<unit>%|percent\b|per cent\b|pct\b|bn\b|billion\b|mn\b|million\b|m\b|k\b|gb\b|"
    r"mb\b|tb\b|points?\b|pts\b|dead\b|killed\b|people\b|years?\b)",
    re.IGNORECASE,
)
_CURRENCY = frozenset("$€£¥")
_UNIT_KIND = {
    "%": "%",
    "percent": "%",
    "per cent": "%",
    "pct": "%",
    "point": "pt",
    "points": "pt",
    "pts": "pt",
    "dead": "toll",
    "killed": "toll",
    "people": "toll",
    "year": "yr",
    "years": "yr",
}


def fold(text: str) -> str:
    """Lower-case, strip accents (Erdoğan == Erdogan) and unify apostrophes."""
    if text.isascii():
        return text.casefold()
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return plain.replace("’", "'").casefold()


def _normalise_word(word: str) -> str:
    word = word.strip(".-'")
    if word.endswith("'s"):
        word = word[:-2]
    return word


def words(text: str) -> list[str]:
    """Folded word tokens (numbers included), in order, stopwords kept."""
    return [w for w in map(_normalise_word, _WORD_RE.findall(fold(text))) if w]


def stem(word: str) -> str:
    """A light suffix stripper so that plural and -ing/-ed forms share a token.

    Deliberately conservative (tapering ~ taper, talks ~ talk, pledges ~ pledged, though not
    pledge): a wrong conflation could join two different stories, a missed one only lowers
    recall. Also dropping a final "e" (pledge, image, device) measured worse on UCI head seeds
    0/1: B3 P .898/.895 R .534/.544 at the then defaults (P .905/.904 R .539/.537 without).
    """
    if len(word) <= 4 or not word.isalpha():
        return word
    if word.endswith("eed"):
        return word[:-1]  # agreed -> agree, not "agre"
    for suffix, keep in (("ings", 5), ("ing", 5), ("ies", 4), ("ed", 5), ("es", 5), ("s", 4)):
        if word.endswith(suffix) and len(word) - len(suffix) >= keep - 1:
            root = word[: -len(suffix)]
            if suffix == "ies":
                return root + "y"
            if suffix == "s" and root.endswith("s"):
                return word  # "business", "glass"
            return root
    return word


def tokens(text: str) -> tuple[list[str], list[str]]:
    """The raw word tokens of ``text`` (for :func:`entities`) and its :func:`words`, in one pass.

    Folding ASCII text only lower-cases it, which changes no token boundary, so the words are
    the folded raw tokens; other text is folded first, as :func:`words` does.
    """
    raw: list[str] = _WORD_RE.findall(text)
    if not text.isascii():
        return raw, words(text)
    return raw, [w for w in map(_ascii_word, raw) if w]


@lru_cache(maxsize=TOKEN_CACHE)
def _ascii_word(token: str) -> str:
    return _normalise_word(token.lower())


def terms(text: str) -> list[str]:
    """Informative terms: stemmed words without stopwords or one-letter tokens."""
    return _terms_of(words(text))


@lru_cache(maxsize=TOKEN_CACHE)
def _term(word: str) -> str | None:
    """The term of a normalised word, None for stopwords and one-letter tokens."""
    if word in STOPWORDS or len(word) <= 1:
        return None
    return stem(word)


def _terms_of(seq: list[str]) -> list[str]:
    return [t for t in map(_term, seq) if t is not None]


def entities(text: str) -> frozenset[str]:
    """Named-entity-like tokens: acronyms and capitalised words that are not sentence-initial.

    In Title Case headlines every word is capitalised, so there only acronyms and words that
    are not stopwords count; IDF then decides how much each one weighs.
    """
    return entities_of(_WORD_RE.findall(text))


def entities_of(raw: list[str]) -> frozenset[str]:
    """:func:`entities` of the raw tokens of a text."""
    # A token starts with a letter or digit, which normalising never strips.
    capitalised = [i for i, word in enumerate(raw) if word[0].isupper()]
    title_case = len(raw) > 3 and len(capitalised) >= 0.7 * len(raw)
    found: set[str] = set()
    for i in capitalised:
        entity = _entity(raw[i])
        if entity is not None and (entity[1] or (i > 0 and not title_case)):
            found.add(entity[0])
    return frozenset(found)


@lru_cache(maxsize=TOKEN_CACHE)
def _entity(word: str) -> tuple[str, bool] | None:
    """(stemmed folded form, is an acronym) of a capitalised token; None when it cannot count."""
    clean = _normalise_word(word)
    if len(clean) < 2 or not clean[:1].isupper():
        return None
    folded = fold(clean)
    if folded in STOPWORDS:
        return None
    return stem(folded), clean.isupper() and clean.isalpha()


def numbers(text: str) -> frozenset[str]:
    """Numbers tagged with the kind of quantity they state: ``%:92``, ``$:5bn``, ``n:2017``.

    Two reports of one event agree on their figures; 92% vs 72% is a different fact.
    """
    found: set[str] = set()
    folded = fold(text)
    for match in _DIGITS_RE.finditer(folded):
        start, end = match.span()
        # _NUMBER_RE's prefix: a currency sign, then at most one blank, before the digits.
        before = folded[max(0, start - 2) : start]
        cur = bool(before) and (
            before[-1] in _CURRENCY or (before[-1].isspace() and before[:-1] in _CURRENCY)
        )
        unit_match = _UNIT_RE.match(folded, end)
        unit = unit_match.group("unit").lower() if unit_match else ""
        kind = _UNIT_KIND.get(unit, "$" if cur or unit else "n")
        found.add(f"{kind}:{match.group(0).replace(',', '')}")
    return frozenset(found)


def text_key(text: str) -> int:
    """A KEY_BITS digest of ``text``: what the index compares of links and wire copies."""
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> (64 - KEY_BITS)


def _wire_of(summary_words: list[str]) -> int | None:
    """Key of a long summary, so that the same wire copy published by two outlets joins."""
    body = " ".join(summary_words)
    if len(body) < WIRE_TEXT_MIN_CHARS:
        return None
    return text_key(body)


# Weight of a term found only in the summary, relative to a title term: summaries are longer
# and wander (background paragraphs), the headline states the event.
SUMMARY_WEIGHT = 0.5
# Title bigrams ("interest_rate") are not terms. With them at 0.6 of a word's weight, and
# the thresholds tuned for each (`python -m benchmarks.match --no-extra`, seeds 0/1, B3
# P/R): AllSides .941/.463 .940/.462 with them, .950/.453 .947/.454 without; UCI head
# .903/.547 .904/.549 with, .901/.572 .890/.578 without. So about as precise, with as much
# recall on events and more on topics; and they were most of what the window keeps: each entry
# brought about six pairs seen nowhere else, a term each in the index (a string, its id, its
# figures: about 150 bytes) and in its story. One process assigning the entries of 1,000
# feedgen feeds grew 179 MB with them, 118 MB without, in 26.0 and 22.1 CPU s.


@dataclass(frozen=True, slots=True)
class Features:
    """The matching features of one entry, computed once.

    Terms are kept as one tuple, not as sets: an indexed entry holds ~35 terms, and three
    frozensets of them took ~2.2 KB against ~0.3 KB for the tuple (tracemalloc, feedgen
    entries), which a window of a million entries pays a million times.
    """

    key: tuple[str, str]
    title: str
    # The title's words in sorted order: rapidfuzz's ratio of two such texts is the
    # token_sort_ratio of the titles, without sorting the same title again at each comparison.
    fuzzy_text: str
    # Every distinct term, in this order: title terms, then summary-only terms.
    terms: tuple[str, ...]
    title_count: int
    entities: tuple[str, ...]
    numbers: tuple[str, ...]
    # Keys (``text_key``) of the entry's link and of its summary as a wire copy (a long one).
    url_key: int | None
    wire_key: int | None
    published: datetime
    # What the meaning signal embeds: the title and the summary's lead. The index drops it once
    # the entry's vector is made (``matcher.shared_terms``): only the vector is kept.
    meaning: str = ""

    @property
    def title_terms(self) -> tuple[str, ...]:
        """Stemmed informative title words, first occurrence first."""
        return self.terms[: self.title_count]

    @property
    def summary_terms(self) -> tuple[str, ...]:
        """The summary lead's telling terms that the title lacks (see ``_telling``)."""
        return self.terms[self.title_count :]

    @property
    def all_terms(self) -> tuple[str, ...]:
        """Every term of title and summary (the index keys), each once."""
        return self.terms


def lead(summary: str, limit: int | None = None) -> str:
    """The first ``limit`` (default SUMMARY_LEAD_CHARS) characters of a summary, cut at a space."""
    limit = SUMMARY_LEAD_CHARS if limit is None else limit
    if len(summary) <= limit:
        return summary
    cut = summary.rfind(" ", 0, limit + 1)
    return summary[: cut if cut > 0 else limit]


def _telling(seq: list[str], title_terms: Container[str]) -> list[str]:
    """The SUMMARY_TERMS rarest summary terms not in the title (rarity by prior, then order)."""
    distinct = [t for t in dict.fromkeys(seq) if t not in title_terms]
    if len(distinct) <= SUMMARY_TERMS:
        return distinct
    return sorted(distinct, key=_rarity)[:SUMMARY_TERMS]


@lru_cache(maxsize=TOKEN_CACHE)
def _rarity(term: str) -> float:
    """Sort key of :func:`_telling`, rarest first (figures, with no prior, last)."""
    return -(prior_idf(term) or 0.0)


def features(entry: Entry) -> Features:
    """Extract the matching features of ``entry`` (pure)."""
    title_raw, title_words = tokens(entry.title)
    title_seq = _terms_of(title_words)
    title_terms = dict.fromkeys(title_seq)
    summary = lead(entry.summary)
    summary_raw, summary_words = tokens(summary) if summary else ([], [])
    text = f"{entry.title} {summary}" if summary else entry.title
    summary_terms = _telling(_terms_of(summary_words), title_terms)
    # Each once: the summary's telling terms leave out the title's.
    terms = (*title_terms, *summary_terms)
    entities = entities_of(title_raw) | (entities_of(summary_raw) if summary else frozenset())
    return Features(
        key=entry.key,
        title=entry.title,
        fuzzy_text=" ".join(sorted(title_words)),
        terms=terms,
        title_count=len(title_terms),
        entities=tuple(sorted(entities)),
        numbers=tuple(sorted(numbers(text))),
        url_key=text_key(entry.url) if entry.url else None,
        wire_key=_wire_of(summary_words) if summary else None,
        published=entry.published,
        meaning=f"{entry.title} {lead(summary, MEANING_LEAD_CHARS)}" if summary else entry.title,
    )
