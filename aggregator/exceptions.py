"""The one exception root of the project and its branches.

::

    AggregatorError
    ├── ConfigError        feeds.yml is missing, unreadable or invalid (carries file, line, key)
    ├── FeedError          one feed's problem; carries the feed URL
    │   ├── FetchError     the feed could not be retrieved (network, HTTP status, limits)
    │   └── ParseError     the bytes could not be turned into a feed
    └── StorageError       the database failed or holds something unexpected

Third-party exceptions are wrapped once, where they enter, with the original chained
(``raise FetchError(...) from exc``). A feed's error is that feed's result: it is recorded and
logged and never stops other feeds. A bug in our own code is not wrapped and still surfaces.
"""

from __future__ import annotations


class AggregatorError(Exception):
    """Root of every error this project raises on purpose."""


class ConfigError(AggregatorError):
    """The configuration is invalid; ``str()`` reads ``file:line: key: problem``."""

    def __init__(
        self, message: str, *, path: str | None = None, line: int | None = None, key: str = ""
    ) -> None:
        self.message = message
        self.path = path
        self.line = line
        self.key = key
        where = path or "<config>"
        if line is not None:
            where = f"{where}:{line}"
        prefix = f"{where}: {key}: " if key else f"{where}: "
        super().__init__(prefix + message)


class FeedError(AggregatorError):
    """Something went wrong with one feed."""

    def __init__(self, url: str, message: str) -> None:
        self.url = url
        self.message = message
        super().__init__(f"{url}: {message}")


class FetchError(FeedError):
    """The feed could not be retrieved; ``status`` is the HTTP status when there was one."""

    def __init__(self, url: str, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(url, message)


class ParseError(FeedError):
    """The retrieved bytes are not a feed we can read."""


class StorageError(AggregatorError):
    """The storage backend failed."""
