"""Every command of the command line is documented in the README, and --help works for each."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.testing import CliRunner

from aggregator.cli import app

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def command_paths() -> list[tuple[str, ...]]:
    # Typer's groups expose their subcommands as ``commands`` (a dict by name).
    root = typer.main.get_command(app)
    paths: list[tuple[str, ...]] = []
    for name, command in getattr(root, "commands", {}).items():
        paths.append((name,))
        paths.extend((name, sub) for sub in getattr(command, "commands", {}))
    return paths


def test_every_command_is_in_the_readme() -> None:
    paths = command_paths()
    assert ("feeds", "add") in paths and ("run",) in paths
    missing = [p for p in paths if f"`aggregator {' '.join(p)}" not in README]
    assert missing == []


def test_every_command_has_help() -> None:
    runner = CliRunner()
    for path in command_paths():
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage:" in result.output
