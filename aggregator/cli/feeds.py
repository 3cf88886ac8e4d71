"""``aggregator feeds``: the feeds' health, and managing feeds.yml from the command line."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

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
from aggregator.config import Config
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
    name: Annotated[
        str | None, typer.Option(help="A display name (default: the feed's own title).")
    ] = None,
    tag: Annotated[list[str] | None, typer.Option(help="A tag (repeat for several).")] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Add a feed even when it is malformed.")
    ] = False,
) -> None:
    """Check that a feed fetches and parses, then append it to feeds.yml (comments kept)."""
    from aggregator.feedlist import FoundFeed, add_feed_to_config, find_feed, suggest_url
    from aggregator.runtime import make_fetcher

    config = load()
    if urlsplit(url.strip()).scheme not in ("http", "https"):
        meant = suggest_url(url)
        hint = f"; did you mean {meant} ?" if meant else ""
        fail(f"{url!r} is not an http or https URL{hint}", EXIT_BAD_INPUT)

    async def find() -> FoundFeed:
        async with make_fetcher(config) as fetcher:
            return await find_feed(fetcher, url)

    found: FoundFeed = run_async(find())
    if found.parsed.warning and not force:
        fail(
            f"{found.url} is malformed: {found.parsed.warning}\n"
            f"(`aggregator inspect {found.url}` shows what can be read of it; "
            f"`aggregator feeds add --force` adds it anyway)",
            EXIT_BAD_INPUT,
        )
    name = name or found.parsed.title
    try:
        add_feed_to_config(config.path, found.url, name=name, tags=tuple(tag or ()))
    except ConfigError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    note = "" if found.url == url else f" (found on {url})"
    named = f" as {name!r}" if name else ""
    out.print(f"added {found.url}{note}{named} to {config.path}", markup=False, highlight=False)


@feeds_app.command("remove")
def feeds_remove(
    url_or_name: Annotated[
        str, typer.Argument(help="The feed's URL, or its name as `aggregator feeds` shows it.")
    ],
) -> None:
    """Remove a feed from feeds.yml (its stored entries and stories stay)."""
    from aggregator.feedlist import remove_feed_from_config

    config = load()
    wanted = url_or_name.strip()
    configured = any(f.url == wanted or f.name == wanted for f in config.feeds)
    shown = [] if configured else _urls_shown_as(config, wanted)
    if len(shown) > 1:
        fail(f"{wanted!r} names several feeds: {', '.join(shown)}", EXIT_BAD_INPUT)
    try:
        removed = remove_feed_from_config(config.path, shown[0] if shown else wanted)
    except ConfigError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    out.print(f"removed {removed} from {config.path}", markup=False, highlight=False)


def _urls_shown_as(config: Config, name: str) -> list[str]:
    """The configured feeds that ``aggregator feeds`` shows as ``name``: a feed without a
    name in feeds.yml is shown by its own title, which only the database knows."""
    from aggregator.storage import database_url

    url = database_url(config.settings.storage_url)
    if url.get_backend_name() == "sqlite" and not Path(str(url.database or "")).exists():
        return []  # never polled: no titles known, and no database to create for asking
    storage = open_storage_or_exit(config)
    try:
        known = storage.list_feeds(include_inactive=True)
    finally:
        storage.close()
    configured = {f.url for f in config.feeds}
    return [f.url for f in known if f.url in configured and f.display_name == name]


@feeds_app.command("import-opml")
def feeds_import_opml(
    file: Annotated[Path, typer.Argument(help="An OPML subscription list.")],
) -> None:
    """Add every feed of an OPML file to feeds.yml (categories become tags); list what was
    skipped and why."""
    from aggregator.feedlist import import_opml_report

    config = load()
    try:
        report = import_opml_report(file, config.path)
    except ConfigError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    for url, reason in report.skipped:
        out.print(f"skipped {url}: {reason}", markup=False, highlight=False, soft_wrap=True)
    skipped = f", skipped {len(report.skipped)}" if report.skipped else ""
    out.print(
        f"imported {len(report.added)} new feeds into {config.path}{skipped}",
        markup=False,
        highlight=False,
    )


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
