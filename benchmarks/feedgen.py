"""Moved to ``aggregator.testing.feedgen``; re-exported for the imports still using this name."""

from aggregator.testing.feedgen import *  # noqa: F403
