"""Pure decisions about a feed's entries: which are new, which the outlet edited.

No I/O: given the entries of one fetched feed and the content hashes already stored for it,
return what to insert and what to update. Tested exhaustively with named cases.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from aggregator.types import Entry


@dataclass(frozen=True, slots=True)
class EntryChanges:
    """What one refresh changes: ``new`` to insert (and match), ``changed`` to update in place.

    ``pruned``: entries not stored although unknown, because they are no newer than the
    feed's retention horizon (pruned before, or as old as what was).
    """

    new: tuple[Entry, ...]
    changed: tuple[Entry, ...]
    unchanged: int
    duplicates: int
    pruned: int = 0


def decide_changes(
    entries: Sequence[Entry],
    known_hashes: Mapping[str, str],
    retained_since: datetime | None = None,
) -> EntryChanges:
    """Split a feed's entries into new, changed and unchanged.

    An id repeated inside one feed document keeps its first occurrence (feeds list newest
    first, and the first copy is the one readers see); later copies count as duplicates.
    New entries come back oldest first so matching sees the story grow in publication order.

    ``retained_since`` is the feed's horizon (``FeedState.retained_since``): an entry not
    stored and published at or before it counts as ``pruned`` and is left out. Storage pruned
    entries up to it, and one that is still in the document would otherwise come back as new
    at every poll, be stored and be pruned again. Entries already stored are never skipped.
    """
    seen: set[str] = set()
    new: list[Entry] = []
    changed: list[Entry] = []
    unchanged = duplicates = pruned = 0
    for entry in entries:
        if entry.entry_id in seen:
            duplicates += 1
            continue
        seen.add(entry.entry_id)
        stored = known_hashes.get(entry.entry_id)
        if stored is None:
            if retained_since is not None and entry.published <= retained_since:
                pruned += 1
            else:
                new.append(entry)
        elif stored != entry.content_hash:
            changed.append(entry)
        else:
            unchanged += 1
    new.sort(key=lambda e: (e.published, e.entry_id))
    return EntryChanges(tuple(new), tuple(changed), unchanged, duplicates, pruned)
