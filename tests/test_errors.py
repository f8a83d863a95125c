"""Every expected failure ends in one clear line on stderr, an exit code, no traceback."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from planctl.db import migrate

from .conftest import Cli, ScramServer, skip_or_fail
from .helpers import free_port, target_of


def assert_one_clean_line(stderr: str, *needles: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.mark.parametrize(
    ("url", "needles"),
    [
        ("not a url", ["malformed DATABASE_URL", "expected sqlite:///"]),
        ("mysql://u@h/d", ["unsupported database 'mysql'"]),
        ("sqlite+nosuchdriver:///x.db", ["unknown database driver 'sqlite+nosuchdriver'"]),
        ("postgresql+psycopg2://u@h/d", ["driver 'psycopg2' is not installed"]),
    ],
)
def test_bad_database_url(cli: Cli, url: str, needles: list[str]) -> None:
    run = cli("db-upgrade", url=url)
    assert run.exit_code == 1
    assert_one_clean_line(run.stderr, *needles)


def test_postgres_unreachable(cli: Cli) -> None:
    url = f"postgresql://app:Secret123@127.0.0.1:{free_port()}/planner"
    run = cli("db-upgrade", url=url)
    assert run.exit_code == 1
    assert_one_clean_line(run.stderr, "cannot connect", "app:***@127.0.0.1")
    assert "Secret123" not in run.stderr + run.stdout


def test_wrong_password(cli: Cli, scram_server: ScramServer) -> None:
    run = cli("db-info", url=scram_server.url(password="WrongPass42"))
    assert run.exit_code == 1
    assert_one_clean_line(run.stderr, "authentication failed", "check the user and password")
    assert "WrongPass42" not in run.stderr + run.stdout
    # and the right password works against the same server
    ok = cli("db-upgrade", url=scram_server.url())
    assert ok.exit_code == 0, ok.stderr
    assert scram_server.password not in ok.stdout + ok.stderr


def test_sqlite_in_missing_directory(cli: Cli, tmp_path: Path) -> None:
    run = cli("db-upgrade", url=f"sqlite:///{tmp_path / 'nope' / 'p.db'}")
    assert run.exit_code == 1
    assert_one_clean_line(run.stderr, "does not exist")
    assert not (tmp_path / "nope").exists()


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory nobody can create files in: chmod 0555, or for root (who ignores
    permissions) a read-only tmpfs mount."""
    import subprocess

    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() != 0:
        ro.chmod(0o555)
        yield ro
        ro.chmod(0o755)
        return
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        skip_or_fail(f"cannot mount a read-only tmpfs as root: {mounted.stderr.strip()}")
    try:
        yield ro
    finally:
        subprocess.run(["umount", str(ro)], check=True)


def test_sqlite_in_read_only_directory(cli: Cli, read_only_dir: Path) -> None:
    run = cli("db-upgrade", url=f"sqlite:///{read_only_dir / 'p.db'}")
    assert run.exit_code == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in run.stderr
    assert "read-only" in lines[0] or "writable" in lines[0], lines[0]
    assert not (read_only_dir / "p.db").exists()


def test_sqlite_read_only_database_file(cli: Cli, tmp_path: Path) -> None:
    """Root bypasses permissions, so use SQLite's own read-only mode to test the path."""
    path = tmp_path / "ro.db"
    migrate.upgrade(target_of(f"sqlite:///{path}"))
    migrate.downgrade(target_of(f"sqlite:///{path}"), "base")
    run = cli("db-upgrade", url=f"sqlite:///file:{path}?mode=ro&uri=true")
    assert run.exit_code == 1
    assert_one_clean_line(run.stderr, "read-only")
    assert migrate.current(target_of(f"sqlite:///{path}")) is None


def test_sqlite_path_that_is_not_a_database(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("these are not the tables you are looking for\n" * 20)
    run = cli("db-info", url=f"sqlite:///{path}")
    assert run.exit_code == 1
    assert_one_clean_line(run.stderr, "is not a SQLite database")


def test_unknown_revision(cli: Cli, db_url: str) -> None:
    run = cli("db-upgrade", "abc123nope", url=db_url)
    assert run.exit_code == 1
    assert_one_clean_line(run.stderr, "abc123nope", "db-history")
    assert migrate.current(target_of(db_url), missing_ok=True) is None


def test_downgrade_below_base(cli: Cli, migrated_url: str) -> None:
    steps = len(list(migrate.script_directory().walk_revisions())) + 1  # one past base
    run = cli("db-downgrade", f"-{steps}", "--yes", url=migrated_url)
    assert run.exit_code == 1
    assert_one_clean_line(run.stderr, "below the first revision")
    assert migrate.current(target_of(migrated_url)) == migrate.head_revision()


def test_downgrade_of_empty_database(cli: Cli, db_url: str) -> None:
    if db_url.startswith("sqlite"):
        sqlite3.connect(db_url.removeprefix("sqlite:///")).close()  # an empty database file
    run = cli("db-downgrade", "--yes", url=db_url)
    assert run.exit_code == 1
    assert_one_clean_line(run.stderr, "no schema revision")


def test_db_check_on_empty_database(cli: Cli, db_url: str) -> None:
    if db_url.startswith("sqlite"):
        sqlite3.connect(db_url.removeprefix("sqlite:///")).close()  # exists, holds no schema
    run = cli("db-check", url=db_url)
    assert run.exit_code == 5
    assert_one_clean_line(run.stderr, "has no schema", "planctl db-upgrade")


def test_db_check_on_missing_sqlite_file(cli: Cli, tmp_path: Path) -> None:
    run = cli("db-check", url=f"sqlite:///{tmp_path / 'missing.db'}")
    assert run.exit_code == 1
    assert_one_clean_line(run.stderr, "does not exist", "db-upgrade")
    assert not (tmp_path / "missing.db").exists()


def test_downgrade_without_terminal_needs_yes(
    cli: Cli, migrated_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("planctl.cli.db.can_prompt", lambda: False)
    monkeypatch.setattr("planctl.cli.backup.can_prompt", lambda: False)
    run = cli("db-downgrade", url=migrated_url)
    assert run.exit_code == 1
    assert_one_clean_line(run.stderr, "--yes")
    assert migrate.current(target_of(migrated_url)) == migrate.head_revision()


def test_debug_shows_the_traceback(cli: Cli, tmp_path: Path) -> None:
    run = cli("--debug", "db-upgrade", url=f"sqlite:///{tmp_path / 'nope' / 'p.db'}")
    assert run.exit_code == 1
    assert "Traceback" in run.stderr


def test_an_empty_postgres_database_is_one_line_under_export(pg_database: str, cli: Cli) -> None:
    run = cli("export", "csv", "sesiones", url=pg_database)
    assert run.exit_code == 1
    assert "has no planner schema" in run.stderr and "Traceback" not in run.stderr


def test_one_formatter_inside_and_outside_a_command(
    cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    """main()'s handler (errors raised outside a command) and the command's boundary print
    alike: ``error: message — hint``; with --debug the traceback first."""
    from planctl.cli import report_error
    from planctl.errors import UsageError

    inside = cli("backup", "--lock-timeout", "-1")
    assert inside.exit_code == 2
    assert_one_clean_line(inside.stderr, "--lock-timeout must be at least 0")
    try:
        raise UsageError("bad thing", "do this") from KeyError("the cause")
    except UsageError as error:
        report_error(None, error, debug=False)
        assert capsys.readouterr().err == "error: bad thing — do this\n"
        report_error(None, error, debug=True)
    err = capsys.readouterr().err
    assert "KeyError: 'the cause'" in err and "Traceback" in err
    assert err.rstrip().endswith("error: bad thing — do this")
