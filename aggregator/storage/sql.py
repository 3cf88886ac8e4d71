"""``SqlStorage``: the ``Storage`` contract on SQLAlchemy Core, for SQLite and PostgreSQL.

Transactions. Every public method runs in its own transaction and wraps SQLAlchemy and driver
errors in ``StorageError`` (cause chained). On SQLite the driver's own implicit transaction
handling is switched off and SQLAlchemy emits ``BEGIN`` itself: ``BEGIN IMMEDIATE`` for writes,
so a writer takes the write lock up front and waits (busy timeout) instead of failing midway
when another process writes too; plain ``BEGIN`` for reads, which WAL lets run beside a writer.

Several workers, one database. Polling is shared out with ``claim_due_feeds``: each due feed
is leased to one worker (``claimed_by``/``claim_expires``) until ``store_refresh`` records the
poll and releases it; a crashed worker's lease simply expires and the feed is claimed again.

Matching must see every entry stored before it, or two workers could each mint a story for the
same event. ``matching_lock()`` serialises the match-and-store step::

    with storage.matching_lock():
        fresh, seen = storage.entries_after(seen)  # what other workers stored meanwhile
        ...update the matcher's index, assign the new entries...
        storage.store_refresh(refresh)
        seen = storage.newest_seq()                # this worker's own writes: already indexed

On PostgreSQL the block is one transaction holding ``pg_advisory_xact_lock``: calls made from
the same thread inside it join that transaction (each in a savepoint, so a failed
``store_refresh`` undoes only itself and can be caught), everything commits when the block ends
and the lock is released by that commit, so the next holder sees all of it. An exception
escaping the block rolls the whole block back. Calls from other threads use their own
connections as usual. On SQLite (one process per database file) the lock is a process-wide
re-entrant lock per database and each call commits on its own.

``publish_lock()`` yields True to the one worker that may publish now and False to the others
(``pg_try_advisory_xact_lock`` on PostgreSQL, a non-blocking process-wide lock on SQLite).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import Connection, Engine, func, select

from aggregator.storage import listing, prune, queries, story_writes, writes
from aggregator.storage.engine import IMMEDIATE, translate_errors
from aggregator.storage.migrations import migrate
from aggregator.storage.records import Correction, CorrectionKind, PruneResult
from aggregator.storage.schema import schema_migrations
from aggregator.types import Entry, FeedRefresh, FeedSpec, FeedState, StoredEntry, Story

_L = TypeVar("_L", threading.Lock, threading.RLock)

# Keys of this project's PostgreSQL advisory locks (the migration lock is in migrations.py);
# arbitrary constants that only need to differ from each other.
MATCHING_LOCK_KEY = 0x6167_6772_0000_0002
PUBLISH_LOCK_KEY = 0x6167_6772_0000_0003

_registry_guard = threading.Lock()
_matching_locks: dict[str, threading.RLock] = {}
_publish_locks: dict[str, threading.Lock] = {}


def _process_lock(registry: dict[str, _L], key: str, factory: Callable[[], _L]) -> _L:
    """The one lock of ``registry`` for ``key`` in this process, created on first use."""
    with _registry_guard:
        return registry.setdefault(key, factory())


class SqlStorage:
    """Storage in one SQL database; see ``aggregator.storage.base.Storage`` for the contract."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._closed = False
        self._local = threading.local()
        key = engine.url.render_as_string(hide_password=False)
        self._matching = _process_lock(_matching_locks, key, threading.RLock)
        self._publishing = _process_lock(_publish_locks, key, threading.Lock)

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for tests and maintenance commands)."""
        return self._engine

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._engine.dialect.name

    @property
    def url(self) -> str:
        return self._engine.url.render_as_string(hide_password=False)

    # -- transactions -----------------------------------------------------------------------

    def _ambient(self) -> Connection | None:
        conn: Connection | None = getattr(self._local, "conn", None)
        return conn

    @contextmanager
    def _tx(self, action: str, *, write: bool) -> Iterator[Connection]:
        """A connection inside a transaction, committed on success, rolled back on error.

        Inside ``matching_lock`` on PostgreSQL the lock's transaction is joined, each call in a
        savepoint, so a failed call undoes only itself and leaves the transaction usable.
        """
        with translate_errors(action):
            ambient = self._ambient()
            if ambient is not None:
                with ambient.begin_nested():
                    yield ambient
                return
            with self._engine.connect() as conn:
                if write:
                    conn.execution_options(**{IMMEDIATE: True})
                with conn.begin():
                    yield conn

    def migrate(self, now: datetime | None = None) -> list[int]:
        """Apply pending migrations; returns the versions applied by this call."""
        with self._tx("migrate", write=True) as conn:
            return [m.version for m in migrate(conn, now)]

    # -- the Storage protocol ---------------------------------------------------------------

    def close(self) -> None:
        """Release connections. Safe to call twice."""
        if not self._closed:
            self._closed = True
            self._engine.dispose()

    def schema_version(self) -> int:
        """The highest applied migration version."""
        with self._tx("schema_version", write=False) as conn:
            versions = conn.execute(select(schema_migrations.c.version)).scalars().all()
            return max(versions, default=0)

    def sync_feeds(self, feeds: Sequence[FeedSpec], now: datetime) -> None:
        """Make the stored feed list match the configuration (see the protocol)."""
        with self._tx("sync_feeds", write=True) as conn:
            writes.sync_feeds(conn, feeds, now)

    def list_feeds(self, *, include_inactive: bool = False) -> list[FeedState]:
        """Every (active) feed, ordered by URL."""
        with self._tx("list_feeds", write=False) as conn:
            return queries.list_feeds(conn, include_inactive=include_inactive)

    def get_feed(self, url: str) -> FeedState | None:
        """One feed by its configured URL, or None."""
        with self._tx("get_feed", write=False) as conn:
            return queries.get_feed(conn, url)

    def due_feeds(self, now: datetime) -> list[FeedState]:
        """Active feeds due at ``now`` (or never polled), never-polled first."""
        with self._tx("due_feeds", write=False) as conn:
            return queries.due_feeds(conn, now)

    def entry_hashes(self, feed_url: str, entry_ids: Collection[str]) -> dict[str, str]:
        """``{entry_id: content_hash}`` for the given ids already stored for this feed."""
        with self._tx("entry_hashes", write=False) as conn:
            return queries.entry_hashes(conn, feed_url, entry_ids)

    def entries_since(self, since: datetime) -> list[StoredEntry]:
        """Entries published at or after ``since`` with their story links, oldest first."""
        with self._tx("entries_since", write=False) as conn:
            return queries.entries_since(conn, since)

    def window_start(self, since: datetime, max_entries: int) -> datetime:
        """Where the newest ``max_entries`` entries published since ``since`` begin."""
        with self._tx("window_start", write=False) as conn:
            return queries.window_start(conn, since, max_entries)

    def window_page(
        self, since: datetime, after: tuple[datetime, str, str] | None, limit: int
    ) -> list[tuple[Entry, str]]:
        """Up to ``limit`` linked entries published at or after ``since``, after ``after``."""
        with self._tx("window_page", write=False) as conn:
            return queries.window_page(conn, since, after, limit)

    def find_entries(self, ident: str) -> list[tuple[str, str]]:
        """(feed URL, entry id) of the entries whose id, canonical URL or link is ``ident``."""
        with self._tx("find_entries", write=False) as conn:
            return queries.find_entries(conn, ident)

    def entries_after(self, seq: int) -> tuple[list[StoredEntry], int]:
        """Entries (new or edited) written after store sequence ``seq``, in write order, and
        the newest sequence number. Lets a worker bring its match index up to date with what
        other workers stored; call it inside ``matching_lock`` for an exact answer.
        """
        with self._tx("entries_after", write=False) as conn:
            return queries.entries_after_seq(conn, seq)

    def newest_seq(self) -> int:
        """The newest store sequence number (0 before any entry)."""
        with self._tx("newest_seq", write=False) as conn:
            return queries.newest_seq(conn)

    def store_refresh(self, refresh: FeedRefresh) -> None:
        """Write one feed refresh in a single transaction (rules in ``writes.store_refresh``)."""
        with self._tx(f"store_refresh {refresh.feed_url}", write=True) as conn:
            writes.store_refresh(conn, refresh)

    def store_refreshes(self, refreshes: Sequence[FeedRefresh]) -> None:
        """Write several refreshes in one transaction: all or none."""
        if not refreshes:
            return
        with self._tx(f"store_refreshes ({len(refreshes)} feeds)", write=True) as conn:
            rest: Sequence[FeedRefresh] = refreshes
            if len({r.feed_url for r in refreshes}) == len(refreshes):
                # Feeds with nothing new only change their state: written together (see
                # writes.write_feed_states). A feed named twice keeps its writes in order.
                states = [(r.feed_url, r.state) for r in refreshes if r.state_only]
                writes.write_feed_states(conn, states)
                rest = [r for r in refreshes if not r.state_only]
            for refresh in rest:
                writes.store_refresh(conn, refresh)

    def recent_stories(
        self, limit: int, *, min_sources: int = 1, tag: str | None = None
    ) -> list[Story]:
        """The ``limit`` most recently updated stories, newest first (see ``Storage``)."""
        with self._tx("recent_stories", write=False) as conn:
            return listing.recent_stories(conn, limit, min_sources=min_sources, tag=tag)

    def front_page(
        self,
        limit: int,
        *,
        offset: int = 0,
        min_sources: int = 1,
        tag: str | None = None,
        query: str | None = None,
    ) -> list[Story]:
        """Stories by stored rank, highest first, filtered and searched (see ``Storage``)."""
        with self._tx("front_page", write=False) as conn:
            return listing.front_page(
                conn, limit, offset=offset, min_sources=min_sources, tag=tag, query=query
            )

    def count_stories(
        self, *, min_sources: int = 1, tag: str | None = None, query: str | None = None
    ) -> int:
        """How many stories ``front_page`` lists with these filters (see ``Storage``)."""
        with self._tx("count_stories", write=False) as conn:
            return listing.count_stories(conn, min_sources=min_sources, tag=tag, query=query)

    def get_story(self, story_id: str) -> Story | None:
        """One story with every source; an id retired by a merge gives the surviving story."""
        with self._tx("get_story", write=False) as conn:
            return listing.get_story(conn, story_id)

    # -- manual corrections -----------------------------------------------------------------

    def record_split(self, feed_url: str, entry_id: str, new_story_id: str, now: datetime) -> None:
        """Move one entry into the new story ``new_story_id`` and remember that it must not
        rejoin the story it left. ``LookupError`` for an unknown entry, ``ValueError`` when
        ``new_story_id`` is already taken."""
        with self._tx("record_split", write=True) as conn:
            story_writes.record_split(conn, feed_url, entry_id, new_story_id, now)

    def record_merge(self, story_a: str, story_b: str, now: datetime) -> None:
        """Move every entry of ``story_b`` into ``story_a`` (which keeps its id) and remember
        ``b -> a``: later assignments to ``b`` go to ``a`` and ``get_story(b)`` returns ``a``.
        ``LookupError`` for an unknown story, ``ValueError`` for ``a == b`` or a story already
        merged away."""
        with self._tx("record_merge", write=True) as conn:
            story_writes.record_merge(conn, story_a, story_b, now)

    def corrections(self, after: int = 0, kind: CorrectionKind | None = None) -> list[Correction]:
        """The corrections whose id is above ``after``, oldest first (see ``Storage``)."""
        with self._tx("corrections", write=False) as conn:
            return queries.list_corrections(conn, after, kind)

    def newest_correction_id(self) -> int:
        """The id of the newest correction (0 before any)."""
        with self._tx("newest_correction_id", write=False) as conn:
            return queries.newest_correction_id(conn)

    def surviving_stories(self, story_ids: Collection[str]) -> dict[str, str]:
        """``{story id: the story it was merged into}`` for those of ``story_ids`` retired by
        merges, chains followed to the end (see ``Storage``)."""
        with self._tx("surviving_stories", write=False) as conn:
            return queries.merge_targets(conn, story_ids)

    # -- retention ---------------------------------------------------------------------------

    def prune(
        self, now: datetime, *, retention: timedelta, max_entries_per_feed: int
    ) -> PruneResult:
        """Remove entries past either bound and the stories left empty (see ``Storage``).

        One read finds the feeds over a bound; each feed is then pruned ``PRUNE_BATCH``
        entries per write transaction (``storage.prune``), each under the matching lock, so
        no refresh links a new entry to a story while it is being removed.
        """
        if max_entries_per_feed < 1 or retention <= timedelta(0):
            raise ValueError(
                f"prune needs a positive retention and max_entries_per_feed, got "
                f"{retention} and {max_entries_per_feed}"
            )
        cutoff = now - retention
        with self._tx("prune: find feeds", write=False) as conn:
            doomed_feeds = prune.feeds_to_prune(conn, cutoff, max_entries_per_feed)
        total = PruneResult()
        for feed_url in doomed_feeds:
            with self._tx(f"prune {feed_url}", write=False) as conn:
                kept_from = prune.oldest_kept(conn, feed_url, max_entries_per_feed)
            while True:
                with self.matching_lock(), self._tx(f"prune {feed_url}", write=True) as conn:
                    batch = prune.prune_batch(conn, feed_url, cutoff, kept_from, prune.PRUNE_BATCH)
                total += batch
                if batch.entries < prune.PRUNE_BATCH:
                    break
        return total

    # -- several workers --------------------------------------------------------------------

    def claim_due_feeds(
        self, worker: str, now: datetime, lease: timedelta, limit: int
    ) -> list[FeedState]:
        """Lease up to ``limit`` due feeds to ``worker`` until ``now + lease``, due order.

        A feed is returned to one claimer only, until ``store_refresh`` records its poll
        (which releases the claim and moves ``next_due``) or the lease expires.
        """
        with self._tx("claim_due_feeds", write=True) as conn:
            return writes.claim_due_feeds(conn, worker, now, lease, limit)

    def release_claims(self) -> int:
        """Release every feed claim; return how many there were (see ``Storage``)."""
        with self._tx("release_claims", write=True) as conn:
            return writes.release_claims(conn)

    def request_polls(self, now: datetime) -> int:
        """Make every active feed not known gone due now, for the process polling this
        database to take at its next tick; return how many feeds that is."""
        with self._tx("request_polls", write=True) as conn:
            return writes.request_polls(conn, now)

    @contextmanager
    def matching_lock(self) -> Iterator[None]:
        """Hold the database-wide matching lock for the block (see the module docstring)."""
        if self.dialect != "postgresql":
            with self._matching:
                yield
            return
        if self._ambient() is not None:  # re-entered from the same thread: already held
            yield
            return
        with translate_errors("matching_lock"):
            conn = self._engine.connect()
            try:
                trans = conn.begin()
                conn.execute(select(func.pg_advisory_xact_lock(MATCHING_LOCK_KEY)))
            except BaseException:
                conn.close()
                raise
        self._local.conn = conn
        try:
            yield
            with translate_errors("matching_lock commit"):
                trans.commit()
        finally:
            self._local.conn = None
            conn.close()  # rolls back when the block raised; the lock goes with the transaction

    @contextmanager
    def publish_lock(self) -> Iterator[bool]:
        """Yield True when this worker holds the publishing lock, False when another does.

        Never waits: a worker that gets False skips publishing this round.
        """
        if self.dialect != "postgresql":
            acquired = self._publishing.acquire(blocking=False)
            try:
                yield acquired
            finally:
                if acquired:
                    self._publishing.release()
            return
        with translate_errors("publish_lock"):
            conn = self._engine.connect()
            try:
                conn.begin()
                got = conn.execute(select(func.pg_try_advisory_xact_lock(PUBLISH_LOCK_KEY)))
                acquired = bool(got.scalar_one())
            except BaseException:
                conn.close()
                raise
        try:
            yield acquired
        finally:
            conn.close()  # ends the transaction, releasing the lock
