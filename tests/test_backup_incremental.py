"""Incremental backups: change log, deltas, chain restore, point in time, broken chains.

Every test runs on SQLite and on a real PostgreSQL. Changes are made with
plain SQL through SQLAlchemy, as another program would, so what is tested is
that the triggers catch them, not that planctl remembers what it wrote.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from planctl.backup import (
    apply_delta,
    chain_of,
    create_backup,
    find_at,
    list_backups,
    parse_moment,
    restore_backup,
    rotate,
    verify_backup,
)
from planctl.backup.options import BackupOptions, RestoreOptions
from planctl.db import changelog, migrate
from planctl.db.engine import connect
from planctl.errors import NothingToDoError, UsageError, VerificationError
from tests.helpers import table_contents

from .conftest import Cli
from .helpers import target_of

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


def _ids(connection: Any, table: str) -> list[int]:
    return [r[0] for r in connection.execute(text(f"SELECT id FROM {table} ORDER BY id"))]


def change_some_rows(url: str, rng: random.Random) -> None:
    """Inserts, updates and deletes across several tables, FKs respected (cascades included)."""
    with connect(target_of(url)) as c:
        contracts = _ids(c, "contrataciones")
        temas = _ids(c, "temas")
        for _ in range(rng.randint(3, 8)):  # new sessions
            c.execute(
                text(
                    "INSERT INTO sesiones (contratacion_id, fecha, hora_inicio, hora_fin, "
                    "estado, notas) VALUES (:c, :f, '09:00:00', '11:30:00', 'programada', :n)"
                ),
                {
                    "c": rng.choice(contracts),
                    "f": dt.date(2026, 12, 1) + dt.timedelta(days=rng.randint(0, 60)),
                    "n": f"nota ñ €, ronda {rng.random():.6f}",
                },
            )
        sessions = _ids(c, "sesiones")
        for sid in rng.sample(sessions, 5):  # updates: text, time, status
            c.execute(
                text(
                    "UPDATE sesiones SET notas = :n, hora_inicio = '08:45:00', "
                    "hora_fin = '12:15:00', estado = :e WHERE id = :i"
                ),
                {
                    "n": f"cambiada «{rng.randint(0, 999)}»",
                    "e": rng.choice(["reprogramada", "cancelada"]),
                    "i": sid,
                },
            )
        for sid in rng.sample(sessions, 3):  # deletes
            c.execute(text("DELETE FROM sesiones WHERE id = :i"), {"i": sid})
        c.execute(
            text("UPDATE temas SET descripcion = :d WHERE id = :i"),
            {"d": f"descripción {rng.random()}", "i": rng.choice(temas)},
        )
        c.execute(text("INSERT INTO temas (nombre) VALUES (:n)"), {"n": f"Tema {rng.random():.8f}"})
        interacciones = _ids(c, "interacciones")
        if interacciones:
            c.execute(
                text("DELETE FROM interacciones WHERE id = :i"), {"i": rng.choice(interacciones)}
            )
        # A contract deleted: its sessions go by ON DELETE CASCADE, its interactions are
        # SET NULL; both only through the database's own rules, logged by the triggers.
        if contracts and rng.random() < 0.7:
            c.execute(
                text("DELETE FROM contrataciones WHERE id = :i"), {"i": rng.choice(contracts)}
            )


def test_every_point_of_a_chain_restores_exactly(seeded_url: str, tmp_path: Path) -> None:
    rng = random.Random(5)
    backups = tmp_path / "backups"
    first = create_backup(target_of(seeded_url), backups, BackupOptions(incremental=True))
    assert first.info.kind == "full" and first.full_because == "no full backup yet"
    snapshots = {first.info.name: table_contents(seeded_url)}
    for round_ in range(4):
        change_some_rows(seeded_url, rng)
        result = create_backup(target_of(seeded_url), backups, BackupOptions(incremental=True))
        assert result.info.kind == "delta", result.full_because
        assert result.deltas_since_full == round_ + 1
        snapshots[result.info.name] = table_contents(seeded_url)
    change_some_rows(seeded_url, rng)  # a state no backup holds

    names = [i.name for i in reversed(list_backups(backups))]
    assert names == list(snapshots)
    for name in reversed(names):  # newest first, so each restore really changes the data
        restored = restore_backup(
            target_of(seeded_url), backups, name, RestoreOptions(safety_backup=False)
        )
        assert [link.name for link in restored.chain] == names[: names.index(name) + 1]
        assert table_contents(seeded_url) == snapshots[name], f"state after restoring {name}"


def test_delta_holds_only_the_changed_rows(seeded_url: str, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    create_backup(target_of(seeded_url), backups, BackupOptions(incremental=True))
    with connect(target_of(seeded_url)) as c:
        c.execute(text("UPDATE sesiones SET notas = 'cambio' WHERE id IN (1, 2, 3)"))
        c.execute(text("DELETE FROM sesiones WHERE id = 4"))
    info = create_backup(target_of(seeded_url), backups, BackupOptions(incremental=True)).info
    assert info.kind == "delta" and info.row_counts == {"sesiones": 4}
    assert info.extra["changes"] == {"sesiones": {"upserts": 3, "deletes": 1}}
    from planctl.backup.delta import read

    parsed = read(backups / info.data_file)
    assert [row[0] for row in parsed.tables["sesiones"].upserts] == [1, 2, 3]
    assert parsed.tables["sesiones"].deletes == [4]
    assert parsed.parent == chain_of(backups, info)[0].name
    with connect(target_of(seeded_url)) as c:  # the log was consumed with the delta
        assert (
            changelog.last_change(c) == 0
            or c.execute(text(f"SELECT count(*) FROM {changelog.LOG_TABLE}")).scalar_one() == 0
        )


def test_point_in_time_restore(seeded_url: str, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    rng = random.Random(9)
    full = create_backup(target_of(seeded_url), backups, BackupOptions(incremental=True)).info
    states = [table_contents(seeded_url)]
    infos = [full]
    for _ in range(2):
        change_some_rows(seeded_url, rng)
        infos.append(
            create_backup(target_of(seeded_url), backups, BackupOptions(incremental=True)).info
        )
        states.append(table_contents(seeded_url))
    change_some_rows(seeded_url, rng)
    between = infos[1].created_at + (infos[2].created_at - infos[1].created_at) / 2
    assert find_at(backups, between).name == infos[1].name
    restore_backup(
        target_of(seeded_url), backups, options=RestoreOptions(at=between, safety_backup=False)
    )
    assert table_contents(seeded_url) == states[1]
    restore_backup(
        target_of(seeded_url),
        backups,
        options=RestoreOptions(at=infos[2].created_at, safety_backup=False),
    )
    assert table_contents(seeded_url) == states[2]
    with pytest.raises(NothingToDoError, match="at or before"):
        find_at(backups, full.created_at - dt.timedelta(seconds=1))


def test_parse_moment() -> None:
    local = parse_moment("2026-11-20 14:05", "Europe/Madrid")
    assert local == dt.datetime(2026, 11, 20, 13, 5, tzinfo=dt.UTC)
    assert parse_moment("2026-11-20T14:05:00+00:00").hour == 14
    with pytest.raises(UsageError, match="cannot read the moment"):
        parse_moment("yesterday")


def _three_links(url: str, backups: Path) -> list[Any]:
    rng = random.Random(3)
    infos = [create_backup(target_of(url), backups, BackupOptions(incremental=True)).info]
    for _ in range(3):
        change_some_rows(url, rng)
        infos.append(create_backup(target_of(url), backups, BackupOptions(incremental=True)).info)
    return infos


def test_corrupted_delta_breaks_the_chain_by_name(seeded_url: str, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    full, d1, d2, d3 = _three_links(seeded_url, backups)
    data = bytearray((backups / d2.data_file).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (backups / d2.data_file).write_bytes(bytes(data))
    before = table_contents(seeded_url)

    results = {r.info.name: r for r in verify_backup(backups, d3.name)}
    assert results[full.name].ok and results[d1.name].ok
    assert not results[d2.name].ok and d2.data_file in (results[d2.name].problem or "")
    with pytest.raises(VerificationError, match=d2.data_file):
        restore_backup(target_of(seeded_url), backups, d3.name, RestoreOptions(safety_backup=False))
    assert table_contents(seeded_url) == before  # refused before any write
    # The links before the damage still restore.
    restore_backup(target_of(seeded_url), backups, d1.name, RestoreOptions(safety_backup=False))


def test_missing_delta_breaks_the_chain_by_name(seeded_url: str, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    _full, d1, d2, d3 = _three_links(seeded_url, backups)
    (backups / f"{d2.name}.json").unlink()
    (backups / d2.data_file).unlink()
    before = table_contents(seeded_url)
    with pytest.raises(VerificationError, match=f"parent {d2.name} is missing"):
        restore_backup(target_of(seeded_url), backups, d3.name, RestoreOptions(safety_backup=False))
    assert table_contents(seeded_url) == before
    bad = [r for r in verify_backup(backups, all_backups=True) if not r.ok]
    assert [r.info.name for r in bad] == [d3.name]
    # A missing data file (metadata still there) is named too.
    (backups / d1.data_file).unlink()
    with pytest.raises(VerificationError, match=d1.data_file):
        restore_backup(target_of(seeded_url), backups, d1.name, RestoreOptions(safety_backup=False))


def test_max_deltas_then_full_resets_the_count(seeded_url: str, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    kinds = []
    for i in range(7):
        with connect(target_of(seeded_url)) as c:
            c.execute(text("UPDATE sesiones SET notas = :n WHERE id = 1"), {"n": str(i)})
        result = create_backup(
            target_of(seeded_url), backups, BackupOptions(incremental=True, max_deltas=2)
        )
        kinds.append((result.info.kind, result.deltas_since_full))
    assert kinds == [
        ("full", 0),
        ("delta", 1),
        ("delta", 2),
        ("full", 0),
        ("delta", 1),
        ("delta", 2),
        ("full", 0),
    ]
    assert "--max-deltas 2" in (result.full_because or "")
    with pytest.raises(UsageError):
        create_backup(target_of(seeded_url), backups, BackupOptions(incremental=True, max_deltas=0))


def test_anything_but_the_newest_backup_as_anchor_means_a_full(
    seeded_url: str, tmp_path: Path
) -> None:
    backups, elsewhere = tmp_path / "backups", tmp_path / "elsewhere"
    create_backup(target_of(seeded_url), backups, BackupOptions(incremental=True))
    create_backup(target_of(seeded_url), elsewhere)  # a full elsewhere moves the anchor away
    result = create_backup(target_of(seeded_url), backups, BackupOptions(incremental=True))
    assert result.info.kind == "full" and "not to the newest backup" in (result.full_because or "")
    assert (
        create_backup(target_of(seeded_url), backups, BackupOptions(incremental=True)).info.kind
        == "delta"
    )
    restore_backup(target_of(seeded_url), backups, "latest", RestoreOptions(safety_backup=False))
    after_restore = create_backup(target_of(seeded_url), backups, BackupOptions(incremental=True))
    assert after_restore.info.kind == "full" and "after a restore" in (
        after_restore.full_because or ""
    )


def test_plain_full_backups_keep_the_change_log_small(seeded_url: str, tmp_path: Path) -> None:
    with connect(target_of(seeded_url)) as c:
        assert c.execute(text(f"SELECT count(*) FROM {changelog.LOG_TABLE}")).scalar_one() > 0
    create_backup(target_of(seeded_url), tmp_path / "b")
    with connect(target_of(seeded_url)) as c:
        assert c.execute(text(f"SELECT count(*) FROM {changelog.LOG_TABLE}")).scalar_one() == 0
    create_backup(
        target_of(seeded_url), tmp_path / "b", BackupOptions(fmt="logical")
    )  # the logical full too
    with connect(target_of(seeded_url)) as c:
        c.execute(text("UPDATE temas SET nombre = nombre || '!' WHERE id = 1"))
    delta = create_backup(
        target_of(seeded_url), tmp_path / "b", BackupOptions(incremental=True)
    ).info
    assert delta.kind == "delta" and delta.row_counts == {"temas": 1}


def test_logical_full_at_the_root_of_a_chain(seeded_url: str, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    create_backup(target_of(seeded_url), backups, BackupOptions(incremental=True, fmt="logical"))
    change_some_rows(seeded_url, random.Random(1))
    info = create_backup(target_of(seeded_url), backups, BackupOptions(incremental=True)).info
    expected = table_contents(seeded_url)
    change_some_rows(seeded_url, random.Random(2))
    result = restore_backup(
        target_of(seeded_url), backups, info.name, RestoreOptions(safety_backup=False)
    )
    assert result.chain[0].engine == "logical"
    assert table_contents(seeded_url) == expected


def test_apply_delta_api(seeded_url: str, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    full = create_backup(target_of(seeded_url), backups, BackupOptions(incremental=True)).info
    with connect(target_of(seeded_url)) as c:
        c.execute(text("UPDATE sesiones SET notas = 'api' WHERE id IN (1, 2)"))
        c.execute(text("DELETE FROM sesiones WHERE id = 3"))
    delta = create_backup(target_of(seeded_url), backups, BackupOptions(incremental=True)).info
    expected = table_contents(seeded_url)
    restore_backup(target_of(seeded_url), backups, full.name, RestoreOptions(safety_backup=False))
    assert table_contents(seeded_url) != expected
    assert apply_delta(target_of(seeded_url), backups / delta.data_file) == 3
    assert table_contents(seeded_url) == expected
    # Applying again is harmless: upserts are idempotent, the delete finds nothing.
    assert apply_delta(target_of(seeded_url), backups / delta.data_file) == 2


def test_a_delta_that_swaps_unique_values_restores(seeded_url: str, tmp_path: Path) -> None:
    """Two clients exchange their CIF, two topics their names, two contracts their
    expediente: upserted row by row, the first row would collide with the second."""
    backups = tmp_path / "backups"
    full = create_backup(target_of(seeded_url), backups, BackupOptions(incremental=True)).info
    swaps = [("clientes", "cif"), ("temas", "nombre"), ("contrataciones", "expediente")]
    with connect(target_of(seeded_url)) as c:
        c.execute(text("UPDATE formaciones SET nivel = NULL WHERE id IN (1, 2)"))
        for table, column in swaps:
            a, b = c.execute(text(f"SELECT {column} FROM {table} WHERE id IN (1, 2) ORDER BY id"))
            c.execute(text(f"UPDATE {table} SET {column} = '~' WHERE id = 1"))
            c.execute(text(f"UPDATE {table} SET {column} = :v WHERE id = 2"), {"v": a[0]})
            c.execute(text(f"UPDATE {table} SET {column} = :v WHERE id = 1"), {"v": b[0]})
        # (nombre, nivel) is unique too: two courses with NULL nivel swap their names
        n1, n2 = c.execute(text("SELECT nombre FROM formaciones WHERE id IN (1, 2) ORDER BY id"))
        c.execute(text("UPDATE formaciones SET nombre = '~' WHERE id = 1"))
        c.execute(text("UPDATE formaciones SET nombre = :v WHERE id = 2"), {"v": n1[0]})
        c.execute(text("UPDATE formaciones SET nombre = :v WHERE id = 1"), {"v": n2[0]})
    delta = create_backup(target_of(seeded_url), backups, BackupOptions(incremental=True)).info
    assert delta.kind == "delta"
    expected = table_contents(seeded_url)
    restore_backup(target_of(seeded_url), backups, full.name, RestoreOptions(safety_backup=False))
    assert table_contents(seeded_url) != expected
    restore_backup(target_of(seeded_url), backups, delta.name, RestoreOptions(safety_backup=False))
    assert table_contents(seeded_url) == expected


def test_rotation_keeps_and_drops_chains_whole(seeded_url: str, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    for i in range(5):  # chains: full+delta, full+delta, full
        with connect(target_of(seeded_url)) as c:
            c.execute(text("UPDATE temas SET nombre = :n WHERE id = 1"), {"n": f"t{i}"})
        create_backup(target_of(seeded_url), backups, BackupOptions(incremental=True, max_deltas=1))
    removed = rotate(backups, 2)
    assert [i.kind for i in removed] == ["delta", "full"]  # the oldest chain, deltas first
    kinds = [i.kind for i in reversed(list_backups(backups))]
    assert kinds == ["full", "delta", "full"]
    assert all(r.ok for r in verify_backup(backups, all_backups=True))


def test_schema_change_or_truncate_forces_a_full(seeded_url: str, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    create_backup(target_of(seeded_url), backups, BackupOptions(incremental=True))
    migrate.downgrade(
        target_of(seeded_url), "4150a15fd00a"
    )  # the change log goes with its revision
    with connect(target_of(seeded_url)) as c:
        assert not changelog.installed(c)
    result = create_backup(target_of(seeded_url), backups, BackupOptions(incremental=True))
    assert result.info.kind == "full" and "no change log" in (result.full_because or "")
    migrate.upgrade(target_of(seeded_url))
    with connect(target_of(seeded_url)) as c:
        assert changelog.installed(c)
    create_backup(
        target_of(seeded_url), backups, BackupOptions(incremental=True)
    )  # full: the anchor restarted empty
    with connect(target_of(seeded_url)) as c:
        c.execute(text("UPDATE sesiones SET notas = 'after upgrade' WHERE id = 1"))
    assert (
        create_backup(target_of(seeded_url), backups, BackupOptions(incremental=True)).info.kind
        == "delta"
    )
    if seeded_url.startswith("postgresql"):
        with connect(target_of(seeded_url)) as c:
            c.execute(text("TRUNCATE adjuntos"))
        result = create_backup(target_of(seeded_url), backups, BackupOptions(incremental=True))
        assert result.info.kind == "full" and "TRUNCATE" in (result.full_because or "")


def test_migrations_put_lost_triggers_back(migrated_url: str) -> None:
    """A SQLite batch migration rebuilds a table without its triggers; env.py reinstalls them."""
    with connect(target_of(migrated_url)) as c:
        changelog.drop_triggers(c, ["sesiones"])
    migrate.upgrade(
        target_of(migrated_url)
    )  # at head already: no revision runs, the environment does
    with connect(target_of(migrated_url)) as c:
        c.execute(text("INSERT INTO temas (nombre) VALUES ('x')"))
        c.execute(text("INSERT INTO clientes (empresa) VALUES ('Acme')"))
        logged = c.execute(text(f"SELECT DISTINCT table_name FROM {changelog.LOG_TABLE}")).scalars()
        assert set(logged) == {"temas", "clientes"}
        trigger_names = (
            "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
            if c.dialect.name == "postgresql"
            else "SELECT name FROM sqlite_master WHERE type = 'trigger'"
        )
        names = set(c.execute(text(trigger_names)).scalars())
    assert changelog.trigger_name("sesiones", "ins") in names
    assert changelog.trigger_name("sesiones", "del") in names


def test_cli_incremental_restore_at_and_errors(cli: Cli, seeded_url: str, workdir: Path) -> None:
    first = cli("backup", "--incremental", url=seeded_url)
    assert first.exit_code == 0, first.stderr
    assert "A full backup, not a delta: no full backup yet." in first.stdout
    with connect(target_of(seeded_url)) as c:
        c.execute(text("UPDATE sesiones SET notas = 'cli' WHERE id = 7"))
    second = cli("backup", "--incremental", "--max-deltas", "3")
    assert second.exit_code == 0, second.stderr
    assert "1 changed row," in second.stdout and "1 of at most 3 deltas" in second.stdout
    listing = cli("backup", "list")
    delta_line = next(line for line in listing.stdout.splitlines() if "-delta" in line)
    assert " delta " in delta_line and delta_line.rstrip().endswith(" ok")
    expected = table_contents(seeded_url)
    with connect(target_of(seeded_url)) as c:
        c.execute(text("UPDATE sesiones SET notas = 'later' WHERE id = 7"))

    bad = cli("backup", "--incremental", "--max-deltas", "0")
    assert bad.exit_code == 2 and "--max-deltas must be at least 1" in bad.stderr
    garbled = cli("backup", "restore", "--at", "yesterday", "--yes")
    assert garbled.exit_code == 2 and "cannot read the moment 'yesterday'" in garbled.stderr
    assert len(garbled.stderr.strip().splitlines()) == 1
    too_early = cli("backup", "restore", "--at", "2000-01-01 00:00", "--yes")
    assert too_early.exit_code == 3 and "at or before" in too_early.stderr
    both = cli("backup", "restore", "latest-x", "--at", "2030-01-01 00:00", "--yes")
    assert both.exit_code == 2

    restored = cli("backup", "restore", "--at", "2099-01-01 00:00", "--yes")
    assert restored.exit_code == 0, restored.stderr
    assert "then applied 1 delta (1 row)" in restored.stdout
    assert table_contents(seeded_url) == expected

    delta = list_backups(workdir / "backups")
    delta_info = next(i for i in delta if i.kind == "delta")
    path = workdir / "backups" / delta_info.data_file
    path.write_bytes(path.read_bytes()[:-5] + b"XXXXX")
    broken = cli("backup", "restore", delta_info.name, "--yes")
    assert broken.exit_code == 5 and delta_info.data_file in broken.stderr
    assert "Traceback" not in broken.stderr
    verify = cli("backup", "verify", delta_info.name)
    assert verify.exit_code == 5 and delta_info.name in verify.stderr


def test_killed_delta_run_leaves_a_valid_set_and_a_full_next(
    seeded_url: str, tmp_path: Path
) -> None:
    from tests.helpers import planctl_env, run_planctl

    backups = tmp_path / "backups"
    env = planctl_env(seeded_url, backups, tmp_path / "logs")
    assert run_planctl("backup", "--incremental", env=env).returncode == 0
    with connect(target_of(seeded_url)) as c:
        c.execute(text("UPDATE sesiones SET notas = 'antes del corte' WHERE id = 3"))
    expected = table_contents(seeded_url)
    crashed = run_planctl("backup", "--incremental", env=env, fault="crash:delta-published")
    assert crashed.returncode == -9
    # The delta was published before the kill, the log was not consumed: the set
    # is valid, and the next run cannot chain on a log it never emptied.
    assert all(r.ok for r in verify_backup(backups, all_backups=True))
    nxt = create_backup(target_of(seeded_url), backups, BackupOptions(incremental=True))
    assert nxt.info.kind == "full" and "not to the newest backup" in (nxt.full_because or "")
    crashed_delta = next(i for i in list_backups(backups) if i.kind == "delta")
    restore_backup(
        target_of(seeded_url), backups, crashed_delta.name, RestoreOptions(safety_backup=False)
    )
    assert table_contents(seeded_url) == expected


def test_postgres_commit_during_a_delta_waits_for_the_next(
    pg_database: str, tmp_path: Path
) -> None:
    """REPEATABLE READ: a row committed while a delta is written is neither in it nor lost."""
    import time as _time

    from planctl.backup import list_backups as list_infos
    from planctl.db.seed import seed
    from tests.helpers import planctl_env, spawn_planctl

    migrate.upgrade(target_of(pg_database))
    seed(target_of(pg_database))
    backups = tmp_path / "backups"
    create_backup(target_of(pg_database), backups, BackupOptions(incremental=True))
    with connect(target_of(pg_database)) as c:
        c.execute(text("UPDATE sesiones SET notas = 'in the delta' WHERE id = 1"))
    env = planctl_env(pg_database, backups, tmp_path / "logs")
    process = spawn_planctl("backup", "--incremental", env=env, fault="pause:delta-published:3")
    try:
        deadline = _time.monotonic() + 60
        while not any(i.kind == "delta" for i in list_infos(backups)):
            assert _time.monotonic() < deadline and process.poll() is None
            _time.sleep(0.05)
        with connect(target_of(pg_database)) as c:  # commits while the delta's transaction is open
            c.execute(text("UPDATE sesiones SET notas = 'meanwhile' WHERE id = 2"))
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    first = next(i for i in list_infos(backups) if i.kind == "delta")
    assert first.row_counts == {"sesiones": 1}
    second = create_backup(target_of(pg_database), backups, BackupOptions(incremental=True)).info
    assert second.kind == "delta" and second.row_counts == {"sesiones": 1}
    from planctl.backup.delta import read

    assert read(backups / second.data_file).tables["sesiones"].upserts[0][0] == 2
