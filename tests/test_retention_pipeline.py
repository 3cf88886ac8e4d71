"""A feed flooding entries at every poll, beside ordinary feeds, through the real pipeline and
``Storage.prune``.

One scenario (module fixture) runs ``CYCLES`` rounds of ``Updater.refresh_many`` and
``Storage.prune`` with ``open_runtime`` on a real SQLite file, against a loopback server. The
flood feed's document holds its newest ``DOC_ENTRIES`` entries and gains ``PER_POLL`` at each
poll, more than ``max_entries_per_feed`` keeps, so most of what prune removes is still served
at the next poll. The tests check that the flood feed stays at its bound, that no entry pruned
is ever stored again (the feed's retention horizon), and that the ordinary feeds beside it
lose nothing and keep merging their stories.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from feedfarm import EVENT_SPACING, FarmServer, FeedFarm, Item, event_title, rss_document
from servers import LoopbackServer, RecordedRequest, Reply
from sqlalchemy import select

from aggregator.config import load_config
from aggregator.refresh.updater import RefreshResult
from aggregator.runtime import open_runtime
from aggregator.storage import PruneResult, SqlStorage
from aggregator.storage.schema import entries

MAX_ENTRIES = 25  # settings.max_entries_per_feed
DOC_ENTRIES = 60  # what the flood feed's document holds at each poll
PER_POLL = 20  # new entries it gains between two polls
CYCLES = 5
FLOOD_GROUP = 99  # its headlines' vocabulary: no farm event shares a word with them
FARM_FEEDS = 4
FARM_ENTRIES = 3


class FloodFeed:
    """A feed whose document slides forward ``PER_POLL`` entries at every request."""

    def __init__(self, server: LoopbackServer, start: datetime) -> None:
        self.start = start
        self.polls = 0
        path = "/flood.xml"
        self.url = server.url(path)
        server.route(path, self._reply)

    def items(self, poll: int) -> list[Item]:
        """What the ``poll``-th request (from 0) is served, newest first."""
        newest = poll * PER_POLL + DOC_ENTRIES - 1
        return [
            Item(
                guid=f"flood-{n}",
                title=event_title(FLOOD_GROUP, n),
                summary="Flood.",
                link=f"https://flood.example/{n}",
                published=self.start + n * EVENT_SPACING,
            )
            for n in range(newest, newest - DOC_ENTRIES, -1)
        ]

    def _reply(self, _request: RecordedRequest) -> Reply:
        poll, self.polls = self.polls, self.polls + 1
        return Reply(body=rss_document("flood", self.items(poll)), etag=f'"flood-{poll}"')


@dataclass
class Cycle:
    results: dict[str, RefreshResult]
    stored_after_poll: dict[str, set[str]]  # feed URL -> entry ids
    pruned: PruneResult
    stored_after_prune: dict[str, set[str]]


@dataclass
class Scenario:
    flood_url: str
    farm: FeedFarm
    cycles: list[Cycle]
    storage_horizon: datetime | None
    flood: FloodFeed
    farm_story_sizes: list[int]  # sources of each story citing a farm feed, at the end


def stored(storage: SqlStorage) -> dict[str, set[str]]:
    with storage.engine.connect() as conn:
        found: dict[str, set[str]] = {}
        for feed_url, entry_id in conn.execute(select(entries.c.feed_url, entries.c.entry_id)):
            found.setdefault(str(feed_url), set()).add(str(entry_id))
        return found


async def run_cycles(config_path: Path, farm: FeedFarm, flood: FloodFeed) -> Scenario:
    config = load_config(config_path)
    s = config.settings
    cycles = []
    async with open_runtime(config) as runtime:
        storage = runtime.storage
        assert isinstance(storage, SqlStorage)
        for _ in range(CYCLES):
            results = await runtime.updater.refresh_many(storage.list_feeds())
            after_poll = stored(storage)
            pruned = await asyncio.to_thread(
                storage.prune,
                datetime.now(UTC),
                retention=s.retention,
                max_entries_per_feed=s.max_entries_per_feed,
            )
            cycles.append(
                Cycle({r.feed_url: r for r in results}, after_poll, pruned, stored(storage))
            )
            for n in range(farm.count):
                farm.version[n] += 1
        state = storage.get_feed(flood.url)
        assert state is not None
        sizes = [
            len(story.sources)
            for story in storage.recent_stories(1000)
            if any(source.feed_url in farm.urls for source in story.sources)
        ]
    return Scenario(flood.url, farm, cycles, state.retained_since, flood, sizes)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    folder = tmp_path_factory.mktemp("retention")
    # Whole seconds: RFC 822 dates carry no fraction, and the horizon is compared exactly.
    start = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0)
    with FarmServer() as server:
        farm = FeedFarm(server, count=FARM_FEEDS, entries=FARM_ENTRIES, group_size=2, start=start)
        flood = FloodFeed(server, start)
        path = farm.write_config(folder, {"max_entries_per_feed": str(MAX_ENTRIES)})
        path.write_text(path.read_text() + f"  - url: {flood.url}\n    name: flood\n")
        yield asyncio.run(run_cycles(path, farm, flood))


def test_the_flood_feed_stays_at_its_bound(scenario: Scenario) -> None:
    for number, cycle in enumerate(scenario.cycles):
        poll_stored = len(cycle.stored_after_poll[scenario.flood_url])
        assert poll_stored == (DOC_ENTRIES if number == 0 else MAX_ENTRIES + PER_POLL)
        assert len(cycle.stored_after_prune[scenario.flood_url]) == MAX_ENTRIES
        # The newest entries are the ones kept.
        newest = {item.guid for item in scenario.flood.items(number)[:MAX_ENTRIES]}
        assert cycle.stored_after_prune[scenario.flood_url] == newest


def test_no_pruned_entry_is_ever_stored_again(scenario: Scenario) -> None:
    pruned: set[str] = set()
    for number, cycle in enumerate(scenario.cycles):
        flood = cycle.stored_after_poll[scenario.flood_url]
        assert not flood & pruned, sorted(flood & pruned)[:5]
        # Only the entries the feed gained since the last poll were new.
        assert cycle.results[scenario.flood_url].new == (DOC_ENTRIES if number == 0 else PER_POLL)
        pruned |= flood - cycle.stored_after_prune[scenario.flood_url]
    # Every poll after the first served entries pruned before; none came back.
    assert len(pruned) == DOC_ENTRIES - MAX_ENTRIES + (CYCLES - 1) * PER_POLL
    # The horizon: the newest publication time among them.
    newest_pruned = max(int(guid.removeprefix("flood-")) for guid in pruned)
    assert scenario.storage_horizon == scenario.flood.start + newest_pruned * EVENT_SPACING


def test_prune_counts_what_it_removed(scenario: Scenario) -> None:
    removed = [cycle.pruned.entries for cycle in scenario.cycles]
    assert removed == [DOC_ENTRIES - MAX_ENTRIES] + [PER_POLL] * (CYCLES - 1)
    # Each flood entry was a story of its own (no other outlet reports it).
    assert [cycle.pruned.stories for cycle in scenario.cycles] == removed


def test_the_other_feeds_keep_flowing_and_lose_nothing(scenario: Scenario) -> None:
    farm = scenario.farm
    for number, cycle in enumerate(scenario.cycles):
        for n, url in enumerate(farm.urls):
            result = cycle.results[url]
            assert result.error is None
            assert result.new == (FARM_ENTRIES if number == 0 else 1)
            served = {item.guid for v in range(number + 1) for item in farm.items(n, v)}
            assert cycle.stored_after_poll[url] == served
            assert cycle.stored_after_prune[url] == served
    assert scenario.cycles[-1].pruned.entries == PER_POLL  # the flood feed's alone
    # Every event of a group of two feeds is one story citing both.
    events = (FARM_FEEDS // 2) * (FARM_ENTRIES + CYCLES - 1)
    assert scenario.farm_story_sizes == [2] * events
