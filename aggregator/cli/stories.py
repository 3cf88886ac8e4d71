"""Commands that read and correct the merged stories: stories, story, split, merge."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from aggregator.cli._common import (
    EXIT_BAD_INPUT,
    app,
    fail,
    load,
    open_storage_or_exit,
    out,
    print_json_line,
    print_stories,
    story_to_json,
)

if TYPE_CHECKING:
    from aggregator.storage.sql import SqlStorage


@app.command()
def stories(
    limit: Annotated[int, typer.Option(min=1, help="How many stories, newest first.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """List the merged stories with their sources."""
    config = load()

    storage = open_storage_or_exit(config)
    try:
        found = storage.recent_stories(limit)
    finally:
        storage.close()
    if as_json:
        for story in found:
            print_json_line(story_to_json(story))
        return
    print_stories(found)


# Ids that one prefix may match before the error stops listing them.
SHOWN_CANDIDATES = 5


@app.command()
def story(
    story_id: Annotated[str, typer.Argument(help="The story id, or its first characters.")],
) -> None:
    """Show one story, each of its sources and why it joined."""
    config = load()

    storage = open_storage_or_exit(config)
    try:
        found = storage.get_story(story_id)
        if found is None and story_id:
            candidates = _ids_starting_with(storage, story_id)
            if len(candidates) > 1:
                shown = ", ".join(candidates[:SHOWN_CANDIDATES])
                more = ", ..." if len(candidates) > SHOWN_CANDIDATES else ""
                fail(
                    f"{story_id!r} is the start of several story ids ({shown}{more}); "
                    f"give more characters",
                    EXIT_BAD_INPUT,
                )
            if candidates:
                found = storage.get_story(candidates[0])
    finally:
        storage.close()
    if found is None:
        fail(f"no story with id {story_id!r}", EXIT_BAD_INPUT)
    print_stories([found], explain=True)


def _ids_starting_with(storage: SqlStorage, prefix: str) -> list[str]:
    """Story ids beginning with ``prefix`` (up to one more than are shown)."""
    from sqlalchemy import select

    from aggregator.storage.schema import stories as table

    query = (
        select(table.c.id)
        .where(table.c.id.startswith(prefix, autoescape=True))
        .order_by(table.c.id)
        .limit(SHOWN_CANDIDATES + 1)
    )
    with storage.engine.connect() as conn:
        return [str(row[0]) for row in conn.execute(query)]


@app.command()
def split(
    entry: Annotated[str, typer.Argument(help="The entry's id, article URL or link.")],
) -> None:
    """Take an entry out of its story into a story of its own; later matching respects it."""
    from aggregator.types import new_story_id

    config = load()
    storage = open_storage_or_exit(config)
    try:
        found = storage.find_entries(entry)
        if len(found) != 1:
            problem = "no entry" if not found else f"{len(found)} entries"
            fail(f"{problem} with id, URL or link {entry!r}", EXIT_BAD_INPUT)
        (feed_url, entry_id) = found[0]
        story_id = new_story_id()
        try:
            storage.record_split(feed_url, entry_id, story_id, datetime.now().astimezone())
        except (LookupError, ValueError) as exc:
            fail(f"cannot split {entry!r}: {exc}", EXIT_BAD_INPUT)
    finally:
        storage.close()
    out.print(f"{entry} now forms story {story_id}", markup=False, highlight=False)


@app.command()
def merge(
    story_a: Annotated[str, typer.Argument(help="The story that keeps its id.")],
    story_b: Annotated[str, typer.Argument(help="The story merged into it.")],
) -> None:
    """Merge story B into story A; later matching respects it."""

    config = load()
    storage = open_storage_or_exit(config)
    try:
        storage.record_merge(story_a, story_b, datetime.now().astimezone())
    except (LookupError, ValueError) as exc:
        fail(f"cannot merge {story_b!r} into {story_a!r}: {exc}", EXIT_BAD_INPUT)
    finally:
        storage.close()
    out.print(f"merged {story_b} into {story_a}", markup=False, highlight=False)
