"""One polling process per SQLite database.

A polling process (``aggregator run``, ``aggregator poll``) matches new entries against a match
index of its own, loaded from the database when it starts. PostgreSQL workers share feeds out
by claims and match under a database-wide lock after catching up with each other's writes
(``refresh/store.py``). An SQLite database has neither: a second process polling it would match
against an index that never sees the first one's entries, and could open a second story for
an event the first one already holds. So a polling process holds an exclusive advisory lock
on a file beside the database for as long as it runs. The kernel releases the lock when the
process ends, however it ends (a SIGKILL included), so a crash never leaves it stuck.
"""

from __future__ import annotations

import fcntl
import os
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlsplit

from aggregator.exceptions import StorageError
from aggregator.storage import database_url, shared_between_processes

# Appended to the database file's name: ``storage/aggregator.db.lock``.
LOCK_SUFFIX = ".lock"
# Characters of the holder's command line kept in the lock file, for the error message.
HOLDER_CHARS = 200


class StorageInUse(StorageError):
    """Another process is polling this SQLite database; ``holder`` names it."""

    def __init__(self, message: str, holder: str) -> None:
        self.holder = holder
        super().__init__(message)


def lock_path(url: str) -> Path | None:
    """The lock file of an SQLite database file; None when no lock is needed (PostgreSQL
    coordinates its workers itself; an in-memory database lives in one process)."""
    parsed = database_url(url)
    if parsed.get_backend_name() != "sqlite" or not shared_between_processes(url):
        return None
    database = str(parsed.database)
    if parsed.query.get("uri"):  # file:path?options: the path is the part before "?"
        database = unquote(urlsplit(database).path)
    resolved = Path(database).expanduser().resolve()
    return resolved.with_name(resolved.name + LOCK_SUFFIX)


@contextmanager
def polling_lock(url: str) -> Iterator[None]:
    """Hold the database's polling lock while the block runs.

    Raises :class:`StorageInUse`, naming the database and the process holding it, when
    another process polls the same SQLite database.
    """
    path = lock_path(url)
    if path is None:
        yield
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename and str(exc.filename) != str(path) else ""
        raise StorageError(f"cannot open the polling lock {path}: {exc.strerror}{where}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(os.pread(fd, HOLDER_CHARS + 32, 0))
            raise StorageInUse(_in_use(path, holder), holder) from None
        except OSError as exc:  # a file system without locks
            raise StorageError(f"cannot lock {path}: {exc.strerror}") from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {_command_line()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock; the file stays, so no opener races a deletion


def _command_line() -> str:
    """This process's command as its user typed it (``aggregator run``, ``python -m ...``)."""
    program = Path(sys.argv[0])
    words = [program.name]
    if program.name == "__main__.py":
        words = ["python", "-m", program.parent.name]
    elif sys.argv[0] == "-c":
        words = ["python", "-c"]
    return shlex.join([*words, *sys.argv[1:]])[:HOLDER_CHARS]


def _holder(content: bytes) -> str:
    """Who holds the lock, from the lock file's ``pid command`` line."""
    pid, _, command = content.decode("utf-8", "replace").strip().partition(" ")
    return f"process {pid} ({command})" if pid.isdigit() else "another process"


def _in_use(path: Path, who: str) -> str:
    database = path.with_name(path.name.removesuffix(LOCK_SUFFIX))
    return (
        f"{database} is being polled by {who}. With SQLite one process polls a database at "
        f"a time: a second one would not see the first one's new entries and could open a "
        f"second story for the same event. Leave the polling to that process (it polls every "
        f"feed at its interval) or stop it first; several workers need PostgreSQL "
        f"(docs/deploy.md)."
    )
