"""aggregator: merges the same news story from many outlets into one record citing every source."""

from __future__ import annotations

__version__ = "0.1.0"

USER_AGENT = f"aggregator/{__version__} (+https://github.com/aggregator/aggregator)"

__all__ = ["USER_AGENT", "__version__"]
