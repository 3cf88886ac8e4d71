"""Live reload of feeds.yml: notice edits while the service runs and apply the new feed list.

``ConfigWatcher`` looks at the file every ``interval`` seconds. When its content changed it is
loaded and validated with ``load_config``; a valid file is handed to ``on_change`` (the service
then calls ``storage.sync_feeds``: added feeds become due now, removed ones inactive, changed
intervals apply). An invalid edit is logged once with its ``file:line: key: message`` error and
the last valid configuration keeps running until the file is fixed. An unexpected exception
while loading or applying an edit is logged with its traceback and the watcher keeps watching:
it never ends silently.

The file is hashed on every look rather than trusting its modification time: some filesystems
keep mtimes to 1-2 s, so two quick saves of the same size could otherwise go unnoticed, and
hashing a file of a few kilobytes every couple of seconds costs microseconds.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from aggregator.config import Config, load_config
from aggregator.exceptions import AggregatorError, ConfigError

log = logging.getLogger("aggregator.reload")

OnChange = Callable[[Config], Awaitable[None] | None]

# Edits are made by hand; noticing one within two seconds feels immediate and costs one small
# read per interval.
DEFAULT_INTERVAL = 2.0


def _digest(path: Path) -> str | None:
    """SHA-256 of the file's bytes, or None when it cannot be read right now."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


class ConfigWatcher:
    """Polls feeds.yml and calls ``on_change(config)`` after each valid edit.

    ``current`` is the configuration already running (loaded from ``path``); the file as it is
    when the watcher is created counts as applied, so only later edits trigger ``on_change``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        on_change: OnChange,
        interval: float = DEFAULT_INTERVAL,
        *,
        current: Config | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be positive, not {interval!r}")
        self.path = Path(path)
        self.on_change = on_change
        self.interval = interval
        self.config = current
        self.last_error: str | None = None
        self._seen = _digest(self.path)
        self._stopping = asyncio.Event()

    async def check(self) -> bool:
        """Look at the file once; return True when a new valid configuration was applied."""
        digest = await asyncio.to_thread(_digest, self.path)
        if digest == self._seen:
            return False
        try:
            config = await asyncio.to_thread(load_config, self.path)
        except ConfigError as exc:
            self._seen = digest  # report this version once, not on every look
            self.last_error = str(exc)
            log.error("%s; keeping the last valid configuration", exc)
            return False
        except Exception as exc:  # a bug of ours: logged with its traceback, still watching
            self._seen = digest
            self.last_error = f"{self.path}: cannot be loaded: {exc!r}"
            log.exception("%s; keeping the last valid configuration", self.last_error)
            return False
        try:
            outcome = self.on_change(config)
            if inspect.isawaitable(outcome):
                await outcome
        except AggregatorError as exc:
            # Not marked as seen: the same content is applied again on the next look.
            log.error("%s: could not apply the new configuration: %s", self.path, exc)
            return False
        previous = self.config
        self._seen = digest
        self.config = config
        self.last_error = None
        log.info("%s reloaded: %d feeds", self.path, len(config.feeds))
        if previous is not None and previous.settings != config.settings:
            log.warning("%s: settings changed; they take effect at the next restart", self.path)
        return True

    async def run(self) -> None:
        """Watch until ``stop()`` is called or the task is cancelled."""
        while not self._stopping.is_set():
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=self.interval)
            except TimeoutError:
                try:
                    await self.check()
                except Exception:  # never a silently dead watcher: log it and keep looking
                    log.exception("%s: checking for edits failed; still watching", self.path)

    def stop(self) -> None:
        """Make ``run()`` return after the current look."""
        self._stopping.set()
