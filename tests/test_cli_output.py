"""What a person reads: tables that fit 80 columns in a pipe, local times with their offset,
counts with separators and the plural right, what Ctrl-C says. planctl runs as a real
process (its stdout is a pipe, as in ``planctl backup list | less``)."""

from __future__ import annotations

import datetime as dt
import json
import signal
import sqlite3
from pathlib import Path

import pytest

from planctl.backup.store import LOCK_NAME, backup_lock
from planctl.text import local_moment, plural
from tests.conftest import SqliteTemplates
from tests.helpers import holds_open, planctl_env, run_planctl, spawn_planctl, wait_until

ZONE = "Asia/Kolkata"  # +0530: never the machine's zone by accident


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return planctl_env(
        f"sqlite:///{tmp_path / 'p.db'}",
        tmp_path / "backups",
        tmp_path / "logs",
        PLANCTL_TIMEZONE=ZONE,
        PLANCTL_SYNC_STORE=str(tmp_path / "calendar.json"),
    )


@pytest.fixture
def migrated(
    env: dict[str, str], tmp_path: Path, sqlite_templates: SqliteTemplates
) -> dict[str, str]:
    """*env* on a migrated database (the session's template, copied: no db-upgrade process)."""
    sqlite_templates.copy("migrated", tmp_path / "p.db")
    return env


@pytest.fixture
def seeded(
    env: dict[str, str], tmp_path: Path, sqlite_templates: SqliteTemplates
) -> dict[str, str]:
    """*env* on a database with the demo data (what ``db-upgrade`` and ``db-seed`` make)."""
    sqlite_templates.copy("seeded", tmp_path / "p.db")
    return env


def _planctl(env: dict[str, str], *args: str, columns: int | None = None) -> str:
    run = run_planctl(*args, env=env if columns is None else {**env, "COLUMNS": str(columns)})
    assert run.returncode == 0, run.stderr
    return run.stdout


def _data_lines(out: str) -> list[str]:
    """The rows of a narrow table: the lines after its header rule."""
    lines = out.splitlines()
    rule = next(i for i, line in enumerate(lines) if line.strip().startswith("───"))
    return [line for line in lines[rule + 1 :] if line.strip()]


@pytest.mark.parametrize("columns", [None, 80])
def test_sync_remote_list_fits_80_columns_in_a_pipe(seeded: dict[str, str], columns: int) -> None:
    env = seeded
    _planctl(env, "sync", "push")
    events = json.loads(_planctl(env, "sync", "remote", "list", "--json"))
    out = _planctl(env, "sync", "remote", "list", columns=columns)
    assert all(len(line) <= 80 for line in out.splitlines()), max(out.splitlines(), key=len)
    rows = _data_lines(out)
    assert len(rows) == len(events)
    assert f"({plural(len(events), 'event')})" in " ".join(out.split())  # the title may wrap
    for row, event in zip(rows, events, strict=True):
        short_id, session, day, times, offset, status, *_ = row.split()
        assert event["id"].startswith(short_id) and len(short_id) == 8
        start = dt.datetime.fromisoformat(event["start"]["dateTime"])
        assert f"{day} {times[:5]} {offset}" == local_moment(start, ZONE)
        assert offset == "+0530" and status == event["status"]
        private = event["extendedProperties"]["private"]
        assert session == str(private["planctlSessionId"])


def test_the_short_id_finds_the_event(seeded: dict[str, str]) -> None:
    env = seeded
    _planctl(env, "sync", "push")
    row = _data_lines(_planctl(env, "sync", "remote", "list"))[0]
    short_id = row.split()[0]
    said = _planctl(env, "sync", "remote", "edit", short_id, "--status", "tentative")
    assert said.startswith(f"Event {short_id}") and "is now tentative" in said


@pytest.mark.parametrize("columns", [None, 80])
def test_backup_list_fits_80_columns_in_a_pipe(seeded: dict[str, str], columns: int) -> None:
    env = seeded
    _planctl(env, "backup")
    _planctl(env, "backup", "--label", "before-the-big-migration-of-november")
    _planctl(env, "backup", "--incremental")
    infos = json.loads(_planctl(env, "backup", "list", "--json"))
    out = _planctl(env, "backup", "list", columns=columns)
    assert all(len(line) <= 80 for line in out.splitlines()), max(out.splitlines(), key=len)
    # A long name folds onto the next line: the first column, read down, holds every name.
    first_column = "".join(line.split()[0] for line in _data_lines(out))
    for info in infos:
        assert info["name"] in first_column
        assert local_moment(dt.datetime.fromisoformat(info["created"]), ZONE) in out


def test_counts_read_right(migrated: dict[str, str], tmp_path: Path) -> None:
    env = migrated
    with sqlite3.connect(tmp_path / "p.db") as db:
        db.execute("INSERT INTO temas (id, nombre) VALUES (1, 'Python')")
    said = _planctl(env, "export", "csv", "temas", "-o", str(tmp_path / "temas.csv"))
    assert said.strip() == f"Wrote 1 row of temas to {tmp_path / 'temas.csv'}."
    log = (tmp_path / "logs" / "exportacion.log").read_text(encoding="utf-8")
    assert "exported temas: 1 row to" in log and "+0530 |" in log
    _planctl(env, "backup")
    said = _planctl(env, "backup", "prune", "--keep-last", "1")
    assert "Removed 0 backups; kept 1." in said


@pytest.mark.parametrize(
    ("number", "expected"),
    [(0, "0 rows"), (1, "1 row"), (2, "2 rows"), (1234567, "1.234.567 rows")],
)
def test_plural(number: int, expected: str) -> None:
    assert plural(number, "row") == expected
    assert plural(1, "entry", "entries") == "1 entry" and plural(3, "entry", "entries") == (
        "3 entries"
    )


def test_local_moment_names_the_offset() -> None:
    winter = dt.datetime(2026, 11, 25, 20, 3, 4, tzinfo=dt.UTC)
    assert local_moment(winter, "Europe/Madrid", seconds=True) == "2026-11-25 21:03:04 +0100"
    summer = dt.datetime(2026, 7, 1, 8, 30)  # naive: UTC
    assert local_moment(summer, "Europe/Madrid") == "2026-07-01 10:30 +0200"


def test_ctrl_c_says_so_and_exits_130(migrated: dict[str, str], tmp_path: Path) -> None:
    env = migrated
    backups = tmp_path / "backups"
    backups.mkdir()
    with backup_lock(backups):  # another run holds the set: planctl waits for it
        process = spawn_planctl("backup", "--lock-timeout", "60", env=env)
        wait_until(lambda: holds_open(process.pid, backups / LOCK_NAME), timeout=60)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert err == "interrupted (SIGINT)\n" and out == ""


def test_db_history_fits_80_columns_with_local_times(env: dict[str, str]) -> None:
    from planctl.db.migrate import history

    out = _planctl(env, "db-history")
    assert all(len(line) <= 80 for line in out.splitlines()), out
    for rev in history(None):
        assert rev.revision in out
        assert rev.created is not None
        assert local_moment(rev.created, ZONE) in out  # +0530, not the scripts' UTC
    assert "+0530" in out
