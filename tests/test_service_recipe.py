"""The README's recipe for running the service for real: its systemd units and its backup."""

from __future__ import annotations

import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
SECTION = README[README.index("## Running it as a service") : README.index("## Development")]
UNITS = re.findall(r"```ini\n(.*?)```", SECTION, flags=re.DOTALL)
SHELL = "\n".join(re.findall(r"```sh\n(.*?)```", SECTION, flags=re.DOTALL))
INSTALLED = "/opt/aggregator/venv/bin/aggregator"


def _command(prefix: str) -> list[str]:
    """The README's shell command starting with ``prefix`` (continuation lines joined)."""
    text = SHELL.replace("\\\n", " ")
    (line,) = [line for line in text.splitlines() if line.strip().startswith(prefix)]
    return shlex.split(line)


def _database(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE t (x)")
        db.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(1000)])


def test_a_user_unit_and_a_system_unit_run_the_installed_command() -> None:
    user, system = UNITS
    assert "WantedBy=default.target" in user and "User=" not in user
    assert "WantedBy=multi-user.target" in system and "User=aggregator" in system
    for unit in UNITS:
        (exec_start,) = re.findall(r"^ExecStart=(.*)$", unit, flags=re.MULTILINE)
        args = shlex.split(exec_start)
        assert args[0] == INSTALLED and "run" in args


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
@pytest.mark.parametrize("which", ["user", "system"])
def test_systemd_accepts_the_units(which: str, tmp_path: Path) -> None:
    unit = UNITS[0 if which == "user" else 1]
    # The units name the installed command; here it is this environment's.
    unit = unit.replace(INSTALLED, str(Path(sys.executable).parent / "aggregator"))
    path = tmp_path / "aggregator.service"
    path.write_text(unit)
    done = subprocess.run(
        ["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def test_the_python_backup_command_copies_a_database_in_use(tmp_path: Path) -> None:
    live, copy = tmp_path / "aggregator.db", tmp_path / "backup.db"
    _database(live)
    args = _command("python3 -c")
    args[0] = sys.executable
    source, target = args.index("/var/lib/aggregator/storage/aggregator.db"), len(args) - 1
    args[source], args[target] = str(live), str(copy)
    reader = sqlite3.connect(live)  # the service holds the database open meanwhile
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM t").fetchone()
    try:
        subprocess.run(args, check=True, timeout=60)
    finally:
        reader.close()
    with sqlite3.connect(copy) as db:
        assert db.execute("SELECT count(*) FROM t").fetchone() == (1000,)


@pytest.mark.skipif(shutil.which("sqlite3") is None, reason="no sqlite3 command here")
def test_the_sqlite3_backup_command_copies_a_database(tmp_path: Path) -> None:
    live, copy = tmp_path / "aggregator.db", tmp_path / "backup.db"
    _database(live)
    args = _command("sqlite3 ")
    assert args[2].startswith(".backup ")
    subprocess.run(["sqlite3", str(live), f".backup {copy}"], check=True, timeout=60)
    with sqlite3.connect(copy) as db:
        assert db.execute("SELECT count(*) FROM t").fetchone() == (1000,)
