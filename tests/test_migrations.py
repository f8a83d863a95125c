"""Alembic migrations through planctl: round trips, drift detection, commands."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import Column, MetaData, String, inspect, text

from planctl.backup.options import BackupOptions
from planctl.db import changelog, legacy, migrate
from planctl.db.engine import connect
from planctl.db.schema import TABLE_NAMES, metadata
from planctl.errors import VerificationError

from .conftest import Cli, ScramServer
from .helpers import table_contents, target_of


def _tables(url: str) -> set[str]:
    with connect(target_of(url)) as connection:
        return set(inspect(connection).get_table_names())


SYNC_REVISION = "b90989ae79cc"  # creates the calendar sync tables


def _previous(revision: str | None) -> str | None:
    """The revision one step below *revision*."""
    assert revision is not None
    down = migrate.script_directory().get_revision(revision).down_revision
    assert down is None or isinstance(down, str)
    return down


def test_sync_tables_come_and_go_with_their_revision(db_url: str) -> None:
    sync_tables = {"planctl_sync_states", "planctl_sync_runs"}
    migrate.upgrade(target_of(db_url))
    assert sync_tables <= _tables(db_url)
    migrate.downgrade(target_of(db_url), _previous(SYNC_REVISION) or "base")
    assert not ((sync_tables | set(legacy.SYNC_TABLE_NAMES)) & _tables(db_url))
    assert set(TABLE_NAMES) <= _tables(db_url)  # the planner's data tables stay
    migrate.upgrade(target_of(db_url))
    assert migrate.check(target_of(db_url)).ok


# -- planctl's bookkeeping turns English (revision 31d0f0df5b58) ----------------------------------

OLD_STATES = [  # id, backend, sesion_id, id_remoto, etag, hash_local, hash_remoto
    (3, "simulated", 11, "planctl-11", '"7"', "a" * 64, "b" * 64),
    (8, "caldav", 12, "/cal/planctl-12.ics", None, "~cancelled", "c" * 64),
]
OLD_RUNS = [  # id, backend, modo, resultado, creados … errores
    (1, "simulated", "sync", "ok", 5, 0, 0, 2, 0, 0),
    (2, "simulated", "push", "conflictos", 0, 1, 0, 6, 1, 0),
    (4, "caldav", "pull", "errores", 0, 0, 1, 6, 0, 2),
    (5, "caldav", "sync", "interrumpida", 0, 0, 0, 0, 0, 0),
    (9, "simulated", "sync", "en_curso", 0, 0, 0, 0, 0, 0),
]
SYNCED = "2026-12-01 10:00:00+00:00"
NAMES = {  # what a database at head calls each constraint and index of the sync tables
    "planctl_sync_states": {
        "pk": "pk_planctl_sync_states",
        "unique": ["uq_planctl_sync_states_backend_session_id"],
        "index": ["ix_planctl_sync_states_backend_remote_id"],
        "check": [],
    },
    "planctl_sync_runs": {
        "pk": "pk_planctl_sync_runs",
        "unique": [],
        "index": ["ix_planctl_sync_runs_backend_started_at"],
        "check": ["ck_planctl_sync_runs_mode", "ck_planctl_sync_runs_result"],
    },
    "estados_sincronizacion": {
        "pk": "pk_estados_sincronizacion",
        "unique": ["uq_estados_sincronizacion_backend_sesion_id"],
        "index": ["ix_estados_sincronizacion_backend_id_remoto"],
        "check": [],
    },
    "ejecuciones_sincronizacion": {
        "pk": "pk_ejecuciones_sincronizacion",
        "unique": [],
        "index": ["ix_ejecuciones_sincronizacion_backend_inicio"],
        "check": ["ck_ejecuciones_sincronizacion_modo", "ck_ejecuciones_sincronizacion_resultado"],
    },
}


RUN_KEYS = ("i", "b", "m", "r", "c1", "c2", "c3", "c4", "c5", "c6")


def _insert_old_sync_rows(url: str) -> None:
    with connect(target_of(url)) as connection:
        for state in OLD_STATES:
            connection.execute(
                text(
                    "INSERT INTO estados_sincronizacion (id, backend, sesion_id, id_remoto, etag, "
                    "hash_local, hash_remoto, sincronizado_en) "
                    "VALUES (:i, :b, :s, :r, :e, :hl, :hr, :t)"
                ),
                dict(zip(("i", "b", "s", "r", "e", "hl", "hr"), state, strict=True), t=SYNCED),
            )
        for run in OLD_RUNS:
            connection.execute(
                text(
                    "INSERT INTO ejecuciones_sincronizacion (id, backend, modo, resultado, "
                    "creados, actualizados, eliminados, sin_cambios, conflictos, errores, "
                    "inicio, fin) VALUES (:i, :b, :m, :r, :c1, :c2, :c3, :c4, :c5, :c6, :t, :t)"
                ),
                dict(zip(RUN_KEYS, run, strict=True), t=SYNCED),
            )
        if connection.dialect.name == "postgresql":  # as if the rows had taken their ids
            tops = {
                "estados_sincronizacion": max(r[0] for r in OLD_STATES),
                "ejecuciones_sincronizacion": max(r[0] for r in OLD_RUNS),
            }
            for table, top in tops.items():
                connection.execute(text(f"SELECT setval('{table}_id_seq', {top})"))


def _names(url: str, table: str) -> dict[str, object]:
    with connect(target_of(url)) as connection:
        found = inspect(connection)
        return {
            "pk": found.get_pk_constraint(table)["name"],
            "unique": sorted(str(u["name"]) for u in found.get_unique_constraints(table)),
            "index": sorted(
                str(i["name"]) for i in found.get_indexes(table) if not i.get("unique")
            ),
            "check": sorted(str(c["name"]) for c in found.get_check_constraints(table)),
        }


def _logged_tables(url: str) -> list[str]:
    with connect(target_of(url)) as connection:
        query = f"SELECT DISTINCT table_name FROM {changelog.LOG_TABLE} ORDER BY table_name"
        return [str(name) for name in connection.execute(text(query)).scalars()]


def test_the_sync_tables_turn_english_with_their_rows_and_back(db_url: str) -> None:
    before = _previous(legacy.REVISION)
    assert before is not None
    migrate.upgrade(target_of(db_url), before)
    _insert_old_sync_rows(db_url)
    assert _logged_tables(db_url) == ["ejecuciones_sincronizacion", "estados_sincronizacion"]

    migrate.upgrade(target_of(db_url))
    assert not (set(legacy.SYNC_TABLE_NAMES) & _tables(db_url))
    with connect(target_of(db_url)) as connection:
        states = connection.execute(
            text(
                "SELECT id, backend, session_id, remote_id, etag, local_hash, remote_hash, "
                "synced_at FROM planctl_sync_states ORDER BY id"
            )
        ).all()
        runs = connection.execute(
            text(
                "SELECT id, backend, mode, result, created, updated, deleted, unchanged, "
                "conflicts, errors, started_at, finished_at FROM planctl_sync_runs ORDER BY id"
            )
        ).all()
        assert all(
            changelog.covers(connection, t) for t in ("planctl_sync_states", "planctl_sync_runs")
        )
        assert not changelog.covers(connection, "estados_sincronizacion")
    assert [tuple(r[:7]) for r in states] == OLD_STATES
    assert all(str(r.synced_at).startswith("2026-12-01 10:00:00") for r in states)
    english = {
        "ok": "ok",
        "conflictos": "conflicts",
        "errores": "errors",
        "interrumpida": "interrupted",
        "en_curso": "running",
    }
    assert [tuple(r[:10]) for r in runs] == [
        (*row[:3], english[row[3]], *row[4:]) for row in OLD_RUNS
    ]
    assert _logged_tables(db_url) == ["planctl_sync_runs", "planctl_sync_states"]
    for table in ("planctl_sync_states", "planctl_sync_runs"):
        assert _names(db_url, table) == NAMES[table]
    assert migrate.check(
        target_of(db_url)
    ).ok  # the schema is the models', indexes and uniques by name

    # The code writes the English tables; new ids continue after the old rows'.
    from planctl.sync import state as sync_state

    with connect(target_of(db_url)) as connection:
        run_id = sync_state.start_run(connection, "simulated", "push")
        sync_state.finish_run(connection, run_id, "conflicts", {"created": 4, "conflicts": 1})
        sync_state.save_state(
            connection,
            "simulated",
            13,
            remote_id="planctl-13",
            etag=None,
            hash_local="d" * 64,
            hash_remote="e" * 64,
        )
        last = sync_state.last_run(connection, "simulated")
        assert sync_state.load_states(connection, "simulated")[13].remote_id == "planctl-13"
    assert run_id == 10
    assert last is not None and (last.mode, last.result) == ("push", "conflicts")
    assert last.counts == {
        "created": 4,
        "updated": 0,
        "deleted": 0,
        "unchanged": 0,
        "conflicts": 1,
        "errors": 0,
    }
    if db_url.startswith("postgresql"):
        with connect(target_of(db_url)) as connection:
            sequence = connection.execute(
                text("SELECT pg_get_serial_sequence('planctl_sync_runs', 'id')")
            ).scalar_one()
        assert sequence == "public.planctl_sync_runs_id_seq"

    migrate.downgrade(target_of(db_url), before)
    assert not ({"planctl_sync_states", "planctl_sync_runs"} & _tables(db_url))
    with connect(target_of(db_url)) as connection:
        old_states = connection.execute(
            text(
                "SELECT id, backend, sesion_id, id_remoto, etag, hash_local, hash_remoto "
                "FROM estados_sincronizacion ORDER BY id"
            )
        ).all()
        old_runs = connection.execute(
            text(
                "SELECT id, backend, modo, resultado, creados, actualizados, eliminados, "
                "sin_cambios, conflictos, errores FROM ejecuciones_sincronizacion ORDER BY id"
            )
        ).all()
        assert all(changelog.covers(connection, t) for t in legacy.SYNC_TABLE_NAMES)
    assert [tuple(r) for r in old_states] == [
        *OLD_STATES,
        (9, "simulated", 13, "planctl-13", None, "d" * 64, "e" * 64),
    ]
    assert [tuple(r) for r in old_runs] == [
        *OLD_RUNS,
        (10, "simulated", "push", "conflictos", 4, 0, 0, 0, 1, 0),
    ]
    assert _logged_tables(db_url) == ["ejecuciones_sincronizacion", "estados_sincronizacion"]
    for table in legacy.SYNC_TABLE_NAMES:
        assert _names(db_url, table) == NAMES[table]
    migrate.upgrade(target_of(db_url))
    assert migrate.check(target_of(db_url)).ok


def _old_sync_rows(url: str) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    with connect(target_of(url)) as connection:
        states = connection.execute(
            text(
                "SELECT id, backend, sesion_id, id_remoto, etag, hash_local, hash_remoto "
                "FROM estados_sincronizacion ORDER BY id"
            )
        ).all()
        runs = connection.execute(
            text(
                "SELECT id, backend, modo, resultado, creados, actualizados, eliminados, "
                "sin_cambios, conflictos, errores FROM ejecuciones_sincronizacion ORDER BY id"
            )
        ).all()
    return [tuple(r) for r in states], [tuple(r) for r in runs]


def test_a_backup_chain_from_before_the_rename_restores_then_upgrades(
    seeded_url: str, tmp_path: Path
) -> None:
    """A full backup and a delta taken before the rename, sync rows in the Spanish tables
    of both, restore into the upgraded database: it returns to their revision with those
    rows (the delta's included), and the next upgrade renames them."""
    from planctl.backup import create_backup, delta, restore_backup

    before = _previous(legacy.REVISION)
    assert before is not None
    migrate.downgrade(target_of(seeded_url), before)
    _insert_old_sync_rows(seeded_url)
    backups = tmp_path / "backups"
    assert (
        create_backup(target_of(seeded_url), backups, BackupOptions(incremental=True)).info.kind
        == "full"
    )
    with connect(target_of(seeded_url)) as connection:
        connection.execute(text("UPDATE estados_sincronizacion SET etag = '\"99\"' WHERE id = 3"))
        connection.execute(text("DELETE FROM ejecuciones_sincronizacion WHERE id = 9"))
        connection.execute(text("UPDATE sesiones SET notas = 'antes del cambio' WHERE id = 1"))
    last = create_backup(target_of(seeded_url), backups, BackupOptions(incremental=True)).info
    assert last.kind == "delta" and last.revision == before
    changes = delta.read(backups / last.data_file).tables
    assert set(changes) == {"sesiones", *legacy.SYNC_TABLE_NAMES}
    expected, expected_sync = table_contents(seeded_url), _old_sync_rows(seeded_url)

    migrate.upgrade(target_of(seeded_url))
    with connect(target_of(seeded_url)) as connection:
        connection.execute(text("DELETE FROM planctl_sync_states"))
        connection.execute(text("UPDATE sesiones SET notas = 'después' WHERE id = 1"))
    result = restore_backup(target_of(seeded_url), backups, last.name)
    assert result.needs_upgrade and migrate.current(target_of(seeded_url)) == before
    assert table_contents(seeded_url) == expected and _old_sync_rows(seeded_url) == expected_sync

    migrate.upgrade(target_of(seeded_url))
    with connect(target_of(seeded_url)) as connection:
        etags = connection.execute(text("SELECT id, etag FROM planctl_sync_states ORDER BY id"))
        assert [tuple(r) for r in etags] == [(3, '"99"'), (8, None)]
        results = connection.execute(text("SELECT id, result FROM planctl_sync_runs ORDER BY id"))
        assert [tuple(r) for r in results] == [
            (1, "ok"),
            (2, "conflicts"),
            (4, "errors"),
            (5, "interrupted"),
        ]
    assert table_contents(seeded_url) == expected and migrate.check(target_of(seeded_url)).ok


def test_exactly_one_head() -> None:
    heads = migrate.script_directory().get_heads()
    assert len(heads) == 1
    assert migrate.head_revision() == heads[0]


def test_heads_read_without_alembic_are_alembics(tmp_path: Path) -> None:
    from alembic.script import ScriptDirectory

    from planctl.db.revisions import heads

    assert heads(migrate.migrations_dir()) == list(migrate.script_directory().get_heads())
    versions = tmp_path / "versions"
    versions.mkdir()
    for revision, down in (("a1", None), ("b2", "a1"), ("c3", "a1"), ("d4", ("b2", "c3"))):
        script = f"revision = {revision!r}\ndown_revision: object = {down!r}\n"
        (versions / f"{revision}.py").write_text(script)
    assert heads(tmp_path) == ["d4"] == list(ScriptDirectory(str(tmp_path)).get_heads())
    (versions / "e5.py").write_text("revision = 'e5'\ndown_revision = 'a' + '1'\n")
    assert heads(tmp_path) is None  # not a literal: left to Alembic


def test_round_trip_upgrade_downgrade_upgrade(db_url: str) -> None:
    head = migrate.head_revision()
    assert migrate.upgrade(target_of(db_url)) == (None, head)
    assert set(TABLE_NAMES) <= _tables(db_url)
    migrate.check(target_of(db_url))
    assert migrate.downgrade(target_of(db_url), "base") == (head, None)
    assert _tables(db_url) & set(TABLE_NAMES) == set()
    assert migrate.upgrade(target_of(db_url)) == (None, head)
    assert migrate.check(target_of(db_url)).ok


def test_check_is_red_after_a_model_change(migrated_url: str) -> None:
    changed = MetaData(naming_convention=metadata.naming_convention)
    for table in metadata.sorted_tables:
        table.to_metadata(changed)
    changed.tables["clientes"].append_column(Column("web", String(200)))
    with pytest.raises(VerificationError) as raised:
        migrate.check(target_of(migrated_url), changed)
    assert "add_column clientes.web" in raised.value.message
    assert raised.value.exit_code == 5


def test_check_is_red_when_the_database_drifts(migrated_url: str, cli: Cli) -> None:
    assert cli("db-check", url=migrated_url).exit_code == 0
    with connect(target_of(migrated_url)) as connection:
        connection.execute(text("ALTER TABLE sesiones ADD COLUMN sala VARCHAR(20)"))
    run = cli("db-check", url=migrated_url)
    assert run.exit_code == 5
    assert "remove_column sesiones.sala" in run.stderr


def test_check_is_red_when_not_at_head(db_url: str, cli: Cli) -> None:
    migrate.upgrade(target_of(db_url))
    migrate.stamp(target_of(db_url), "base")
    run = cli("db-check", url=db_url)
    assert run.exit_code == 5
    assert "no schema" in run.stderr or "not at head" in run.stderr or "head is" in run.stderr


def test_cli_upgrade_current_history_downgrade(db_url: str, cli: Cli) -> None:
    head = migrate.head_revision()
    assert head is not None
    run = cli("db-upgrade", url=db_url)
    assert run.exit_code == 0, run.stderr
    assert f"to {head}" in run.stdout
    run = cli("db-upgrade", url=db_url)
    assert "Already at" in run.stdout
    run = cli("db-current", url=db_url)
    assert run.stdout.split()[0] == head and "(head)" in run.stdout
    run = cli("db-history", url=db_url)
    assert head in run.stdout and "current" in run.stdout
    run = cli("db-downgrade", "--yes", url=db_url)  # one step back
    assert run.exit_code == 0, run.stderr
    assert migrate.current(target_of(db_url)) == _previous(head)
    run = cli("db-downgrade", "base", "--yes", url=db_url)
    assert run.exit_code == 0, run.stderr
    assert migrate.current(target_of(db_url)) is None
    assert not (_tables(db_url) & set(metadata.tables))


def test_downgrade_asks_for_confirmation(
    migrated_url: str, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("planctl.cli.db.can_prompt", lambda: True)
    monkeypatch.setattr("planctl.cli.backup.can_prompt", lambda: True)
    run = cli("db-downgrade", url=migrated_url, input="n\n")
    assert run.exit_code == 1
    assert "Downgrade" in run.stdout
    assert migrate.current(target_of(migrated_url)) == migrate.head_revision()
    run = cli("db-downgrade", url=migrated_url, input="y\n")
    assert run.exit_code == 0, run.stderr
    assert migrate.current(target_of(migrated_url)) == _previous(migrate.head_revision())


def test_upgrade_sql_prints_ddl_without_touching_the_database(db_url: str, cli: Cli) -> None:
    run = cli("db-upgrade", "--sql", url=db_url)
    assert run.exit_code == 0, run.stderr
    assert "CREATE TABLE sesiones" in run.stdout
    assert "alembic_version" in run.stdout
    if db_url.startswith("sqlite"):
        assert not Path(db_url.removeprefix("sqlite:///")).exists()
    else:
        assert migrate.current(target_of(db_url)) is None


def test_stamp_records_without_running(db_url: str, cli: Cli) -> None:
    head = migrate.head_revision()
    if db_url.startswith("sqlite"):
        import sqlite3

        path = db_url.removeprefix("sqlite:///")
        refused = cli("db-stamp", "head", url=db_url)  # a missing database is not created
        assert refused.exit_code == 1 and "does not exist" in refused.stderr
        assert not Path(path).exists()
        sqlite3.connect(path).close()  # an empty database file: stamping it is fine
    run = cli("db-stamp", "head", url=db_url)
    assert run.exit_code == 0, run.stderr
    assert migrate.current(target_of(db_url)) == head
    assert not (_tables(db_url) & set(TABLE_NAMES))


@pytest.fixture
def scratch_migrations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the migrations so db-revision can write without touching the repo."""
    copy = tmp_path / "migrations"
    shutil.copytree(migrate.migrations_dir(), copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(migrate, "migrations_dir", lambda: copy)
    return copy


def test_revision_autogenerate_suppresses_empty_revisions(
    scratch_migrations: Path,
    migrated_url: str,
    cli: Cli,
) -> None:
    before = sorted((scratch_migrations / "versions").glob("*.py"))
    run = cli("db-revision", "-m", "nothing", "--autogenerate", url=migrated_url)
    assert run.exit_code == 1
    assert "no changes detected" in run.stderr
    assert sorted((scratch_migrations / "versions").glob("*.py")) == before


def test_revision_autogenerate_writes_the_difference(
    scratch_migrations: Path,
    migrated_url: str,
    cli: Cli,
) -> None:
    with connect(target_of(migrated_url)) as connection:
        connection.execute(text("ALTER TABLE temas ADD COLUMN obsoleto VARCHAR(5)"))
    run = cli("db-revision", "-m", "drop obsoleto", "--autogenerate", url=migrated_url)
    assert run.exit_code == 0, run.stderr
    written = [p for p in (scratch_migrations / "versions").glob("*drop_obsoleto.py")]
    assert len(written) == 1
    body = written[0].read_text()
    assert "batch_alter_table('temas'" in body and "drop_column('obsoleto')" in body


def test_revision_without_autogenerate_writes_an_empty_script(
    scratch_migrations: Path,
    migrated_url: str,
    cli: Cli,
) -> None:
    run = cli("db-revision", "-m", "data fix", url=migrated_url)
    assert run.exit_code == 0, run.stderr
    assert len(list((scratch_migrations / "versions").glob("*data_fix.py"))) == 1


def test_failed_migration_leaves_nothing_half_applied(
    scratch_migrations: Path, db_url: str
) -> None:
    head = migrate.head_revision()
    broken = scratch_migrations / "versions" / "99990101_broken.py"
    broken.write_text(
        f'"""broken"""\nfrom alembic import op\nimport sqlalchemy as sa\n'
        f"revision = 'broken1'\ndown_revision = {head!r}\nbranch_labels = None\ndepends_on = None\n"
        "def upgrade():\n"
        "    op.create_table('tabla_nueva', sa.Column('id', sa.Integer, primary_key=True))\n"
        "    op.execute('SELECT * FROM no_such_table')\n"
        "def downgrade():\n    op.drop_table('tabla_nueva')\n"
    )
    from planctl.errors import PlanctlError

    with pytest.raises(PlanctlError):
        migrate.upgrade(target_of(db_url))
    # the whole upgrade, first revision included, was one transaction
    assert migrate.current(target_of(db_url), missing_ok=True) is None
    assert not (_tables(db_url) & ({"tabla_nueva"} | set(TABLE_NAMES)))


def test_plain_alembic_works_in_the_checkout(db_url: str, tmp_path: Path) -> None:
    """`alembic upgrade head` at the repository root, URL from planctl's configuration."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLANCTL_")}
    env["DATABASE_URL"] = db_url
    done = subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert migrate.current(target_of(db_url)) == migrate.head_revision()
    assert migrate.check(target_of(db_url)).ok


def test_percent_in_the_url_survives_alembic_config() -> None:
    url = "postgresql+psycopg://app:50%25off%40@db/planner"
    assert migrate.alembic_config(target_of(url)).get_main_option("sqlalchemy.url") == url


def test_password_with_percent_and_at_sign(scram_server: ScramServer, cli: Cli) -> None:
    """A real server, a password that must be percent-encoded in the URL."""
    import psycopg

    with psycopg.connect(scram_server.url().replace("postgresql://", "postgresql://", 1)) as conn:
        conn.autocommit = True
        conn.execute("DROP DATABASE IF EXISTS pct")
        conn.execute("DROP ROLE IF EXISTS pct_user")
        conn.execute("CREATE ROLE pct_user LOGIN PASSWORD '50%off@now'")
        conn.execute("CREATE DATABASE pct OWNER pct_user")
    url = f"postgresql://pct_user:50%25off%40now@127.0.0.1:{scram_server.port}/pct"
    run = cli("db-upgrade", url=url)
    assert run.exit_code == 0, run.stderr
    assert "50%25off" not in run.stdout + run.stderr and "***" in run.stdout
    assert migrate.current(target_of(url)) == migrate.head_revision()


@pytest.mark.parametrize("command", ["db-upgrade", "db-stamp", "db-downgrade"])
def test_an_empty_revision_is_a_usage_error(command: str, cli: Cli) -> None:
    run = cli(command, "", *(["--yes"] if command == "db-downgrade" else []))
    assert run.exit_code == 2
    assert "the revision is empty" in run.stderr and "Traceback" not in run.stderr


@pytest.mark.parametrize("down_to", ["-1", "base"])
def test_the_database_keeps_its_identity_across_downgrade_and_upgrade(
    seeded_url: str, tmp_path: Path, down_to: str
) -> None:
    """A database taken down and up again is the same database: its backups restore
    without --force-foreign (they turned "foreign" when the identity was dropped)."""
    from planctl.backup import create_backup, restore_backup
    from planctl.db import identity

    with connect(target_of(seeded_url)) as connection:
        before = identity.read(connection)
    assert before is not None
    backup = create_backup(target_of(seeded_url), tmp_path / "b").info
    migrate.downgrade(target_of(seeded_url), down_to)
    migrate.upgrade(target_of(seeded_url))
    with connect(target_of(seeded_url)) as connection:
        assert identity.read(connection) == before
        count = connection.execute(text("SELECT count(*) FROM planctl_database")).scalar_one()
    assert count == 1
    assert migrate.check(target_of(seeded_url)).ok
    restore_backup(target_of(seeded_url), tmp_path / "b", backup.name)
    with connect(target_of(seeded_url)) as connection:
        assert connection.execute(text("SELECT count(*) FROM sesiones")).scalar_one() > 0


@pytest.mark.parametrize("message", ["", "  ", "a\x00b", "two\nlines"])
def test_revision_message_must_be_a_line_of_text(
    scratch_migrations: Path, cli: Cli, tmp_path: Path, message: str
) -> None:
    """A NUL byte made a script Python cannot import, breaking every later command."""
    before = sorted((scratch_migrations / "versions").glob("*.py"))
    run = cli("db-revision", "-m", message, url=f"sqlite:///{tmp_path / 'p.db'}")
    assert run.exit_code == 2
    assert run.stderr.startswith("error: --message must be a line of text")
    assert sorted((scratch_migrations / "versions").glob("*.py")) == before
