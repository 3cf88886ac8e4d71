"""The ``aggregator`` command line.

Exit codes: 0 success; 1 a runtime failure (storage unavailable…); 2 bad input (an invalid
feeds.yml, a bad argument).
"""

from __future__ import annotations

# Importing the command modules registers their commands on the apps.
from aggregator.cli import feeds, prune, run, stories
from aggregator.cli._common import app

__all__ = ["app", "feeds", "main", "prune", "run", "stories"]


def main() -> None:
    app()
