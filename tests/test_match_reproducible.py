"""One stream gives the same figures in every run: no sum follows the order of string hashes.

Python salts string hashes per process (``PYTHONHASHSEED``), so anything iterated in set order
adds its parts in an order that changes from run to run, and a float sum then differs in its
last digits: at a threshold, two runs of one stream could merge differently.
"""

from __future__ import annotations

import os

from tests.child import python_output

# Two stories sharing many terms of different weights: their average link adds many parts.
LINKS = """
import random
from datetime import UTC, datetime, timedelta
from aggregator.match.story import StoryState
from aggregator.match.link import average_link, story_link
from aggregator.match.text import features
from tests.factories import make_entry

rng = random.Random(5)
words = [f"word{i}" for i in range(60)]
t0 = datetime(2024, 5, 1, tzinfo=UTC)
def story(name, members):
    state = StoryState(name)
    for n in range(members):
        title = " ".join(rng.sample(words, 12))
        entry = make_entry(f"https://{name}.example/feed", f"{name}{n}", title,
                           published=t0 + timedelta(minutes=n), content_hash=f"{name}{n}",
                           summary=" ".join(rng.sample(words, 25)))
        state.add(features(entry), rng.uniform(2.0, 9.0))
    return state
a, b, one = story("a", 6), story("b", 5), story("c", 1)
def idf(term):
    return 1.0 + (sum(map(ord, term)) % 17) / 7.0
print(repr(story_link(a.mass_dict(), a.size, b, idf)))
print(repr(story_link(b.mass_dict(), b.size, a, idf)))
print(repr(story_link(a.mass_dict(), a.size, one, idf)))
print(repr(average_link(a.mass_dict(), a.size, b.mass_dict(), b.size, idf)))
"""


def _run(seed: int) -> str:
    return python_output(LINKS, env={**os.environ, "PYTHONHASHSEED": str(seed)}, timeout=120)


def test_average_links_are_the_same_whatever_the_string_hashes() -> None:
    runs = {_run(seed) for seed in range(6)}
    assert len(runs) == 1, runs
    links = [float(line[1:].split(",")[0]) for line in next(iter(runs)).splitlines()]
    assert len(links) == 4 and all(link > 0.0 for link in links)
