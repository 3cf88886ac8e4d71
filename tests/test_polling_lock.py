"""One polling process per SQLite database (``aggregator.storage.polling_lock``)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from aggregator.exceptions import StorageError
from aggregator.storage.polling_lock import StorageInUse, lock_path, polling_lock


def test_lock_file_sits_beside_an_sqlite_database_file(tmp_path: Path) -> None:
    db = tmp_path / "data" / "aggregator.db"
    assert lock_path(f"sqlite:///{db}") == db.with_name("aggregator.db.lock")
    uri = f"sqlite:///file:{db}?mode=rwc&uri=true"
    assert lock_path(uri) == db.with_name("aggregator.db.lock")


@pytest.mark.parametrize(
    "url",
    ["sqlite://", "sqlite:///:memory:", "postgresql://postgres@127.0.0.1/anything"],
)
def test_no_lock_where_one_process_or_the_server_coordinates(url: str) -> None:
    assert lock_path(url) is None
    with polling_lock(url), polling_lock(url):
        pass  # nothing to hold: both enter


def test_a_second_holder_is_refused_with_the_database_and_the_first_holder(
    tmp_path: Path,
) -> None:
    db = tmp_path / "aggregator.db"
    url = f"sqlite:///{db}"
    with polling_lock(url):
        with pytest.raises(StorageInUse) as refused, polling_lock(url):
            pass
        message = str(refused.value)
        assert message.startswith(f"{db} is being polled by process ")
        assert "several workers need PostgreSQL" in message
    with polling_lock(url):  # released on leaving the block
        pass


def test_a_killed_holder_releases_the_lock(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'aggregator.db'}"
    holder = textwrap.dedent(
        f"""
        import sys, time
        from aggregator.storage.polling_lock import polling_lock
        with polling_lock({url!r}):
            print("held", flush=True)
            time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        held_by = f"process {proc.pid} \\(python -c\\)"
        with pytest.raises(StorageInUse, match=held_by), polling_lock(url):
            pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    with polling_lock(url):  # the kernel dropped the dead process's lock
        pass


def test_an_unwritable_folder_is_a_storage_error_naming_the_lock(tmp_path: Path) -> None:
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("")
    url = f"sqlite:///{blocked / 'aggregator.db'}"
    expected = r"polling lock .*aggregator\.db\.lock: File exists: .*file-not-folder$"
    with pytest.raises(StorageError, match=expected), polling_lock(url):
        pass
