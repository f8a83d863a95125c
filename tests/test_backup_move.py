"""Logical backups through the service and the CLI: the SQLite → PostgreSQL move."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from sqlalchemy import text

from planctl.backup import create_backup, list_backups, restore_backup, verify_backup
from planctl.backup.options import BackupOptions
from planctl.db import migrate
from planctl.db.engine import connect
from planctl.db.seed import seed

from .conftest import Cli
from .helpers import table_contents, target_of


def _normalised(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Table contents with timestamps as aware UTC (SQLite keeps them naive)."""
    out = {}
    for table, rows in table_contents(url).items():
        out[table] = [
            tuple(
                v.replace(tzinfo=dt.UTC)
                if isinstance(v, dt.datetime) and v.tzinfo is None
                else v.astimezone(dt.UTC)
                if isinstance(v, dt.datetime)
                else v
                for v in row
            )
            for row in rows
        ]
    return out


def test_logical_backup_moves_sqlite_to_postgresql(
    tmp_path: Path, pg_database: str, cli: Cli
) -> None:
    source = f"sqlite:///{tmp_path / 'planificador.db'}"
    migrate.upgrade(target_of(source))
    seed(target_of(source))
    backups = tmp_path / "backups"
    run = cli("backup", "--format", "logical", "--dir", str(backups), url=source)
    assert run.exit_code == 0, run.stderr
    [info] = list_backups(backups)
    assert info.engine == "logical" and info.data_file.endswith(".jsonl.zst")
    assert info.row_counts["sesiones"] == 320
    assert verify_backup(backups, info.name)[0].ok

    migrate.upgrade(target_of(pg_database))
    run = cli(
        "backup",
        "restore",
        info.name,
        "--target",
        pg_database,
        "--yes",
        "--dir",
        str(backups),
        url=source,
    )
    assert run.exit_code == 0, run.stderr
    assert "no db-upgrade needed" in run.stdout
    assert _normalised(pg_database) == _normalised(source)
    with connect(target_of(pg_database)) as connection:  # new rows continue after the highest id
        new_id = connection.execute(
            text("INSERT INTO temas (nombre) VALUES ('Nuevo') RETURNING id")
        ).scalar_one()
    assert new_id == 9


def test_logical_restore_into_the_same_database(seeded_url: str, tmp_path: Path) -> None:
    backups = tmp_path / "b"
    before = table_contents(seeded_url)
    info = create_backup(target_of(seeded_url), backups, BackupOptions(fmt="logical", keep=2)).info
    assert info.verified_at is not None
    with connect(target_of(seeded_url)) as connection:
        connection.execute(text("DELETE FROM sesiones WHERE id > 10"))
    restore_backup(target_of(seeded_url), backups, info.name)
    assert table_contents(seeded_url) == before


def test_password_in_target_is_warned_and_masked(
    tmp_path: Path, pg_database: str, cli: Cli
) -> None:
    source = f"sqlite:///{tmp_path / 'p.db'}"
    migrate.upgrade(target_of(source))
    seed(target_of(source))
    migrate.upgrade(target_of(pg_database))
    backups = tmp_path / "b"
    create_backup(target_of(source), backups, BackupOptions(fmt="logical"))
    target = pg_database.replace(
        "postgres@", "postgres:VisibleSecret1@", 1
    )  # trust auth ignores it
    run = cli("backup", "restore", "--target", target, "--yes", "--dir", str(backups), url=source)
    assert run.exit_code == 0, run.stderr
    assert "visible to other users" in run.stderr
    assert "VisibleSecret1" not in run.stdout + run.stderr


def test_native_backup_still_refuses_the_other_engine(
    tmp_path: Path, pg_database: str, cli: Cli
) -> None:
    source = f"sqlite:///{tmp_path / 'p.db'}"
    migrate.upgrade(target_of(source))
    migrate.upgrade(target_of(pg_database))
    backups = tmp_path / "b"
    create_backup(target_of(source), backups)
    run = cli(
        "backup", "restore", "--target", pg_database, "--yes", "--dir", str(backups), url=source
    )
    assert run.exit_code == 1
    assert "is a sqlite backup; the database is postgresql" in run.stderr


def test_target_at_another_revision_is_refused_before_any_write(
    tmp_path: Path,
    pg_database: str,
    cli: Cli,
) -> None:
    source = f"sqlite:///{tmp_path / 'p.db'}"
    migrate.upgrade(target_of(source))
    seed(target_of(source))
    backups = tmp_path / "b"
    create_backup(target_of(source), backups, BackupOptions(fmt="logical"))
    run = cli(
        "backup", "restore", "--target", pg_database, "--yes", "--dir", str(backups), url=source
    )
    assert run.exit_code == 1
    assert "is at <none>" in run.stderr and "run planctl db-upgrade" in run.stderr
    assert len(list_backups(backups)) == 1  # no safety backup was taken
