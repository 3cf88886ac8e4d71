"""Records the storage returns beyond those in ``aggregator.types``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

CorrectionKind = Literal["split", "merge"]


@dataclass(frozen=True, slots=True)
class Correction:
    """A manual correction of the matcher, remembered so later matching respects it.

    ``split``: entry (``feed_url``, ``entry_id``) was moved out of ``story_id`` into
    ``target_story_id`` and must not rejoin ``story_id``.
    ``merge``: every entry of ``story_id`` was moved into ``target_story_id``; ``story_id`` is
    retired and assignments naming it are redirected to ``target_story_id``.
    """

    id: int
    kind: CorrectionKind
    story_id: str
    target_story_id: str
    created: datetime
    feed_url: str | None = None
    entry_id: str | None = None


@dataclass(frozen=True, slots=True)
class PruneResult:
    """What one ``Storage.prune`` removed: entries past a bound, and stories left empty."""

    entries: int = 0
    stories: int = 0

    def __add__(self, other: PruneResult) -> PruneResult:
        return PruneResult(self.entries + other.entries, self.stories + other.stories)
