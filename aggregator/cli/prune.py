"""``aggregator prune``: remove what is past the retention bounds once, now."""

from __future__ import annotations

from datetime import UTC, datetime

from aggregator.cli._common import EXIT_RUNTIME, app, fail, load, open_storage_or_exit, out
from aggregator.config import format_duration
from aggregator.exceptions import AggregatorError


@app.command()
def prune() -> None:
    """Remove entries past settings.retention or beyond a feed's max_entries_per_feed, and
    the stories left empty; print how many. The service does this every hour by itself.

    Exits 1 when storage fails.
    """
    config = load()
    s = config.settings
    storage = open_storage_or_exit(config)
    try:
        result = storage.prune(
            datetime.now(UTC), retention=s.retention, max_entries_per_feed=s.max_entries_per_feed
        )
    except AggregatorError as exc:
        fail(f"error: {exc}", EXIT_RUNTIME)
    finally:
        storage.close()
    out.print(
        f"pruned {result.entries} entries and {result.stories} stories left empty "
        f"(retention {format_duration(s.retention)}, at most {s.max_entries_per_feed} entries "
        f"per feed)",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
