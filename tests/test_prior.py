"""The word-frequency table shipped with the package: exact to wordfreq, compact, checked."""

from __future__ import annotations

import gzip
import importlib.util
import re
from pathlib import Path

import pytest

from aggregator.match import prior
from tests.child import python_output

needs_wordfreq = pytest.mark.skipif(
    importlib.util.find_spec("wordfreq") is None,
    reason="wordfreq is not installed (the dev extra): the shipped table cannot be rebuilt",
)


@needs_wordfreq
def test_shipped_table_is_what_the_build_script_makes() -> None:
    shipped = gzip.decompress(prior.TABLE.read_bytes())
    assert shipped == gzip.decompress(prior.table_text())


@needs_wordfreq
def test_every_frequency_equals_wordfreqs() -> None:
    import wordfreq

    for word, freq in wordfreq.get_frequency_dict("en", wordlist="best").items():
        if any(c.isdigit() for c in word):
            continue  # figures have no prior; the table leaves them out
        expected = freq if freq >= prior.FLOOR_FREQUENCY else 0.0
        assert prior.frequency(word) == expected, word


def test_table_words_have_distinct_keys() -> None:
    lines = gzip.decompress(prior.TABLE.read_bytes()).decode().split("\n")
    words = [word for line in lines[1:] for word in line.split()]
    assert len(words) > 90_000
    assert len({prior._word_hash(word) for word in words}) == len(words)
    assert len(prior._keys()) == len(words)


def test_known_weights() -> None:
    assert prior.prior_idf("the") == prior.MIN_PRIOR
    assert prior.prior_idf("says") == pytest.approx(2.1, abs=0.1)
    assert prior.prior_idf("bankruptcy") == pytest.approx(5.3, abs=0.1)
    unseen = prior.prior_idf("zqxplosserian")
    assert unseen == pytest.approx(-prior.math.log(prior.FLOOR_FREQUENCY) - prior.SHIFT)
    assert prior.prior_idf("g7_summit") is None


def test_service_does_not_import_wordfreq() -> None:
    """The table replaces wordfreq at run time: importing it cost ~17 MB in every process."""
    code = (
        "import sys, aggregator.service\n"
        "from aggregator.match.prior import prior_idf\n"
        "prior_idf('news')\n"
        "print('wordfreq' in sys.modules)\n"
    )
    assert python_output(code).strip() == "False"


@pytest.mark.parametrize("content", [None, b"not gzip", gzip.compress(b"# another file\nx y")])
def test_a_missing_or_damaged_table_is_named(
    content: bytes | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = tmp_path / "frequencies.txt.gz"
    if content is not None:
        table.write_bytes(content)
    monkeypatch.setattr(prior, "TABLE", table)
    prior._keys.cache_clear()
    try:
        with pytest.raises(prior.PriorTableUnavailable, match=re.escape(str(table))):
            prior.check_table()  # at start
        with pytest.raises(prior.PriorTableUnavailable, match=re.escape(str(table))):
            prior._keys()  # at the first look-up
    finally:
        prior._keys.cache_clear()


def test_the_service_does_not_start_without_the_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime, timedelta

    from aggregator.runtime import open_index
    from aggregator.storage import open_storage

    monkeypatch.setattr(prior, "TABLE", tmp_path / "missing.txt.gz")
    storage = open_storage(f"sqlite:///{tmp_path / 'a.db'}")
    try:
        with pytest.raises(prior.PriorTableUnavailable, match=re.escape("missing.txt.gz")):
            open_index(storage, timedelta(hours=48), lambda: datetime.now(UTC), own_process=False)
    finally:
        storage.close()


def test_text_caches_stay_small_however_large_the_vocabulary() -> None:
    """A long-running service meets hundreds of thousands of distinct words (names, typos,
    figures); the memoised token rules must not keep them all in every process."""
    import random
    import string
    import tracemalloc

    from aggregator.match import text

    rng = random.Random(0)
    words = [
        "".join(rng.choices(string.ascii_letters, k=rng.randint(4, 11))) for _ in range(200_000)
    ]
    prior.prior_idf("news")  # the table itself is not what is measured
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for word in words:
            text._ascii_word(word)
            text._term(word.lower())
            text._entity(word.capitalize())
            text._rarity(word.lower())
            prior.prior_idf(word.upper())
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 30_000_000, f"the token caches hold {held / 1e6:.0f} MB"
