"""Backups through the Python API and the CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from sqlalchemy import text

from planctl.backup import (
    create_backup,
    find_backup,
    list_backups,
    prune,
    restore_backup,
    rotate,
    verify_backup,
)
from planctl.backup.catalog import BackupSet, prune_plan
from planctl.backup.compress import Compression
from planctl.backup.options import BackupOptions, RestoreOptions
from planctl.backup.store import BackupInfo
from planctl.db import migrate
from planctl.db.engine import connect
from planctl.errors import (
    LockedError,
    NothingToDoError,
    PlanctlError,
    UsageError,
    VerificationError,
)

from .conftest import Cli
from .helpers import table_contents, target_of


def _change_everything(url: str) -> None:
    with connect(target_of(url)) as connection:
        connection.execute(text("DELETE FROM sesiones WHERE id % 3 = 0"))
        connection.execute(text("UPDATE clientes SET notas = 'cambiado, después' WHERE id = 1"))
        connection.execute(text("INSERT INTO temas (nombre) VALUES ('Tema nuevo')"))


@pytest.mark.parametrize("compress", [Compression.ZSTD, Compression.NONE])
def test_backup_change_restore_gives_back_every_row(
    seeded_url: str, tmp_path: Path, compress: Compression
) -> None:
    backups = tmp_path / "backups"
    before = table_contents(seeded_url)
    result = create_backup(target_of(seeded_url), backups, BackupOptions(compress=compress))
    assert result.info.row_counts["sesiones"] == len(before["sesiones"])
    assert result.info.revision == migrate.head_revision()
    _change_everything(seeded_url)
    assert table_contents(seeded_url) != before

    restored = restore_backup(target_of(seeded_url), backups, "latest")
    assert table_contents(seeded_url) == before
    assert restored.restored.name == result.info.name
    assert restored.safety is not None and restored.safety.reason == "pre-restore"
    assert not restored.needs_upgrade
    # the safety backup holds the changed state and can itself be restored
    restore_backup(
        target_of(seeded_url), backups, restored.safety.name, RestoreOptions(safety_backup=False)
    )
    assert len(table_contents(seeded_url)["temas"]) == len(before["temas"]) + 1


def test_files_metadata_and_permissions(seeded_url: str, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    info = create_backup(
        target_of(seeded_url), backups, BackupOptions(label="Antes de la migración", keep=3)
    ).info
    assert stat.S_IMODE(backups.stat().st_mode) == 0o700
    data, meta = backups / info.data_file, backups / f"{info.name}.json"
    for path in (data, meta):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = json.loads(meta.read_text())
    assert stored["kind"] == "full" and stored["parent"] is None
    assert stored["engine"] == ("sqlite" if seeded_url.startswith("sqlite") else "postgresql")
    assert stored["created"].endswith("+00:00") and "." in stored["created"]  # UTC, microseconds
    assert stored["size"] == data.stat().st_size
    import hashlib

    assert stored["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert stored["row_counts"]["sesiones"] == 320
    assert stored["revision"] == migrate.head_revision()
    assert stored["verified_at"] and stored["planctl_version"]
    assert "antes-de-la-migraci" in info.name


def test_password_is_masked_in_metadata(
    tmp_path: Path, pg_admin_url: str, pg_database: str
) -> None:
    url = pg_database.replace("postgres@", "postgres:NotShownAnywhere@", 1)
    migrate.upgrade(target_of(url))
    info = create_backup(target_of(url), tmp_path / "b").info
    text_ = (tmp_path / "b" / f"{info.name}.json").read_text()
    assert "NotShownAnywhere" not in text_ and ":***@" in text_


def test_rotation_keeps_the_newest(migrated_url: str, tmp_path: Path) -> None:
    backups = tmp_path / "b"
    names = [
        create_backup(target_of(migrated_url), backups, BackupOptions(keep=3)).info.name
        for _ in range(5)
    ]
    assert [i.name for i in list_backups(backups)] == list(reversed(names[-3:]))
    assert sorted(p.name for p in backups.iterdir() if not p.name.startswith(".")) == sorted(
        [f"{n}.json" for n in names[-3:]] + [i.data_file for i in list_backups(backups)]
    )
    assert [i.name for i in rotate(backups, 1)] == names[2:4]
    assert [i.name for i in list_backups(backups)] == [names[-1]]


def test_group_options_are_applied_or_refused_never_dropped(
    migrated_url: str, tmp_path: Path, cli: Cli
) -> None:
    elsewhere = tmp_path / "elsewhere"
    assert cli("backup", "--dir", str(elsewhere), url=migrated_url).exit_code == 0
    listed = cli("backup", "--dir", str(elsewhere), "list", "--json", url=migrated_url)
    assert listed.exit_code == 0, listed.stderr
    assert [b["kind"] for b in json.loads(listed.stdout)] == ["full"]  # not ./backups
    # written on both sides, the sub-command's own value wins
    args = ["--dir", "nowhere", "list", "--dir", str(elsewhere), "--json"]
    both = cli("backup", *args, url=migrated_url)
    assert both.exit_code == 0 and len(json.loads(both.stdout)) == 1, both.stderr
    for options in (
        ["--keep", "1"],
        ["--format", "logical"],
        ["--keep", "1", "--format", "logical"],
    ):
        run = cli("backup", *options, "list", url=migrated_url)
        assert run.exit_code == 2, (options, run.stdout)
        assert f"{options[0]} is an option of 'planctl backup' itself" in run.stderr
        assert "not of 'planctl backup list'" in run.stderr
    assert [b.name for b in list_backups(elsewhere)] and not Path("backups").exists()
    # the card's commands work exactly
    assert cli("backup", "--keep", "5", url=migrated_url).exit_code == 0


@pytest.mark.parametrize("keep", [0, -1])
def test_keep_must_be_positive(migrated_url: str, tmp_path: Path, keep: int, cli: Cli) -> None:
    with pytest.raises(UsageError):
        create_backup(target_of(migrated_url), tmp_path / "b", BackupOptions(keep=keep))
    run = cli("backup", "--keep", str(keep), "--dir", str(tmp_path / "c"), url=migrated_url)
    assert run.exit_code == 2
    assert run.stderr.startswith("error: --keep must be at least 1")
    assert not (tmp_path / "c").exists()


def test_verify_detects_a_flipped_byte(seeded_url: str, tmp_path: Path) -> None:
    backups = tmp_path / "b"
    info = create_backup(
        target_of(seeded_url), backups, BackupOptions(compress=Compression.NONE)
    ).info
    assert verify_backup(backups, info.name)[0].ok
    data = backups / info.data_file
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    data.write_bytes(bytes(raw))
    [result] = verify_backup(backups, info.name)
    assert not result.ok and "checksum mismatch" in (result.problem or "")
    before = table_contents(seeded_url)
    with pytest.raises(VerificationError):
        restore_backup(target_of(seeded_url), backups, info.name)
    assert table_contents(seeded_url) == before
    assert len(list_backups(backups)) == 1  # no safety backup for a refused restore


def test_engine_check_catches_damage_the_checksum_cannot(seeded_url: str, tmp_path: Path) -> None:
    """A file whose metadata was rewritten to match still fails the engine's own check."""
    backups = tmp_path / "b"
    info = create_backup(
        target_of(seeded_url), backups, BackupOptions(compress=Compression.NONE)
    ).info
    data = backups / info.data_file
    data.write_bytes(data.read_bytes()[: info.size // 3])  # truncated
    import dataclasses

    from planctl.backup.store import sha256_file, write_metadata

    write_metadata(
        backups, dataclasses.replace(info, sha256=sha256_file(data), size=data.stat().st_size)
    )
    [result] = verify_backup(backups, info.name)
    assert not result.ok


def test_restore_refuses_the_other_engine(tmp_path: Path, pg_database: str) -> None:
    sqlite_url = f"sqlite:///{tmp_path / 'p.db'}"
    for url in (sqlite_url, pg_database):
        migrate.upgrade(target_of(url))
    create_backup(target_of(sqlite_url), tmp_path / "from_sqlite")
    create_backup(target_of(pg_database), tmp_path / "from_pg")
    with pytest.raises(PlanctlError, match="is a sqlite backup; the database is postgresql"):
        restore_backup(target_of(pg_database), tmp_path / "from_sqlite")
    with pytest.raises(PlanctlError, match="is a postgresql backup; the database is sqlite"):
        restore_backup(target_of(sqlite_url), tmp_path / "from_pg")


def test_restore_refuses_a_newer_schema(migrated_url: str, tmp_path: Path) -> None:
    import dataclasses

    from planctl.backup.store import write_metadata

    backups = tmp_path / "b"
    info = create_backup(target_of(migrated_url), backups).info
    write_metadata(backups, dataclasses.replace(info, revision="ffffffffffff"))
    with pytest.raises(PlanctlError, match="newer or unknown schema revision ffffffffffff"):
        restore_backup(target_of(migrated_url), backups)


def test_restore_of_an_older_revision_says_upgrade(migrated_url: str, tmp_path: Path) -> None:
    backups = tmp_path / "b"
    migrate.downgrade(target_of(migrated_url), "base")
    migrate.stamp(target_of(migrated_url), "base")
    create_backup(target_of(migrated_url), backups)
    migrate.upgrade(target_of(migrated_url))
    result = restore_backup(target_of(migrated_url), backups)
    assert result.revision is None and result.needs_upgrade


def test_nothing_to_restore(migrated_url: str, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(NothingToDoError):
        restore_backup(target_of(migrated_url), tmp_path / "empty")
    with pytest.raises(NothingToDoError, match="does not exist"):
        restore_backup(target_of(migrated_url), tmp_path / "missing")
    create_backup(target_of(migrated_url), tmp_path / "b")
    with pytest.raises(NothingToDoError, match="no backup named 'nope'"):
        find_backup(tmp_path / "b", "nope")


def test_lock_is_exclusive(migrated_url: str, tmp_path: Path) -> None:
    from planctl.backup.store import backup_lock, prepare_dir

    backups = prepare_dir(tmp_path / "b")
    with backup_lock(backups), pytest.raises(LockedError):
        create_backup(target_of(migrated_url), backups, BackupOptions(lock_timeout=0.2))
    assert list_backups(backups) == []


def _info(
    directory: Path, name: str, created: str, parent: str | None = None, sequence: int = 0
) -> BackupInfo:
    """A backup whose data file exists and matches (so the catalog finds it restorable)."""
    import hashlib

    data = f"data of {name}".encode()
    (directory / f"{name}.sqlite").write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    return BackupInfo(
        name=name,
        kind="delta" if parent else "full",
        engine="delta" if parent else "sqlite",
        created=created,
        data_file=f"{name}.sqlite",
        sha256=digest,
        size=len(data),
        source="",
        revision=None,
        parent=parent,
        sequence=sequence or None,
        extra={"parent_sha256": hashlib.sha256(f"data of {parent}".encode()).hexdigest()}
        if parent
        else {},
    )


def test_prune_plan_follows_restic(tmp_path: Path) -> None:
    raw = [
        ("a", "2026-10-01T10:00:00+00:00", None),
        ("b", "2026-10-15T10:00:00+00:00", None),
        ("c", "2026-11-02T10:00:00+00:00", None),
        ("d", "2026-11-20T08:00:00+00:00", None),
        ("e", "2026-11-20T20:00:00+00:00", None),
        ("e1", "2026-11-20T21:00:00+00:00", "e"),
        ("f", "2026-11-21T09:00:00+00:00", None),
    ]
    infos = BackupSet(
        tmp_path,
        [_info(tmp_path, n, c, p, sequence) for sequence, (n, c, p) in enumerate(raw, 1)],
        [],
    )
    plan = prune_plan(infos, keep_daily=2, keep_monthly=2, timezone="Europe/Madrid")
    kept = {chain.root.name: reasons for chain, reasons in plan.keep}
    assert kept == {"f": ["daily", "monthly"], "e": ["daily"], "b": ["monthly"]}
    assert [c.root.name for c in plan.remove] == ["d", "c", "a"]
    # chains move as units: e1 stays with e
    assert [m.name for c, _ in plan.keep if c.root.name == "e" for m in c.members] == ["e", "e1"]
    # the newest is never removed, whatever the rules say
    plan = prune_plan(infos, keep_weekly=0, keep_last=0, keep_daily=0, keep_monthly=0)
    assert [c.root.name for c, _ in plan.keep] == ["f"]


def test_prune_dry_run_and_real(migrated_url: str, tmp_path: Path, cli: Cli) -> None:
    backups = tmp_path / "b"
    for _ in range(3):
        create_backup(target_of(migrated_url), backups)
    plan = prune(backups, keep_last=1, dry_run=True)
    assert len(plan.remove) == 2 and len(list_backups(backups)) == 3
    run = cli("backup", "prune", "--keep-last", "2", "--dir", str(backups), url=migrated_url)
    assert run.exit_code == 0, run.stderr
    assert len(list_backups(backups)) == 2
    run = cli("backup", "prune", "--dir", str(backups), url=migrated_url)
    assert run.exit_code == 2 and "at least one --keep-* rule" in run.stderr


def test_cli_backup_list_verify_restore(seeded_url: str, tmp_path: Path, cli: Cli) -> None:
    backups = tmp_path / "b"
    run = cli("backup", "--keep", "5", "--dir", str(backups), url=seeded_url)
    assert run.exit_code == 0, run.stderr
    name = list_backups(backups)[0].name
    assert name in run.stdout and "verified and written" in run.stdout
    run = cli("backup", "list", "--json", "--dir", str(backups), url=seeded_url)
    assert [b["name"] for b in json.loads(run.stdout)] == [name]
    run = cli("backup", "list", "--dir", str(backups), url=seeded_url)
    assert name in run.stdout
    run = cli("backup", "verify", "--all", "--dir", str(backups), url=seeded_url)
    assert run.exit_code == 0 and f"OK      {name}" in run.stdout
    before = table_contents(seeded_url)
    _change_everything(seeded_url)
    run = cli("backup", "restore", "latest", "--yes", "--dir", str(backups), url=seeded_url)
    assert run.exit_code == 0, run.stderr
    assert "no db-upgrade needed" in run.stdout and "Safety backup" in run.stdout
    assert table_contents(seeded_url) == before


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["backup", "restore", "nope", "--yes"], 3, "no backup named 'nope'"),
        (["backup", "verify", "nope"], 3, "no backup named 'nope'"),
        (["backup", "list", "--dir", "/nonexistent/planctl"], 3, "does not exist"),
        (["backup", "restore", "--yes", "--dir", "/nonexistent/planctl"], 3, "does not exist"),
    ],
)
def test_cli_errors(
    migrated_url: str, tmp_path: Path, cli: Cli, args: list[str], code: int, needle: str
) -> None:
    create_backup(target_of(migrated_url), tmp_path / "b")
    if "--dir" not in args:
        args = [*args, "--dir", str(tmp_path / "b")]
    run = cli(*args, url=migrated_url)
    assert run.exit_code == code, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], run.stderr


def test_backup_dir_that_is_a_file(migrated_url: str, tmp_path: Path, cli: Cli) -> None:
    (tmp_path / "file").write_text("x")
    run = cli("backup", "--dir", str(tmp_path / "file"), url=migrated_url)
    assert run.exit_code == 1 and "is not a directory" in run.stderr


def test_verify_cli_exits_5_naming_the_bad_backup(
    seeded_url: str, tmp_path: Path, cli: Cli
) -> None:
    backups = tmp_path / "b"
    good = create_backup(target_of(seeded_url), backups).info
    bad = create_backup(target_of(seeded_url), backups).info
    (backups / bad.data_file).write_bytes(b"garbage")
    run = cli("backup", "verify", "--all", "--dir", str(backups), url=seeded_url)
    assert run.exit_code == 5
    assert f"OK      {good.name}" in run.stdout and f"FAILED  {bad.name}" in run.stdout
    assert bad.name in run.stderr
    run = cli("backup", "restore", bad.name, "--yes", "--dir", str(backups), url=seeded_url)
    assert run.exit_code == 5


def test_restore_needs_confirmation(
    seeded_url: str, tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    backups = tmp_path / "b"
    create_backup(target_of(seeded_url), backups)
    _change_everything(seeded_url)
    changed = table_contents(seeded_url)
    monkeypatch.setattr("planctl.cli.db.can_prompt", lambda: True)
    monkeypatch.setattr("planctl.cli.backup.can_prompt", lambda: True)
    run = cli("backup", "restore", "--dir", str(backups), url=seeded_url, input="n\n")
    assert run.exit_code == 1
    assert table_contents(seeded_url) == changed
    monkeypatch.setattr("planctl.cli.db.can_prompt", lambda: False)
    monkeypatch.setattr("planctl.cli.backup.can_prompt", lambda: False)
    run = cli("backup", "restore", "--dir", str(backups), url=seeded_url)
    assert run.exit_code == 1 and "--yes" in run.stderr
    assert table_contents(seeded_url) == changed


def test_backups_are_logged(seeded_url: str, tmp_path: Path, cli: Cli) -> None:
    from planctl.logs import close_service_loggers

    run = cli("backup", "--dir", str(tmp_path / "b"), url=seeded_url)
    assert run.exit_code == 0
    close_service_loggers()
    log = (tmp_path / "logs" / "backup.log").read_text()
    assert "| INFO | planctl.backup | backup " in log and "written" in log


def test_missing_pg_dump_is_explained(
    pg_database: str, tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrate.upgrade(target_of(pg_database))
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PLANCTL_PG_BINDIR", str(empty))
    run = cli("backup", "--dir", str(tmp_path / "b"), url=pg_database)
    assert run.exit_code == 1
    assert run.stderr.startswith(f"error: PLANCTL_PG_BINDIR '{empty}' holds no pg_dump")
    assert "(set in the environment)" in run.stderr
    assert not (tmp_path / "b").exists()  # refused before anything was created


def test_too_old_pg_dump_is_refused(
    pg_database: str, tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No PostgreSQL 9 client can be installed here: a script stands in for one."""
    migrate.upgrade(target_of(pg_database))
    old = tmp_path / "bin"
    old.mkdir()
    fake = old / "pg_dump"
    fake.write_text("#!/bin/sh\necho 'pg_dump (PostgreSQL) 9.6.24'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PLANCTL_PG_BINDIR", str(old))
    run = cli("backup", "--dir", str(tmp_path / "b"), url=pg_database)
    assert run.exit_code == 1
    line = run.stderr.strip()
    with connect(target_of(pg_database)) as connection:
        major = int(connection.execute(text("SHOW server_version_num")).scalar_one()) // 10000
    assert "pg_dump 9" in line and f"older than the PostgreSQL {major} server" in line
    assert "install postgresql-client-" in line
    assert list_backups(tmp_path / "b") == []


def test_engine_check_runs_before_rotation(seeded_url: str, tmp_path: Path) -> None:
    """Without --keep nothing is deleted, so the engine check waits for `backup verify`."""
    backups = tmp_path / "b"
    plain = create_backup(target_of(seeded_url), backups).info
    assert plain.verified_at is None
    checked = create_backup(target_of(seeded_url), backups, BackupOptions(keep=5)).info
    assert checked.verified_at is not None
    forced = create_backup(target_of(seeded_url), backups, BackupOptions(verify=True)).info
    assert forced.verified_at is not None
    [result] = verify_backup(backups, plain.name)
    assert result.ok and result.info.verified_at is not None


def test_sqlite_paths_with_uri_characters(tmp_path: Path) -> None:
    """'#' and '%' in a path must not make SQLite's URI parser open another file.

    ('?' cannot appear literally in a DATABASE_URL at all: it starts the query.)"""
    from planctl.db.seed import seed

    odd = tmp_path / "a#b%zz"
    odd.mkdir()
    url = f"sqlite:///{odd / 'p.db'}"
    migrate.upgrade(target_of(url))
    seed(target_of(url))
    before = table_contents(url)
    info = create_backup(target_of(url), odd / "backups#1", BackupOptions(keep=2)).info
    assert info.row_counts["sesiones"] == 320 and info.revision == migrate.head_revision()
    with connect(target_of(url)) as connection:
        connection.execute(text("DELETE FROM sesiones"))
    restore_backup(target_of(url), odd / "backups#1", info.name)
    assert table_contents(url) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a#b%zz"]  # no stray 'a' file


def test_damaged_metadata_is_reported_not_deleted(
    seeded_url: str, tmp_path: Path, cli: Cli
) -> None:
    backups = tmp_path / "b"
    damaged = create_backup(target_of(seeded_url), backups).info
    meta = backups / f"{damaged.name}.json"
    meta.write_text(meta.read_text()[:100])
    create_backup(target_of(seeded_url), backups)  # cleans leftovers under the lock
    assert (backups / damaged.data_file).exists()
    run = cli("backup", "verify", "--all", "--dir", str(backups), url=seeded_url)
    assert run.exit_code == 5
    assert f"FAILED  {damaged.name}" in run.stdout and "damaged" in run.stdout


def test_safety_copies_do_not_push_real_backups_out(seeded_url: str, tmp_path: Path) -> None:
    backups = tmp_path / "b"
    day1 = create_backup(target_of(seeded_url), backups, BackupOptions(label="day1")).info
    day2 = create_backup(target_of(seeded_url), backups, BackupOptions(label="day2")).info
    for _ in range(3):
        restore_backup(target_of(seeded_url), backups, "latest")
    latest = create_backup(target_of(seeded_url), backups, BackupOptions(keep=3)).info
    names = {i.name for i in list_backups(backups)}
    assert {day1.name, day2.name, latest.name} <= names
    assert len([n for n in names if "pre-restore" in n]) == 3
    plan = prune(backups, keep_last=1, dry_run=True)
    assert [c.root.name for c, _ in plan.keep] == [latest.name]
    assert all("pre-restore" not in c.root.name for c in plan.remove)


def test_postgres_restore_leaves_other_applications_tables(
    pg_database: str, tmp_path: Path
) -> None:
    migrate.upgrade(target_of(pg_database))
    create_backup(target_of(pg_database), tmp_path / "b")
    with connect(target_of(pg_database)) as connection:
        connection.execute(text("CREATE TABLE other_app_invoices (id int primary key)"))
        connection.execute(text("INSERT INTO other_app_invoices VALUES (1)"))
    restore_backup(
        target_of(pg_database), tmp_path / "b", options=RestoreOptions(safety_backup=False)
    )
    with connect(target_of(pg_database)) as connection:
        assert connection.execute(text("SELECT count(*) FROM other_app_invoices")).scalar() == 1


def test_libpq_env_keeps_the_callers_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from planctl.backup.postgres_engine import libpq_env

    monkeypatch.setenv("PGPASSWORD", "FromEnvironment")
    monkeypatch.setenv("PGSSLMODE", "verify-full")
    with libpq_env(target_of("postgresql+psycopg://app@db.example.com/planner")) as env:
        assert env["PGPASSWORD"] == "FromEnvironment" and env["PGSSLMODE"] == "verify-full"
        assert env["PGHOST"] == "db.example.com" and env["PGUSER"] == "app"
    monkeypatch.delenv("PGHOST", raising=False)
    with libpq_env(target_of("postgresql+psycopg:///planner")) as env:
        assert "PGHOST" not in env  # libpq's default: the local socket
    with libpq_env(target_of("postgresql+psycopg://app:UrlSecret@db/planner")) as env:
        # The URL's password wins, in the child's environment only: no file to outlive us.
        assert env["PGPASSWORD"] == "UrlSecret" and "PGPASSFILE" not in env
