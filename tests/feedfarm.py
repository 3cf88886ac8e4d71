"""Many small, realistic RSS feeds on one loopback server, for end-to-end tests.

A ``FeedFarm`` serves ``count`` feeds from a ``LoopbackServer`` (which records every request
with its arrival time). Each feed's document is a known function of its current *version*, so a
test can tell from a stored ETag or body hash exactly which entries must be stored with it::

    with FarmServer() as server:
        farm = FeedFarm(server, count=30, entries=20, group_size=3, start=now)
        farm.bump(rng, fraction=0.3)          # some feeds publish a new version
        farm.items(7, farm.version[7])        # what feed 7 serves now
        farm.write_config(folder, {"deadline": "5s"}, interval="1h")

Feeds are grouped: the ``group_size`` feeds of one group report the same events with word-for-word
identical headlines and summaries (different outlets, links and entry ids), and events of
different groups or positions share no content words. So a correct matcher must put each event
into exactly one story citing every feed of its group, whatever the matching tweaks of the day.

Version ``v`` of a feed holds the events ``v .. v + entries - 1`` (one new event per version, the
oldest drops off), and the summaries of the ``EDITED_TAIL`` oldest events of the window carry an
"updated" sentence, so each new version also edits entries in place.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

from servers import Handler, LoopbackServer, RecordedRequest, Reply

# Invented words built from these syllables cannot collide with the matcher's stop words and give
# every event its own vocabulary: 20 x 20 x 20 = 8000 three-syllable words.
_ONSETS: tuple[str, ...] = ("ba", "ko", "mi", "tu", "re", "sa", "lo", "ni", "ve", "da")
_ONSETS += ("pe", "gu", "fi", "zo", "ha", "ju", "wy", "xe", "qa", "ru")
_VOCABULARY = tuple(a + b + c for a in _ONSETS for b in _ONSETS for c in _ONSETS)
# Words per headline and per summary: the length of a real wire headline and lead sentence.
TITLE_WORDS = 8
SUMMARY_WORDS = 24
# How many of the oldest events of a version's window carry the "updated" sentence.
EDITED_TAIL = 3
UPDATED_NOTE = " Updated with further details from officials."
# Minutes between consecutive events' publication times.
EVENT_SPACING = timedelta(minutes=2)


# Pending connections the farm's listening socket queues. socketserver's default of 5 is far
# below the 16-64 connections one poll cycle opens at once: the kernel drops the SYNs beyond
# it, and the client's retransmission after 1 s shows up as a connect timeout.
LISTEN_BACKLOG = 1024


class FarmServer(LoopbackServer):
    """A ``LoopbackServer`` whose socket queues ``LISTEN_BACKLOG`` pending connections."""

    def __init__(self, routes: Mapping[str, Reply | Handler] | None = None) -> None:
        super().__init__(routes)
        # listen() again on a listening socket only changes its backlog.
        self._httpd.socket.listen(LISTEN_BACKLOG)


@dataclass(frozen=True, slots=True)
class Item:
    """One RSS item as served."""

    guid: str
    title: str
    summary: str
    link: str
    published: datetime


def event_words(group: int, event: int, count: int, salt: str) -> list[str]:
    """Words of one event's text: a deterministic sample of the invented vocabulary."""
    seed = int.from_bytes(hashlib.sha256(f"{group}/{event}/{salt}".encode()).digest()[:8], "big")
    return random.Random(seed).sample(_VOCABULARY, count)


def event_title(group: int, event: int) -> str:
    """The headline every feed of ``group`` gives event ``event``."""
    return " ".join(event_words(group, event, TITLE_WORDS, "title")).capitalize()


def event_summary(group: int, event: int, edited: bool) -> str:
    """The summary of the event; ``edited`` appends the update sentence."""
    text = " ".join(event_words(group, event, SUMMARY_WORDS, "summary")).capitalize() + "."
    return text + (UPDATED_NOTE if edited else "")


def rss_document(channel: str, items: Sequence[Item]) -> bytes:
    """An RSS 2.0 document for ``items``."""
    body = "".join(
        f"<item><guid isPermaLink='false'>{escape(i.guid)}</guid><title>{escape(i.title)}</title>"
        f"<description>{escape(i.summary)}</description><link>{escape(i.link)}</link>"
        f"<pubDate>{format_datetime(i.published)}</pubDate></item>"
        for i in items
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>{escape(channel)}</title><link>https://{escape(channel)}.example/</link>"
        f"<description>News from {escape(channel)}</description>{body}</channel></rss>"
    ).encode()


class FeedFarm:
    """``count`` feeds served at ``/feed/<n>.xml``; see the module docstring."""

    def __init__(
        self,
        server: LoopbackServer,
        *,
        count: int,
        entries: int,
        group_size: int,
        start: datetime,
        delay: float = 0.0,
    ) -> None:
        self.server = server
        self.count = count
        self.entries = entries
        self.group_size = group_size
        self.start = start
        self.delay = delay
        self.version = [0] * count
        for n in range(count):
            server.route(self.path(n), self._handler(n))

    def path(self, n: int) -> str:
        return f"/feed/{n}.xml"

    def url(self, n: int) -> str:
        return self.server.url(self.path(n))

    @property
    def urls(self) -> list[str]:
        return [self.url(n) for n in range(self.count)]

    def group(self, n: int) -> int:
        return n // self.group_size

    def outlet(self, n: int) -> str:
        return f"outlet{n}"

    def items(self, n: int, version: int) -> list[Item]:
        """The items feed ``n`` serves at ``version``, newest first."""
        group = self.group(n)
        found = []
        for event in range(version + self.entries - 1, version - 1, -1):
            found.append(
                Item(
                    guid=f"{self.outlet(n)}-e{event}",
                    title=event_title(group, event),
                    summary=event_summary(group, event, edited=event < version + EDITED_TAIL),
                    link=f"https://{self.outlet(n)}.example/g{group}/e{event}",
                    published=self.start + event * EVENT_SPACING,
                )
            )
        return found

    def body(self, n: int, version: int) -> bytes:
        return rss_document(self.outlet(n), self.items(n, version))

    def etag(self, n: int, version: int) -> str:
        return f'"f{n}-v{version}"'

    def parse_etag(self, etag: str) -> tuple[int, int]:
        """``(feed, version)`` of an ETag this farm sent."""
        feed, version = etag.strip('"').split("-")
        return int(feed.removeprefix("f")), int(version.removeprefix("v"))

    def body_hashes(self, n: int, up_to: int) -> dict[str, int]:
        """``{sha256 of the body: version}`` for versions ``0 .. up_to`` of feed ``n``."""
        return {hashlib.sha256(self.body(n, v)).hexdigest(): v for v in range(up_to + 1)}

    def bump(self, rng: random.Random, fraction: float) -> list[int]:
        """Give about ``fraction`` of the feeds a new version; return the feeds bumped."""
        bumped = [n for n in range(self.count) if rng.random() < fraction]
        for n in bumped:
            self.version[n] += 1
        return bumped

    def _handler(self, n: int) -> Handler:
        def reply(_request: RecordedRequest) -> Reply:
            version = self.version[n]  # read once: the body and its ETag always agree
            return Reply(body=self.body(n, version), etag=self.etag(n, version), delay=self.delay)

        return reply

    def requests(self) -> dict[str, list[float]]:
        """``{feed URL: [arrival times (monotonic)]}`` of every request to a farm feed."""
        times: dict[str, list[float]] = {url: [] for url in self.urls}
        for request in self.server.requests:
            url = self.server.url(request.path.split("?", 1)[0])
            if url in times:
                times[url].append(request.received_at)
        return times

    def write_config(
        self, folder: Path, settings: Mapping[str, str], *, interval: str = "1h"
    ) -> Path:
        """Write ``folder/feeds.yml`` naming every farm feed; ``settings`` are YAML scalars."""
        lines = ["settings:", "  allow_networks: ['127.0.0.0/8']"]
        lines += [f"  {key}: {value}" for key, value in settings.items()]
        lines.append("feeds:")
        for n in range(self.count):
            lines += [f"  - url: {self.url(n)}", f"    name: {self.outlet(n)}"]
            lines.append(f"    interval: {interval}")
        path = folder / "feeds.yml"
        path.write_text("\n".join(lines) + "\n")
        return path
