"""Text features of one entry: informative tokens, bigrams, named entities, numbers.

Everything here is a pure function of the entry's text, computed once when the entry arrives.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime

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

# Minimum length of a summary, in characters, for identical summaries to count as the same wire
# copy: short summaries ("Read more", a dateline) repeat across unrelated stories.
WIRE_TEXT_MIN_CHARS = 120

_WORD_RE = re.compile(r"[^\W\d_][\w'’.-]*[^\W_]|[^\W\d_]|\d+(?:[.,]\d+)*")
_NUMBER_RE = re.compile(
    r"(?P<cur>[$€£¥])?\s?(?P<num>\d+(?:[.,]\d+)*)\s?(?P<unit>%|percent\b|per cent\b|"
    r"pct\b|bn\b|billion\b|mn\b|million\b|m\b|k\b|gb\b|mb\b|tb\b|points?\b|pts\b|"
    r"dead\b|killed\b|people\b|years?\b)?",
    re.IGNORECASE,
)
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
    out = []
    for match in _WORD_RE.finditer(fold(text)):
        word = _normalise_word(match.group(0))
        if word:
            out.append(word)
    return out


def stem(word: str) -> str:
    """A light suffix stripper so that plural and -ing/-ed forms share a token.

    Deliberately conservative (tapering ~ taper, talks ~ talk, pledges ~ pledge): a wrong
    conflation could join two different stories, a missed one only lowers recall.
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


def terms(text: str) -> list[str]:
    """Informative terms: stemmed words without stopwords or one-letter tokens."""
    return [stem(w) for w in words(text) if w not in STOPWORDS and len(w) > 1]


def bigrams(seq: list[str]) -> list[str]:
    """Adjacent term pairs; a shared pair ("interest rate", "idlib zone") is stronger evidence."""
    return [f"{a}_{b}" for a, b in itertools.pairwise(seq)]


def entities(text: str) -> frozenset[str]:
    """Named-entity-like tokens: acronyms and capitalised words that are not sentence-initial.

    In Title Case headlines every word is capitalised, so there only acronyms and words that
    are not stopwords count; IDF then decides how much each one weighs.
    """
    raw = _WORD_RE.findall(text)
    found: set[str] = set()
    capitalised = [w for w in raw if w[:1].isupper()]
    title_case = len(raw) > 3 and len(capitalised) >= 0.7 * len(raw)
    for i, word in enumerate(raw):
        clean = _normalise_word(word)
        if len(clean) < 2 or not clean[:1].isupper():
            continue
        folded = fold(clean)
        if folded in STOPWORDS:
            continue
        is_acronym = clean.isupper() and clean.isalpha()
        if is_acronym or (i > 0 and not title_case):
            found.add(stem(folded))
    return frozenset(found)


def numbers(text: str) -> frozenset[str]:
    """Numbers tagged with the kind of quantity they state: ``%:92``, ``$:5bn``, ``n:2017``.

    Two reports of one event agree on their figures; 92% vs 72% is a different fact.
    """
    found: set[str] = set()
    for match in _NUMBER_RE.finditer(fold(text)):
        num = match.group("num").replace(",", "")
        unit = (match.group("unit") or "").lower()
        kind = _UNIT_KIND.get(unit, "$" if match.group("cur") or unit else "n")
        found.add(f"{kind}:{num}")
    return frozenset(found)


def wire_hash(title: str, summary: str) -> str | None:
    """Hash of a long summary, so that the same wire copy published by two outlets joins."""
    body = " ".join(words(summary))
    if len(body) < WIRE_TEXT_MIN_CHARS:
        return None
    return hashlib.blake2b(body.encode(), digest_size=12).hexdigest()


@dataclass(frozen=True, slots=True)
class Features:
    """The matching features of one entry, computed once."""

    key: tuple[str, str]
    title: str
    fuzzy_text: str
    title_terms: frozenset[str]
    summary_terms: frozenset[str]
    bigrams: frozenset[str]
    entities: frozenset[str]
    numbers: frozenset[str]
    url: str | None
    wire: str | None
    published: datetime

    @property
    def all_terms(self) -> frozenset[str]:
        """Every unigram and bigram of title and summary (the index keys)."""
        return self.title_terms | self.summary_terms | self.bigrams


def features(entry: Entry) -> Features:
    """Extract the matching features of ``entry`` (pure)."""
    title_seq = terms(entry.title)
    summary_seq = terms(entry.summary) if entry.summary else []
    text = f"{entry.title} {entry.summary}" if entry.summary else entry.title
    return Features(
        key=entry.key,
        title=entry.title,
        fuzzy_text=" ".join(words(entry.title)),
        title_terms=frozenset(title_seq),
        summary_terms=frozenset(summary_seq) - frozenset(title_seq),
        bigrams=frozenset(bigrams(title_seq)),
        entities=entities(entry.title)
        | (entities(entry.summary) if entry.summary else frozenset()),
        numbers=numbers(text),
        url=entry.url,
        wire=wire_hash(entry.title, entry.summary) if entry.summary else None,
        published=entry.published,
    )
