"""The storage contract. Every backend (SQLite, PostgreSQL) implements ``Storage``.

Contract, for every method:

- all datetimes given and returned are timezone-aware UTC;
- any backend failure raises ``StorageError`` with the original exception chained;
- ``store_refresh`` is one transaction: a feed's new state (ETag, Last-Modified, next due time)
  is never committed without the entries and story links of the same refresh, so a crash at any
  moment leaves either the old state with the old entries or the new state with the new entries;
- entries are unique per (feed URL, entry id); a changed entry is updated in place and keeps its
  story;
- a feed removed from feeds.yml becomes inactive; its entries and stories stay (until
  ``prune`` removes them like any other feed's).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Protocol

from aggregator.storage.records import Correction, CorrectionKind, PruneResult
from aggregator.types import Entry, FeedRefresh, FeedSpec, FeedState, StoredEntry, Story


class Storage(Protocol):
    def close(self) -> None:
        """Release connections. Safe to call twice."""

    def schema_version(self) -> int:
        """The applied schema version (migrations run when the storage is opened)."""

    def sync_feeds(self, feeds: Sequence[FeedSpec], now: datetime) -> None:
        """Make the stored feed list match the configuration.

        New feeds are inserted, due at ``now``; known feeds get the configured name, tags,
        priority and interval (and become active again); stored feeds absent from ``feeds``
        become inactive.
        """

    def list_feeds(self, *, include_inactive: bool = False) -> list[FeedState]:
        """Every (active) feed, ordered by URL."""

    def get_feed(self, url: str) -> FeedState | None:
        """One feed by its configured URL, or None."""

    def due_feeds(self, now: datetime) -> list[FeedState]:
        """Active feeds whose next due time is at or before ``now`` (or never polled)."""

    def entry_hashes(self, feed_url: str, entry_ids: Collection[str]) -> dict[str, str]:
        """``{entry_id: content_hash}`` for the given ids already stored for this feed."""

    def entries_since(self, since: datetime) -> list[StoredEntry]:
        """Entries published at or after ``since`` with their story links, oldest first.

        Used to rebuild the matcher's index of the time window at start-up.
        """

    def window_start(self, since: datetime, max_entries: int) -> datetime:
        """``since``, or the publication time of the ``max_entries``-th newest entry published
        since then when there are more: where a match index bounded to ``max_entries``
        starts loading, rather than reading entries it would drop at once."""

    def window_page(
        self, since: datetime, after: tuple[datetime, str, str] | None, limit: int
    ) -> list[tuple[Entry, str]]:
        """Up to ``limit`` entries published at or after ``since`` with their story ids,
        oldest first (then by feed URL and entry id), starting after the entry whose
        (published, feed URL, entry id) is ``after``.

        Loads the match index page by page: only the fields the matcher reads, and never the
        whole window in memory at once.
        """

    def store_refresh(self, refresh: FeedRefresh) -> None:
        """Write one feed refresh (state, new entries with their stories, edited entries)
        in a single transaction. ``failures`` becomes 0 when ``state.error`` is None and is
        incremented otherwise. Stories named by new-story assignments are created, and so is
        a story an assignment joins that ``prune`` removed meanwhile; the
        ``updated`` time of every story touched becomes ``state.last_polled`` and its rank (see
        ``front_page``) is recomputed.
        """

    def store_refreshes(self, refreshes: Sequence[FeedRefresh]) -> None:
        """Write several refreshes in one transaction, all or none (the same rules as
        ``store_refresh`` for each). Used to record many unchanged feeds' polls at once."""

    def recent_stories(
        self, limit: int, *, min_sources: int = 1, tag: str | None = None
    ) -> list[Story]:
        """The ``limit`` most recently updated stories (newest first, then by id, descending).

        ``min_sources`` keeps stories whose entries come from at least that many distinct
        feeds (outlets; two entries of one feed count once); ``tag`` keeps stories with at
        least one source from a feed carrying that tag. A story emptied by a merge is never
        listed. Each story carries its earliest sources, at most ``MAX_SOURCES_LOADED``
        (``aggregator.storage.listing``), and in ``more_sources`` how many it has beyond them.
        """

    def front_page(
        self,
        limit: int,
        *,
        offset: int = 0,
        min_sources: int = 1,
        tag: str | None = None,
        query: str | None = None,
    ) -> list[Story]:
        """Up to ``limit`` stories by stored rank, highest first, then by id, descending;
        the first ``offset`` of them skipped (paging).

        The rank is ``aggregator.stories.story_rank`` of the story's earliest report (over its
        entries, the earlier of published and first seen) and its number of outlets (distinct
        feeds), kept current by every write that changes a story's entries; it never depends
        on the clock, so pages are stable between requests. ``min_sources`` and ``tag`` filter
        as in ``recent_stories``. ``query`` is a full-text search: a story matches when one of
        its entries' title and summary together contain every word of the query as a whole
        word, case ignored, accents not, no stemming; the query is cut into words (letters and
        digits; at most ``MAX_QUERY_WORDS``, longer than ``MAX_WORD_CHARS`` dropped, both in
        ``aggregator.storage.search``) and nothing in it is read as an operator. None, blank or
        a query of punctuation only searches nothing (no filter). Sources as in
        ``recent_stories``; a story emptied by a merge is never listed.
        """

    def count_stories(
        self, *, min_sources: int = 1, tag: str | None = None, query: str | None = None
    ) -> int:
        """How many stories ``front_page`` lists in all with the same filters, without
        loading them ("N stories" over a page, the stored-story inventory)."""

    def get_story(self, story_id: str) -> Story | None:
        """One story with its sources (bounded as in ``recent_stories``) and each source's
        match score, evidence and summary; an id retired by a merge gives the survivor."""

    # -- manual corrections ------------------------------------------------------------------

    def record_split(self, feed_url: str, entry_id: str, new_story_id: str, now: datetime) -> None:
        """Move one entry into a new story and remember it must not rejoin the old one.

        The entry keeps its score; its evidence becomes ``{"rule": "manual_split",
        "split_from": <old story id>, "matched": <its previous evidence>}``. Both stories'
        ranks are recomputed.
        """

    def record_merge(self, story_a: str, story_b: str, now: datetime) -> None:
        """Move every entry of ``story_b`` into ``story_a`` (whose id survives); remember it.

        A merge by hand (``aggregator stories merge``): each moved entry keeps its score and its
        evidence becomes ``{"rule": "manual_merge", "merged_from": story_b, "matched":
        <previous>}``. The matcher's own merges (``FeedRefresh.story_merges``) say
        ``"story_merge"`` instead. ``story_a``'s rank is recomputed.
        """

    def corrections(self, after: int = 0, kind: CorrectionKind | None = None) -> list[Correction]:
        """The corrections whose id is above ``after`` (every one by default), of ``kind`` only
        if given, oldest first, for the matcher to respect: splits and merges by hand, and the
        matcher's own merges."""

    def newest_correction_id(self) -> int:
        """The id of the newest correction (0 before any)."""

    def surviving_stories(self, story_ids: Collection[str]) -> dict[str, str]:
        """``{story id: the story it was merged into}`` for those of ``story_ids`` retired by
        merges (chains followed to the end); ids not retired are left out."""

    def find_entries(self, ident: str) -> list[tuple[str, str]]:
        """(feed URL, entry id) of the entries whose id, canonical URL or link is ``ident``."""

    # -- retention ---------------------------------------------------------------------------

    def prune(
        self, now: datetime, *, retention: timedelta, max_entries_per_feed: int
    ) -> PruneResult:
        """Remove every entry first seen before ``now - retention``, and every entry of a feed
        beyond its newest ``max_entries_per_feed`` (newest by published, then first seen, then
        entry id), of active and inactive feeds alike; return how many entries and stories
        went. ``ValueError`` unless both bounds are positive.

        With an entry go its story link and its full-text index row (``front_page`` no longer
        finds it). Every story that lost entries has its rank recomputed from those left; a
        story left with no entry is deleted, unless a correction names it (so ``get_story`` of
        a merged-away id and the matcher's corrections keep resolving). Each feed's
        ``retained_since`` moves forward (never back) to the newest ``published`` among its
        removed entries: the horizon before which the refresh stores no new entry of the feed.

        Never one long transaction: feed by feed, a bounded batch of entries per transaction,
        so refreshes interleave (a crash loses no more than the batch under way, which the next
        call removes). Idempotent: calling it again, from this worker or another sharing the
        database, removes only what became due since.
        """

    # -- several workers ---------------------------------------------------------------------

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``: PostgreSQL storage may be shared by many workers."""

    @property
    def url(self) -> str:
        """The database URL, password included: another process opens the same database
        with it (see ``shared_between_processes``)."""

    def claim_due_feeds(
        self, worker: str, now: datetime, lease: timedelta, limit: int
    ) -> list[FeedState]:
        """Lease up to ``limit`` due feeds to ``worker`` until ``now + lease``; each feed goes to
        one claimer until ``store_refresh`` records its poll or the lease expires."""

    def release_claims(self) -> int:
        """Release every feed claim; return how many there were. Only for the one process
        polling an SQLite database, at start-up: any claim then was left by a process that
        ended before recording its poll."""

    def request_polls(self, now: datetime) -> int:
        """Make every active feed not known gone due at ``now`` (``aggregator poll`` beside a
        running service); return how many feeds that is."""

    def entries_after(self, seq: int) -> tuple[list[StoredEntry], int]:
        """Entries written after store sequence ``seq`` and the newest sequence number."""

    def newest_seq(self) -> int:
        """The newest store sequence number (0 before any entry): where ``entries_after``
        starts to see only what is written from now on."""

    def matching_lock(self) -> AbstractContextManager[None]:
        """Serialise match-and-store across every worker sharing this database."""

    def publish_lock(self) -> AbstractContextManager[bool]:
        """Yield True when this worker may publish now, False when another one is."""
