"""Shared pieces of the command line: the Typer apps, consoles, exit codes, error handling."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from typer.core import TyperOption

from aggregator import __version__
from aggregator.config import Config, load_config
from aggregator.exceptions import AggregatorError, ConfigError, FeedError
from aggregator.types import Story

if TYPE_CHECKING:
    from aggregator.storage.sql import SqlStorage

# Typer shows every option's type in --help, a flag's as "<bool>" although a flag takes no
# value ("--json <bool>" reads as if it wanted one): a flag shows none.
_display_type = TyperOption.display_type_rich


def _display_type_unless_flag(self: TyperOption, ctx: Any) -> str | None:
    if self.is_flag and self.metavar is None:
        return None
    return _display_type(self, ctx)


setattr(TyperOption, "display_type_rich", _display_type_unless_flag)  # noqa: B010

app = typer.Typer(
    name="aggregator",
    help="Poll news feeds, merge the same story from many outlets, publish merged feeds.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
feeds_app = typer.Typer(help="Show the configured feeds and their health.")
app.add_typer(feeds_app, name="feeds")

# Feed text is never read as Rich markup, emoji codes or highlighted: a title holding "[/x]"
# raised MarkupError and "[link=...]" became a live hyperlink (issue #19). Styles are applied
# only through Text objects built here, never parsed out of strings.
out = Console(markup=False, emoji=False, highlight=False)
err = Console(stderr=True, markup=False, emoji=False, highlight=False)

EXIT_RUNTIME = 1
EXIT_BAD_INPUT = 2


class _State:
    config_path: Path | None = None


def fail(message: str, code: int) -> NoReturn:
    # Plain text, never re-wrapped: error lines must stay greppable (file:line: key: problem).
    typer.echo(message, err=True)
    raise typer.Exit(code)


def load() -> Config:
    try:
        return load_config(_State.config_path)
    except ConfigError as exc:
        fail(str(exc), EXIT_BAD_INPUT)


def iso(value: datetime | None) -> str | None:
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


def config_or_defaults() -> Config:
    """The configuration, or built-in defaults when no feeds.yml exists (for ``inspect``)."""
    from aggregator.config import load_config_text

    try:
        return load_config(_State.config_path)
    except ConfigError as exc:
        if _State.config_path is None and not Path("feeds.yml").exists():
            return load_config_text("settings: {}\nfeeds: []\n", Path("feeds.yml").resolve())
        fail(str(exc), EXIT_BAD_INPUT)


def open_storage_or_exit(config: Config) -> SqlStorage:
    """The configured storage, or exit 1 with the reason."""
    from aggregator.storage import open_storage  # imported late: most commands never need it

    try:
        return open_storage(config.settings.storage_url)
    except AggregatorError as exc:
        fail(f"cannot open storage: {exc}", EXIT_RUNTIME)


def run_async(coro: Any) -> Any:
    try:
        return asyncio.run(coro)
    except ConfigError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    except AggregatorError as exc:
        from aggregator.health import error_hint

        hint = error_hint(exc.message if isinstance(exc, FeedError) else str(exc))
        fail(f"error: {exc}" + (f"\nhint: {hint}" if hint else ""), EXIT_RUNTIME)
    except KeyboardInterrupt:
        fail("interrupted", 130)


def short_time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value is not None else "-"


def story_to_json(story: Story) -> dict[str, Any]:
    return {
        "id": story.id,
        "title": story.title,
        "first_published": iso(story.first_published),
        "updated": iso(story.updated),
        "sources": [
            {
                "outlet": s.feed_name,
                "title": s.title,
                "url": s.url,
                "published": iso(s.published),
                "score": s.score,
                "evidence": dict(s.evidence),
            }
            for s in story.sources
        ],
    }


def print_stories(found: Sequence[Story], *, explain: bool = False) -> None:
    from rich.text import Text

    if not found:
        out.print("no stories yet")
        return
    for story in found:
        out.print(
            Text.assemble(
                (story.title, "bold"),
                "  ",
                (
                    f"{story.id} · {len(story.sources)} source(s) · "
                    f"{short_time(story.first_published)}",
                    "dim",
                ),
            )
        )
        for source in story.sources:
            out.print(
                Text.assemble(
                    f"  - {source.feed_name}: {source.title}  ",
                    (short_time(source.published), "dim"),
                )
            )
            if source.url:
                out.print(f"    {source.url}")
            if explain:
                out.print(f"    entry {source.entry_id}")
                reason = json.dumps(dict(source.evidence), ensure_ascii=False, sort_keys=True)
                out.print(f"    score {source.score:.3f}: {reason}")
        out.print()


def print_json_line(value: Any) -> None:
    """One JSON line on stdout, byte for byte what ``json.dumps`` gives (no console rewriting)."""
    typer.echo(json.dumps(value, ensure_ascii=False))
