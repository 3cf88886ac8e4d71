"""Commands that read feeds: check feeds.yml, run the service, poll once, inspect, demo.

``inspect`` and ``demo`` are built in ``inspect_feeds`` and ``demo``, imported when called.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import replace
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from aggregator.cli._common import (
    EXIT_BAD_INPUT,
    EXIT_RUNTIME,
    app,
    config_or_defaults,
    err,
    fail,
    load,
    open_storage_or_exit,
    out,
    print_json_line,
    print_stories,
    run_async,
)
from aggregator.config import Config
from aggregator.exceptions import AggregatorError
from aggregator.health import error_hint
from aggregator.refresh.updater import RefreshResult, summarise, utcnow
from aggregator.runtime import Runtime, open_runtime
from aggregator.storage.polling_lock import StorageInUse
from aggregator.types import Story


@app.command()
def check() -> None:
    """Validate feeds.yml; exit 2 with the precise error when it is wrong."""
    config = load()
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

    config = load()
    host, port = config.settings.listen_host, config.settings.listen_port
    if listen is not None:
        try:
            host, port = parse_listen(listen)
        except ValueError as exc:
            fail(f"--listen: {exc}", EXIT_BAD_INPUT)
        # The published files link to where the pages are served: --listen, not feeds.yml.
        settings = replace(config.settings, listen_host=host, listen_port=port)
        config = replace(config, settings=settings)

    async def main() -> None:
        bound: list[socket.socket] = []

        def bind() -> None:  # with the polling lock held, before the slow start
            bound.append(bind_socket(host, port))

        async with open_runtime(config, locked=bind) as runtime:
            sock = bound[0]
            metrics = Metrics()
            service = Service(runtime, observer=metrics)
            stop = asyncio.Event()
            watcher = ConfigWatcher(config.path, service.apply_config, current=config)
            bound_port = sock.getsockname()[1]  # the real port when 0 asked for a free one
            shown = f"[{host}]" if ":" in host else host
            web = create_app(
                runtime.storage,
                settings=config.settings,
                metrics=metrics,
                public_url=config.settings.public_url or f"http://{shown}:{bound_port}/",
                health=service.health,
            )
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

    run_async(main())


@app.command()
def poll() -> None:
    """Poll every feed once now, then publish the merged feeds.

    When a service already polls the same SQLite database, ask it to poll every feed now
    instead: a second polling process would match against an index blind to its entries.
    Exits 1 when every feed failed.
    """
    config = load()
    logging.getLogger("aggregator").setLevel(logging.WARNING)

    async def main() -> list[RefreshResult] | StorageInUse:
        try:
            async with open_runtime(config) as runtime:
                return await _poll_all(runtime)
        except StorageInUse as exc:
            return exc

    results = run_async(main())
    if isinstance(results, StorageInUse):
        _ask_to_poll(config, results)
        return
    for result in results:
        out.print(result.log_line(), markup=False, highlight=False)
    out.print(summarise(results), markup=False, highlight=False)
    hints = dict.fromkeys(h for r in results if r.error and (h := error_hint(r.error)))
    for hint in hints:
        err.print(f"hint: {hint}", markup=False, highlight=False, soft_wrap=True)
    if results and all(r.error for r in results):
        fail("every feed failed", EXIT_RUNTIME)


async def _poll_all(runtime: Runtime) -> list[RefreshResult]:
    """Refresh every feed with a progress bar, then publish."""
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

        results: list[RefreshResult] = await runtime.updater.refresh_many(feeds, on_done=done)
    runtime.publish()
    return results


def _ask_to_poll(config: Config, in_use: StorageInUse) -> None:
    """Make every feed due now, for the process that polls the database to take."""
    storage = open_storage_or_exit(config)
    try:
        count = storage.request_polls(utcnow())
    except AggregatorError as exc:
        fail(f"error: {exc}", EXIT_RUNTIME)
    finally:
        storage.close()
    out.print(
        f"{in_use.holder} polls {config.settings.storage_url}: asked it to poll all {count} "
        f"feeds now; it publishes as they come in (`aggregator feeds` shows each feed's last "
        f"poll)",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


@app.command()
def inspect(
    sources: Annotated[list[str], typer.Argument(help="Feed URLs or local feed files.")],
) -> None:
    """Print the parsed, normalised entries of feeds as JSON lines (one object per entry).

    Exits 1 when a feed could not be read or parsed (its line holds the error)."""
    from aggregator.cli.inspect_feeds import inspect_feeds

    config = config_or_defaults()
    lines = run_async(inspect_feeds(config, sources))
    for line in lines:
        print_json_line(line)
    failed = sum(1 for line in lines if "error" in line)
    if failed:
        fail(f"{failed} of {len(sources)} feeds could not be read", EXIT_RUNTIME)


@app.command()
def demo(
    serve: Annotated[
        bool,
        typer.Option(
            "--serve",
            help="Then serve the front page, story pages and feeds until Ctrl-C.",
        ),
    ] = False,
    listen: Annotated[
        str,
        typer.Option("--listen", help="Where --serve serves, HOST:PORT."),
    ] = "127.0.0.1:8080",
) -> None:
    """Serve bundled sample feeds on 127.0.0.1, poll them and print the merged stories."""
    from aggregator.cli.demo import run_demo
    from aggregator.config import parse_listen

    address: tuple[str, int] | None = None
    if serve:
        try:
            address = parse_listen(listen)
        except ValueError as exc:
            fail(f"--listen: {exc}", EXIT_BAD_INPUT)

    def serving(found: list[Story], url: str) -> None:
        print_stories(found, explain=False)
        out.print(f"\nserving the demo at {url} (Ctrl-C stops it)", markup=False, highlight=False)

    found = run_async(run_demo(listen=address, on_serving=serving))
    if address is None:
        print_stories(found, explain=False)
