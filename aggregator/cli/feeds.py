"""``aggregator feeds``: the feeds' health, and managing feeds.yml from the command line."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from aggregator.cli._common import (
    EXIT_BAD_INPUT,
    fail,
    feeds_app,
    load,
    open_storage_or_exit,
    out,
    run_async,
    short_time,
)
from aggregator.exceptions import ConfigError


@feeds_app.callback(invoke_without_command=True)
def feeds(ctx: typer.Context) -> None:
    """Each feed's status: last poll, HTTP status, error, failures, next due."""
    if ctx.invoked_subcommand is not None:
        return
    from aggregator.health import feed_notes

    config = load()
    storage = open_storage_or_exit(config)
    try:
        storage.sync_feeds(config.feeds, datetime.now().astimezone())
        known = storage.list_feeds()
    finally:
        storage.close()
    table = Table("feed", "last poll", "status", "failures", "next due", "error / note")
    for feed in known:
        note = "; ".join(feed_notes(feed))
        # Text cells: a feed's name and error are shown as written, never read as markup.
        table.add_row(
            Text(feed.display_name),
            short_time(feed.last_polled),
            str(feed.status) if feed.status is not None else "-",
            str(feed.failures),
            short_time(feed.next_due),
            Text(note),
        )
    out.print(table)


@feeds_app.command("add")
def feeds_add(
    url: Annotated[str, typer.Argument(help="A feed URL, or a web page that links to its feed.")],
    name: Annotated[str | None, typer.Option(help="A display name for the outlet.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="A tag (repeat for several).")] = None,
) -> None:
    """Check that a feed fetches and parses, then append it to feeds.yml (comments kept)."""
    from aggregator.feedlist import add_feed_to_config, discover_feed
    from aggregator.runtime import make_fetcher

    config = load()

    async def find() -> str:
        async with make_fetcher(config) as fetcher:
            return await discover_feed(fetcher, url)

    feed_url = run_async(find())
    try:
        add_feed_to_config(config.path, feed_url, name=name, tags=tuple(tag or ()))
    except ConfigError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    note = "" if feed_url == url else f" (found on {url})"
    out.print(f"added {feed_url}{note} to {config.path}", markup=False, highlight=False)


@feeds_app.command("remove")
def feeds_remove(
    url_or_name: Annotated[str, typer.Argument(help="The feed's URL or its name.")],
) -> None:
    """Remove a feed from feeds.yml (its stored entries and stories stay)."""
    from aggregator.feedlist import remove_feed_from_config

    config = load()
    try:
        removed = remove_feed_from_config(config.path, url_or_name)
    except ConfigError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    out.print(f"removed {removed} from {config.path}", markup=False, highlight=False)


@feeds_app.command("import-opml")
def feeds_import_opml(
    file: Annotated[Path, typer.Argument(help="An OPML subscription list.")],
) -> None:
    """Add every feed of an OPML file to feeds.yml (categories become tags)."""
    from aggregator.feedlist import import_opml

    config = load()
    try:
        added = import_opml(file, config.path)
    except ConfigError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    out.print(f"imported {len(added)} new feeds into {config.path}", markup=False)


@feeds_app.command("export-opml")
def feeds_export_opml(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Print the configured feeds as OPML 2.0 (tags become categories)."""
    from aggregator.feedlist import export_opml

    data = export_opml(load())
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        output.write_bytes(data)
