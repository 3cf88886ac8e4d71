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
def run(
    listen: Annotated[
        str | None,
        typer.Option(
            "--listen", help="Serve the web page and feeds on HOST:PORT (default: settings.listen)."
        ),
    ] = None,
) -> None:
    """Run the service: poll every feed at its interval, publish, and serve the web page."""
    from aggregator.config import parse_listen
    from aggregator.reload import ConfigWatcher
    from aggregator.service import Service
    from aggregator.web import Metrics, bind_socket, create_app, serve

    config = _config()
    host, port = config.settings.listen_host, config.settings.listen_port
    if listen is not None:
        try:
            host, port = parse_listen(listen)
        except ValueError as exc:
            _fail(f"--listen: {exc}", EXIT_BAD_INPUT)

    async def main() -> None:
        sock = bind_socket(host, port)  # fail fast when the address is taken
        async with open_runtime(config) as runtime:
            metrics = Metrics()
            service = Service(runtime, observer=metrics)
            stop = asyncio.Event()
            watcher = ConfigWatcher(config.path, service.apply_config, current=config)
            web = create_app(runtime.storage, settings=config.settings, metrics=metrics)
            tasks = [
                asyncio.create_task(serve(web, host, port, stop, sock=sock)),
                asyncio.create_task(watcher.run()),
            ]
            logging.getLogger("aggregator").info("serving http://%s:%d/", host, port)
            try:
                await service.run()
            finally:
                stop.set()
                watcher.stop()
                await asyncio.gather(*tasks, return_exceptions=True)

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
    from aggregator.health import feed_notes
    from aggregator.storage import open_storage

    config = _config()
    storage = _open_storage(config, open_storage)
    try:
        storage.sync_feeds(config.feeds, datetime.now().astimezone())
        known = storage.list_feeds()
    finally:
        storage.close()
    table = Table("feed", "last poll", "status", "failures", "next due", "error / note")
    for feed in known:
        note = "; ".join(feed_notes(feed))
        table.add_row(
            feed.display_name,
            _short_time(feed.last_polled),
            str(feed.status) if feed.status is not None else "-",
            str(feed.failures),
            _short_time(feed.next_due),
            note,
        )
    out.print(table)


@feeds_app.command("add")
def feeds_add(
    url: Annotated[str, typer.Argument(help="A feed URL, or a web page that links to its feed.")],
    name: Annotated[str | None, typer.Option(help="A display name for the outlet.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="A tag (repeat for several).")] = None,
) -> None:
    """Check that a feed fetches and parses, then append it to feeds.yml (comments kept)."""
    from aggregator.runtime import make_fetcher
    from aggregator.sources import add_feed_to_config, discover_feed

    config = _config()

    async def find() -> str:
        async with make_fetcher(config) as fetcher:
            return await discover_feed(fetcher, url)

    feed_url = _run_async(find())
    try:
        add_feed_to_config(config.path, feed_url, name=name, tags=tuple(tag or ()))
    except ConfigError as exc:
        _fail(str(exc), EXIT_BAD_INPUT)
    note = "" if feed_url == url else f" (found on {url})"
    out.print(f"added {feed_url}{note} to {config.path}", markup=False, highlight=False)


@feeds_app.command("remove")
def feeds_remove(
    url_or_name: Annotated[str, typer.Argument(help="The feed's URL or its name.")],
) -> None:
    """Remove a feed from feeds.yml (its stored entries and stories stay)."""
    from aggregator.sources import remove_feed_from_config

    config = _config()
    try:
        removed = remove_feed_from_config(config.path, url_or_name)
    except ConfigError as exc:
        _fail(str(exc), EXIT_BAD_INPUT)
    out.print(f"removed {removed} from {config.path}", markup=False, highlight=False)


@feeds_app.command("import-opml")
def feeds_import_opml(
    file: Annotated[Path, typer.Argument(help="An OPML subscription list.")],
) -> None:
    """Add every feed of an OPML file to feeds.yml (categories become tags)."""
    from aggregator.sources import import_opml

    config = _config()
    try:
        added = import_opml(file, config.path)
    except ConfigError as exc:
        _fail(str(exc), EXIT_BAD_INPUT)
    out.print(f"imported {len(added)} new feeds into {config.path}", markup=False)


@feeds_app.command("export-opml")
def feeds_export_opml(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Print the configured feeds as OPML 2.0 (tags become categories)."""
    from aggregator.sources import export_opml

    data = export_opml(_config())
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        output.write_bytes(data)


@app.command()
def split(
    entry: Annotated[str, typer.Argument(help="The entry's id, article URL or link.")],
) -> None:
    """Take an entry out of its story into a story of its own; later matching respects it."""
    from aggregator.storage import open_storage
    from aggregator.types import new_story_id

    config = _config()
    storage = _open_storage(config, open_storage)
    try:
        found = storage.find_entries(entry)
        if len(found) != 1:
            problem = "no entry" if not found else f"{len(found)} entries"
            _fail(f"{problem} with id, URL or link {entry!r}", EXIT_BAD_INPUT)
        (feed_url, entry_id) = found[0]
        story_id = new_story_id()
        try:
            storage.record_split(feed_url, entry_id, story_id, datetime.now().astimezone())
        except (LookupError, ValueError) as exc:
            _fail(f"cannot split {entry!r}: {exc}", EXIT_BAD_INPUT)
    finally:
        storage.close()
    out.print(f"{entry} now forms story {story_id}", markup=False, highlight=False)


@app.command()
def merge(
    story_a: Annotated[str, typer.Argument(help="The story that keeps its id.")],
    story_b: Annotated[str, typer.Argument(help="The story merged into it.")],
) -> None:
    """Merge story B into story A; later matching respects it."""
    from aggregator.storage import open_storage

    config = _config()
    storage = _open_storage(config, open_storage)
    try:
        storage.record_merge(story_a, story_b, datetime.now().astimezone())
    except (LookupError, ValueError) as exc:
        _fail(f"cannot merge {story_b!r} into {story_a!r}: {exc}", EXIT_BAD_INPUT)
    finally:
        storage.close()
    out.print(f"merged {story_b} into {story_a}", markup=False, highlight=False)


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
                out.print(f"    entry {_escape(source.entry_id)}", highlight=False)
                reason = json.dumps(dict(source.evidence), ensure_ascii=False, sort_keys=True)
                out.print(f"    score {source.score:.3f}: {_escape(reason)}", highlight=False)
        out.print()


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def main() -> None:
    app()
