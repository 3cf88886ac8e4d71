"""The ``aggregator`` command's entry point, free of imports on purpose.

Worker processes are started with "spawn", which runs the parent's main script again in each
child: the parse workers and the match index process. A script importing the command line
(typer, rich, the web app, every command) at its top made each of them load it, about 35 MiB
of memory apiece that none of them uses; this one imports it only when called.
"""

from __future__ import annotations


def main() -> None:
    """Run the command line."""
    from aggregator.cli import main as run_cli

    run_cli()
