"""Build the word-frequency table shipped in ``aggregator/match/word_priors/``.

    pip install 'wordfreq>=3.1,<4'    # in the dev extra: make test installs it
    python scripts/build_prior_table.py

wordfreq (Apache-2.0 code, CC BY-SA 4.0 data) gives each English word a frequency on a scale of
centibels: a word in bucket ``k`` of its list has frequency ``10 ** (-k / 100)`` exactly. The
table keeps the words at or above ``prior.FLOOR_FREQUENCY`` (the rest weigh as unseen words),
one line per bucket, so that the service reads its priors without importing wordfreq or
holding its 321k-word dictionary (``aggregator.match.prior``). Rebuilding with the same
wordfreq version gives the same bytes (``tests/test_prior.py`` checks that when wordfreq is
installed).
"""

from __future__ import annotations

import gzip
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aggregator.match.prior import TABLE, table_text  # noqa: E402


def main() -> int:
    text = table_text()
    TABLE.write_bytes(text)
    words = sum(len(line.split()) for line in gzip.decompress(text).decode().splitlines()[1:])
    print(
        f"wrote {TABLE} ({len(text):,} bytes, {words:,} words, wordfreq "
        f"{metadata.version('wordfreq')})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
