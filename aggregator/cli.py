"""The ``aggregator`` command line.

Exit codes: 0 success; 1 a runtime failure (storage unavailable…); 2 bad input (an invalid
feeds.yml, a bad argument).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from aggregator import __version__
from aggregator.config import Config, load_config
from aggregator.exceptions import AggregatorError, ConfigError
from aggregator.runtime import open_runtime
from aggregator.types import Story
from aggregator.update import RefreshResult, summarise

app = typer.Typer(
    name="aggregator",
    help="Poll news feeds, merge the same story from many outlets, publish merged feeds.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
feeds_app = typer.Typer(help="Show the configured feeds and their health.")
app.add_typer(feeds_app, name="feeds")

out = Console()
err = Console(stderr=True)

EXIT_RUNTIME = 1
EXIT_BAD_INPUT = 2


class _State:
    config_path: Path | None = None


def _fail(message: str, code: int) -> NoReturn:
    # Plain text, never re-wrapped: error lines must stay greppable (file:line: key: problem).
    typer.echo(message, err=True)
    raise typer.Exit(code)


def _config() -> Config:
    try:
        return load_config(_State.config_path)
    except ConfigError as exc:
        _fail(str(exc), EXIT_BAD_INPUT)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _version(value: bool) -> None:
    if value:
        out.print(f"aggregator {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="The feeds.yml to use (default: $AGGREGATOR_CONFIG, else ./feeds.yml).",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug details.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    _State.config_path = config
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # httpx logs every request at INFO; our own poll line says more, once.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


@app.command()
def check() -> None:
    """Validate feeds.yml; exit 2 with the precise error when it is wrong."""
    config = _config()
    out.print(
        f"{config.path}: ok, {len(config.feeds)} feeds, storage {config.settings.storage_url}",
        markup=False,
        highlight=False,
    )


@app.command()
def run() -> None:
    """Run the service: poll every feed at its interval and publish merged feeds."""
    from aggregator.service import Service

    config = _config()

    async def main() -> None:
        async with open_runtime(config) as runtime:
            await Service(runtime).run()

    _run_async(main())


@app.command()
def poll() -> None:
    """Poll every feed once now, then publish the merged feeds."""
    config = _config()
    logging.getLogger("aggregator").setLevel(logging.WARNING)

    async def main() -> list[RefreshResult]:
        async with open_runtime(config) as runtime:
            feeds = runtime.storage.list_feeds()
            with Progress(
                TextColumn("polling"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.description}"),
                console=err,
                transient=True,
            ) as progress:
                task = progress.add_task("", total=len(feeds))

                def done(result: RefreshResult) -> None:
                    progress.update(task, advance=1, description=result.name[:40])

                results = await runtime.updater.refresh_many(feeds, on_done=done)
            runtime.publish()
            return results

    results = _run_async(main())
    for result in results:
        out.print(result.log_line(), markup=False, highlight=False)
    out.print(summarise(results), markup=False, highlight=False)


@app.command()
def stories(
    limit: Annotated[int, typer.Option(min=1, help="How many stories, newest first.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """List the merged stories with their sources."""
    config = _config()
    from aggregator.storage import open_storage

    storage = _open_storage(config, open_storage)
    try:
        found = storage.recent_stories(limit)
    finally:
        storage.close()
    if as_json:
        for story in found:
            out.print(json.dumps(story_to_json(story), ensure_ascii=False), soft_wrap=True)
        return
    print_stories(found)


@app.command()
def story(story_id: Annotated[str, typer.Argument(help="The story id.")]) -> None:
    """Show one story, each of its sources and why it joined."""
    config = _config()
    from aggregator.storage import open_storage

    storage = _open_storage(config, open_storage)
    try:
        found = storage.get_story(story_id)
    finally:
        storage.close()
    if found is None:
        _fail(f"no story with id {story_id!r}", EXIT_BAD_INPUT)
    print_stories([found], explain=True)


@feeds_app.callback(invoke_without_command=True)
def feeds(ctx: typer.Context) -> None:
    """Each feed's status: last poll, HTTP status, error, failures, next due."""
    if ctx.invoked_subcommand is not None:
        return
    config = _config()
    from aggregator.storage import open_storage

    storage = _open_storage(config, open_storage)
    try:
        storage.sync_feeds(config.feeds, datetime.now().astimezone())
        known = storage.list_feeds()
    finally:
        storage.close()
    table = Table("feed", "last poll", "status", "failures", "next due", "error / note")
    for feed in known:
        note = feed.error or ""
        if feed.moved_to:
            note = f"moved permanently to {feed.moved_to}. {note}".strip()
        table.add_row(
            feed.display_name,
            _short_time(feed.last_polled),
            str(feed.status) if feed.status is not None else "-",
            str(feed.failures),
            _short_time(feed.next_due),
            note,
        )
    out.print(table)


@app.command()
def inspect(
    sources: Annotated[list[str], typer.Argument(help="Feed URLs or local feed files.")],
) -> None:
    """Print the parsed, normalised entries of feeds as JSON lines (one object per entry)."""
    from aggregator.inspect import inspect_sources

    config = _config_or_defaults()
    for line in _run_async(inspect_sources(config, sources)):
        out.print(json.dumps(line, ensure_ascii=False), soft_wrap=True, markup=False)


@app.command()
def demo() -> None:
    """Serve bundled sample feeds on 127.0.0.1, poll them and print the merged stories."""
    from aggregator.demo import run_demo

    found = _run_async(run_demo())
    print_stories(found, explain=False)


def _config_or_defaults() -> Config:
    """The configuration, or built-in defaults when no feeds.yml exists (for ``inspect``)."""
    from aggregator.config import load_config_text

    try:
        return load_config(_State.config_path)
    except ConfigError as exc:
        if _State.config_path is None and not Path("feeds.yml").exists():
            return load_config_text("settings: {}\nfeeds: []\n", Path("feeds.yml").resolve())
        _fail(str(exc), EXIT_BAD_INPUT)


def _open_storage(config: Config, opener: Any) -> Any:
    try:
        return opener(config.settings.storage_url)
    except AggregatorError as exc:
        _fail(f"cannot open storage: {exc}", EXIT_RUNTIME)


def _run_async(coro: Any) -> Any:
    try:
        return asyncio.run(coro)
    except ConfigError as exc:
        _fail(str(exc), EXIT_BAD_INPUT)
    except AggregatorError as exc:
        _fail(f"error: {exc}", EXIT_RUNTIME)
    except KeyboardInterrupt:
        _fail("interrupted", 130)


def _short_time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value is not None else "-"


def story_to_json(story: Story) -> dict[str, Any]:
    return {
        "id": story.id,
        "title": story.title,
        "first_published": _iso(story.first_published),
        "updated": _iso(story.updated),
        "sources": [
            {
                "outlet": s.feed_name,
                "title": s.title,
                "url": s.url,
                "published": _iso(s.published),
                "score": s.score,
                "evidence": dict(s.evidence),
            }
            for s in story.sources
        ],
    }


def print_stories(found: Sequence[Story], *, explain: bool = False) -> None:
    if not found:
        out.print("no stories yet")
        return
    for story in found:
        out.print(
            f"[bold]{_escape(story.title)}[/bold]  [dim]{story.id} · "
            f"{len(story.sources)} source(s) · {_short_time(story.first_published)}[/dim]"
        )
        for source in story.sources:
            out.print(
                f"  - {_escape(source.feed_name)}: {_escape(source.title)}"
                f"  [dim]{_short_time(source.published)}[/dim]"
            )
            if source.url:
                out.print(f"    {_escape(source.url)}", highlight=False)
            if explain:
                reason = json.dumps(dict(source.evidence), ensure_ascii=False, sort_keys=True)
                out.print(f"    score {source.score:.3f}: {_escape(reason)}", highlight=False)
        out.print()


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def main() -> None:
    app()
