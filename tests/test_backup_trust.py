"""What the fault-injection review of the backups found, each as a real-process test on
both engines: atomic chain restores, health-aware rotation, sequence order, identity,
busy SQLite writers, no secret on disk, no orphan tools, sync state restored."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from planctl.backup import create_backup, load_set, restore_backup, verify_backup
from planctl.backup.compress import Compression
from planctl.backup.options import BackupOptions, RestoreOptions
from planctl.db.engine import connect

from .helpers import planctl_env, run_planctl, spawn_planctl, table_contents, target_of


def _env(url: str, tmp_path: Path) -> dict[str, str]:
    return planctl_env(url, tmp_path / "backups", tmp_path / "logs")


def _touch_sessions(url: str, note: str, ids: str = "1, 2, 3") -> None:
    with connect(target_of(url)) as c:
        c.execute(text(f"UPDATE sesiones SET notas = :n WHERE id IN ({ids})"), {"n": note})


def _sync_rows(url: str) -> list[tuple[object, ...]]:
    with connect(target_of(url)) as c:
        return [
            tuple(r)
            for r in c.execute(
                text("SELECT backend, session_id, remote_id, local_hash FROM planctl_sync_states")
            )
        ]


def _add_sync_state(url: str, session: int, remote: str) -> None:
    with connect(target_of(url)) as c:
        c.execute(
            text(
                "INSERT INTO planctl_sync_states (backend, session_id, remote_id, etag, "
                "local_hash, remote_hash, synced_at) VALUES "
                "('simulated', :s, :r, 'e1', 'h', 'h', CURRENT_TIMESTAMP)"
            ),
            {"s": session, "r": remote},
        )


def _chain(url: str, backups: Path) -> tuple[str, dict[str, list[tuple[object, ...]]]]:
    """A full and two deltas; the name of the last delta and the state it holds."""
    create_backup(target_of(url), backups, BackupOptions(incremental=True))
    _touch_sessions(url, "first delta")
    _add_sync_state(url, 1, "evento-1")
    create_backup(target_of(url), backups, BackupOptions(incremental=True))
    _touch_sessions(url, "second delta", "4, 5")
    _add_sync_state(url, 2, "evento-2")
    last = create_backup(target_of(url), backups, BackupOptions(incremental=True)).info
    assert last.kind == "delta"
    return last.name, table_contents(url)


# --- all or nothing ---------------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["deltas-applied", "before-restore"])
def test_chain_restore_killed_midway_leaves_the_database_unchanged(
    seeded_url: str, tmp_path: Path, stage: str
) -> None:
    backups = tmp_path / "backups"
    name, _ = _chain(seeded_url, backups)
    _touch_sessions(seeded_url, "after every backup", "1, 2, 3, 4, 5, 6")
    before, sync_before = table_contents(seeded_url), _sync_rows(seeded_url)

    done = run_planctl(
        "backup", "restore", name, "--yes", env=_env(seeded_url, tmp_path), fault=f"crash:{stage}"
    )
    assert done.returncode == -signal.SIGKILL
    assert table_contents(seeded_url) == before and _sync_rows(seeded_url) == sync_before


def test_chain_restore_gives_exactly_the_restore_point_sync_state_included(
    seeded_url: str, tmp_path: Path
) -> None:
    backups = tmp_path / "backups"
    name, expected = _chain(seeded_url, backups)
    sync_expected = _sync_rows(seeded_url)
    assert len(sync_expected) == 2
    _touch_sessions(seeded_url, "later", "1, 2, 3, 4, 5, 6, 7")
    _add_sync_state(seeded_url, 3, "evento-3")

    done = run_planctl("backup", "restore", name, "--yes", env=_env(seeded_url, tmp_path))
    assert done.returncode == 0, done.stderr
    assert table_contents(seeded_url) == expected
    assert sorted(_sync_rows(seeded_url)) == sorted(sync_expected)  # not the full backup's


def test_failing_delta_leaves_the_database_unchanged(seeded_url: str, tmp_path: Path) -> None:
    """A delta that cannot apply (its rows point at a contract the full does not hold)."""
    backups = tmp_path / "backups"
    name, _ = _chain(seeded_url, backups)
    backups_set = load_set(backups)
    last = backups_set.by_name[name]
    path = backups / last.data_file
    import zstandard

    document = json.loads(
        zstandard.ZstdDecompressor().decompressobj().decompress(path.read_bytes())
    )
    section = document["tables"]["sesiones"]
    position = section["columns"].index("contratacion_id")
    section["upserts"][0][position] = 999_999  # dangling foreign key
    path.write_bytes(zstandard.ZstdCompressor().compress(json.dumps(document).encode()))
    # Re-sign the tampered file so only the database can refuse it.
    import hashlib

    meta = backups / f"{name}.json"
    data = json.loads(meta.read_text())
    data["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    data["size"] = path.stat().st_size
    meta.write_text(json.dumps(data))
    before = table_contents(seeded_url)

    done = run_planctl("backup", "restore", name, "--yes", env=_env(seeded_url, tmp_path))
    assert done.returncode == 1
    assert "unchanged" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert table_contents(seeded_url) == before


# --- never fewer restorable backups -----------------------------------------------------------


def _corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_incremental_keep_1_on_a_damaged_full_keeps_a_restorable_backup(
    seeded_url: str, tmp_path: Path
) -> None:
    backups = tmp_path / "backups"
    env = _env(seeded_url, tmp_path)
    assert run_planctl("backup", "--incremental", "--keep", "1", env=env).returncode == 0
    full = load_set(backups).infos[-1]
    _corrupt(backups / full.data_file)
    _touch_sessions(seeded_url, "after the damage")
    expected = table_contents(seeded_url)

    done = run_planctl("backup", "--incremental", "--keep", "1", env=env)
    assert done.returncode == 0, done.stderr
    assert "A full backup, not a delta" in done.stdout  # never a delta on a damaged parent
    backups_set = load_set(backups)
    newest = backups_set.newest_restorable()
    assert newest is not None and newest.kind == "full" and newest.name != full.name
    _touch_sessions(seeded_url, "to be undone")
    restore_backup(target_of(seeded_url), backups, "latest", RestoreOptions(safety_backup=False))
    assert table_contents(seeded_url) == expected


def test_rotation_counts_only_restorable_chains(seeded_url: str, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    good = create_backup(target_of(seeded_url), backups).info
    damaged = create_backup(target_of(seeded_url), backups).info
    garbled = create_backup(target_of(seeded_url), backups).info
    _corrupt(backups / damaged.data_file)
    (backups / f"{garbled.name}.json").write_text("{not json")
    create_backup(target_of(seeded_url), backups, BackupOptions(keep=2))
    names = {i.name for i in load_set(backups).infos}
    assert good.name in names  # the second restorable chain: kept
    assert load_set(backups).restorable_chains() == 2
    # The data file whose metadata is garbled is evidence, not a leftover.
    assert (backups / garbled.data_file).exists()


def test_cleanup_keeps_a_data_file_that_deltas_still_need(seeded_url: str, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    full = create_backup(target_of(seeded_url), backups, BackupOptions(incremental=True)).info
    _touch_sessions(seeded_url, "d1")
    create_backup(target_of(seeded_url), backups, BackupOptions(incremental=True))
    (backups / f"{full.name}.json").unlink()  # the full's metadata is lost
    result = create_backup(target_of(seeded_url), backups)
    assert (backups / full.data_file).exists()
    assert all(full.data_file != p.name for p in result.cleaned)


def test_safety_copies_are_never_rotated_out(seeded_url: str, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    create_backup(target_of(seeded_url), backups)
    original = table_contents(seeded_url)
    first_safety = restore_backup(target_of(seeded_url), backups, "latest").safety
    assert first_safety is not None
    for _ in range(3):
        restore_backup(target_of(seeded_url), backups, "latest")
        create_backup(target_of(seeded_url), backups, BackupOptions(keep=1))
    assert first_safety.name in {i.name for i in load_set(backups).infos}
    _touch_sessions(seeded_url, "gone")
    restore_backup(
        target_of(seeded_url), backups, first_safety.name, RestoreOptions(safety_backup=False)
    )
    assert table_contents(seeded_url) == original


# --- order without the clock ------------------------------------------------------------------


def test_a_backup_from_the_future_never_pushes_out_a_new_one(
    seeded_url: str, tmp_path: Path
) -> None:
    backups = tmp_path / "backups"
    env = _env(seeded_url, tmp_path)
    old = create_backup(target_of(seeded_url), backups).info
    meta = backups / f"{old.name}.json"
    data = json.loads(meta.read_text())
    data["created"] = "2099-01-01T00:00:00+00:00"  # clock stepped back since, or another machine
    meta.write_text(json.dumps(data))
    _touch_sessions(seeded_url, "newest state")
    expected = table_contents(seeded_url)

    done = run_planctl("backup", "--keep", "1", env=env)
    assert done.returncode == 0, done.stderr
    assert f"Rotated out {old.name}" in done.stdout
    _touch_sessions(seeded_url, "to be undone")
    assert run_planctl("backup", "restore", "latest", "--yes", env=env).returncode == 0
    assert table_contents(seeded_url) == expected


# --- identity ---------------------------------------------------------------------------------


def test_a_backup_of_another_database_is_refused(
    seeded_url: str, tmp_path: Path, db_url: str
) -> None:
    from planctl.db import migrate
    from planctl.db.seed import seed

    other = f"sqlite:///{tmp_path / 'other.db'}"
    migrate.upgrade(target_of(other))
    seed(target_of(other), random_seed=7)
    backups = tmp_path / "backups"
    create_backup(target_of(seeded_url), backups)
    foreign = create_backup(target_of(other), backups).info
    before = table_contents(seeded_url)
    env = _env(seeded_url, tmp_path)
    if foreign.engine != load_set(backups).infos[0].engine:
        foreign = create_backup(target_of(other), backups, BackupOptions(fmt="logical")).info

    done = run_planctl("backup", "restore", foreign.name, "--yes", env=env)
    assert done.returncode == 1 and "another database" in done.stderr
    assert table_contents(seeded_url) == before
    verified = run_planctl("backup", "verify", "--all", env=env)
    # verify --all names the other database's backup without failing on it (issue 19)
    assert verified.returncode == 0, verified.stderr
    assert f"FOREIGN {foreign.name}" in " ".join(verified.stdout.split())
    if foreign.engine == "logical":
        return  # a logical restore of another database needs the same revision: not this test
    forced = run_planctl("backup", "restore", foreign.name, "--yes", "--force-foreign", env=env)
    assert forced.returncode == 0, forced.stderr
    assert table_contents(seeded_url) == table_contents(other)


# --- busy SQLite ------------------------------------------------------------------------------

WRITER = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], timeout=10, isolation_level=None)
end = time.monotonic() + float(sys.argv[2])
i = 0
while time.monotonic() < end:
    connection.execute("BEGIN IMMEDIATE")
    connection.execute("UPDATE sesiones SET notas = ? WHERE id = ?", (f"w{i}", 1 + i % 50))
    connection.execute("COMMIT")
    i += 1
    time.sleep(0.002)
print(i)
"""


def test_incremental_backups_succeed_under_a_busy_writer(tmp_path: Path) -> None:
    from planctl.db import migrate
    from planctl.db.seed import seed

    path = tmp_path / "busy.db"
    url = f"sqlite:///{path}"
    migrate.upgrade(target_of(url))
    seed(target_of(url))
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
    env = _env(url, tmp_path)
    assert run_planctl("backup", "--incremental", "--keep", "3", env=env).returncode == 0
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), "12"], stdout=subprocess.PIPE, text=True
    )
    try:
        for _ in range(5):
            done = run_planctl("backup", "--incremental", "--keep", "3", env=env)
            assert done.returncode == 0, done.stderr
    finally:
        out, _ = writer.communicate(timeout=60)
    assert int(out) > 100  # the app kept committing all along
    assert writer.returncode == 0
    kinds = [i.kind for i in load_set(tmp_path / "backups").infos]
    assert "delta" in kinds
    assert all(r.ok for r in verify_backup(tmp_path / "backups", all_backups=True))


# --- no secret on disk, no orphan -------------------------------------------------------------


def test_client_tools_die_with_planctl() -> None:
    """The preexec hook of every pg_dump/pg_restore: kill -9 the parent, the child goes too."""
    code = (
        "import sys, time; from planctl.backup.postgres_engine import spawn; "
        "p = spawn(['sleep', '60'], {'PATH': '/usr/bin:/bin'}); print(p.pid, flush=True); "
        "time.sleep(60)"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        with open(f"/proc/{child}/stat") as stat:
            if stat.read().split()[2] == "Z":  # reaped by init soon; it is dead
                return
        time.sleep(0.05)
    raise AssertionError("the client tool outlived planctl")


def test_password_never_reaches_a_file(pg_database: str, tmp_path: Path) -> None:
    from planctl.backup.postgres_engine import libpq_env

    with libpq_env(target_of(pg_database.replace("postgres@", "postgres:Sekr3tPw@"))) as env:
        assert env["PGPASSWORD"] == "Sekr3tPw" and "PGPASSFILE" not in env
    tmp = Path(os.environ.get("TMPDIR", "/tmp"))
    before = {p.name for p in tmp.glob("planctl-pgpass-*")}
    from planctl.db import migrate

    migrate.upgrade(target_of(pg_database))
    create_backup(target_of(pg_database), tmp_path / "backups")
    assert {p.name for p in tmp.glob("planctl-pgpass-*")} == before


# --- poolers ----------------------------------------------------------------------------------


def test_backups_through_pgbouncer_in_transaction_mode(pg_database: str, tmp_path: Path) -> None:
    """pg_dump empties search_path on a pooled server connection; planctl pins its own."""
    from sqlalchemy import make_url

    from planctl.db import migrate
    from planctl.db.seed import seed

    from .conftest import skip_or_fail
    from .pgbouncer_support import find_pgbouncer, pgbouncer

    if find_pgbouncer() is None:
        skip_or_fail("pgbouncer is not installed (Debian: apt-get install pgbouncer)")
    migrate.upgrade(target_of(pg_database))
    seed(target_of(pg_database))
    with pgbouncer(pg_database) as port:
        direct = make_url(pg_database)
        pooled = direct.set(host="127.0.0.1", port=port, password=None)
        url = pooled.render_as_string(hide_password=False)
        env = _env(url, tmp_path)

        def poison() -> None:
            """What pg_dump does on its session; the pooler hands the connection on."""
            import psycopg

            plain = pooled.set(drivername="postgresql").render_as_string(hide_password=False)
            with psycopg.connect(plain, autocommit=True, prepare_threshold=None) as c:
                c.execute("SELECT pg_catalog.set_config('search_path', '', false)")

        for _ in range(3):
            poison()
            done = run_planctl("backup", env=env)
            assert done.returncode == 0, done.stderr
            assert "revision <none>" not in done.stdout
        poison()
        info = run_planctl("db-info", env=env)
        assert info.returncode == 0 and "empty database" not in info.stdout
        assert run_planctl("backup", "--incremental", env=env).returncode == 0
        _touch_sessions(pg_database, "through the pooler")
        poison()
        delta = run_planctl("backup", "--incremental", env=env)
        assert delta.returncode == 0, delta.stderr
        assert delta.stdout.startswith("Delta"), delta.stdout
    revisions = {i.revision for i in load_set(tmp_path / "backups").infos}
    assert None not in revisions


# --- smaller ones -----------------------------------------------------------------------------


def test_sqlite_restore_gives_up_on_a_lock_holder_and_names_the_cause(tmp_path: Path) -> None:
    from planctl.backup.engines import SqliteEngine
    from planctl.db import migrate
    from planctl.db.seed import seed
    from planctl.errors import LockedError

    path = tmp_path / "held.db"
    url = f"sqlite:///{path}"
    migrate.upgrade(target_of(url))
    seed(target_of(url))
    backups = tmp_path / "backups"
    info = create_backup(target_of(url), backups, BackupOptions(compress=Compression.NONE)).info
    _touch_sessions(url, "held")
    before = table_contents(url)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
            "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep(30)",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        expected = f"gave up after waiting 2 s(.|\n)*pid {holder.pid} .*holds the write lock"
        with (
            pytest.raises(LockedError, match=expected),
            open(backups / info.data_file, "rb") as source,
        ):
            SqliteEngine(lock_deadline=2).restore(
                target_of(url), source, Compression.NONE, info.name
            )
        assert time.monotonic() - started < 15
    finally:
        holder.kill()
        holder.wait()
    assert table_contents(url) == before


def test_restore_into_a_wal_database_with_another_page_size(tmp_path: Path) -> None:
    from planctl.db import migrate
    from planctl.db.seed import seed

    path = tmp_path / "pages.db"
    url = f"sqlite:///{path}"
    migrate.upgrade(target_of(url))
    seed(target_of(url))
    backups = tmp_path / "backups"
    create_backup(target_of(url), backups)
    expected = table_contents(url)
    _touch_sessions(url, "to be undone")
    with sqlite3.connect(path, isolation_level=None) as connection:
        connection.execute("PRAGMA journal_mode=DELETE")  # WAL cannot change its page size
        connection.execute("PRAGMA page_size=8192")
        connection.execute("VACUUM")
        connection.execute("PRAGMA journal_mode=WAL")
    done = run_planctl("backup", "restore", "latest", "--yes", env=_env(url, tmp_path))
    assert done.returncode == 0, done.stderr
    assert table_contents(url) == expected
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA page_size").fetchone()[0] == 8192


def test_damaged_metadata_is_a_verification_failure(seeded_url: str, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    info = create_backup(target_of(seeded_url), backups).info
    create_backup(target_of(seeded_url), backups)
    (backups / f"{info.name}.json").write_text('{"name": 12}')
    env = _env(seeded_url, tmp_path)
    done = run_planctl("backup", "restore", info.name, "--yes", env=env)
    assert done.returncode == 5 and "damaged" in done.stderr


def test_verify_all_names_a_delta_whose_full_is_damaged(seeded_url: str, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    full = create_backup(target_of(seeded_url), backups, BackupOptions(incremental=True)).info
    _touch_sessions(seeded_url, "d1")
    child = create_backup(target_of(seeded_url), backups, BackupOptions(incremental=True)).info
    _corrupt(backups / full.data_file)
    done = run_planctl("backup", "verify", "--all", env=_env(seeded_url, tmp_path))
    assert done.returncode == 5
    failed = [line for line in done.stdout.splitlines() if line.startswith("FAILED")]
    assert any(full.name in line for line in failed) and any(child.name in line for line in failed)
    assert not any(
        line.startswith("OK") and child.name in line for line in done.stdout.splitlines()
    )


def test_a_full_disk_names_the_backup_directory(seeded_url: str, tmp_path: Path) -> None:
    import resource

    env = _env(seeded_url, tmp_path)
    assert run_planctl("backup", env=env).returncode == 0

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    done = run_planctl("backup", "--no-compress", env=env, preexec_fn=small_files)
    assert done.returncode == 1
    assert "backups" in done.stderr and len(done.stderr.strip().splitlines()) == 1


# --- options applied or refused ---------------------------------------------------------------


def test_group_options_apply_to_the_sub_command_or_are_refused(
    migrated_url: str, tmp_path: Path
) -> None:
    env = _env(migrated_url, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    assert run_planctl("backup", "--dir", str(elsewhere), env=env).returncode == 0
    listed = run_planctl("backup", "--dir", str(elsewhere), "list", "--json", env=env)
    assert listed.returncode == 0 and len(json.loads(listed.stdout)) == 1
    for args, where in [
        (["--keep", "1", "list"], "on its own"),
        (["--format", "logical", "verify"], "on its own"),
    ]:
        done = run_planctl("backup", *args, env=env)
        assert done.returncode == 2, (args, done.stderr)
        assert where in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "backups").exists()  # nothing ran against the default directory
    # an option the sub-command takes too is applied: `backup --keep 1 watch` keeps one
    watching = spawn_planctl(
        "backup", "--keep", "1", "--dir", str(elsewhere), "watch", "--interval", "1",
        "--min-interval", "0", env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    seen: set[str] = set()
    while time.monotonic() < deadline and len(seen) < 3:
        seen |= {p.stem for p in elsewhere.glob("*-full.json")}
        time.sleep(0.2)
    watching.send_signal(signal.SIGTERM)
    watching.communicate(timeout=60)
    assert len(seen) >= 3, seen  # it kept backing up…
    assert len(list(elsewhere.glob("*-full.json"))) == 1  # …keeping one, as --keep 1 says


def test_special_files_in_the_backup_directory_never_hang_or_mislead(
    seeded_url: str, tmp_path: Path
) -> None:
    """A FIFO, a directory, a symlink and junk named like metadata, and a FIFO as a data
    file: every backup command still answers (a FIFO once hung them all), names them
    damaged, never follows the link, never removes what it cannot read."""
    env = _env(seeded_url, tmp_path)
    backups = tmp_path / "backups"
    assert run_planctl("backup", env=env).returncode == 0
    good = next(p.stem for p in backups.glob("*-full.json"))
    os.mkfifo(backups / "20991231-000000-full.json")
    (backups / "20991230-000000-full.json").mkdir()
    (backups / "20991229-000000-full.json").symlink_to(backups / f"{good}.json")
    (backups / "20991228-000000-full.json").write_bytes(b"\xff\xfe")
    fifo_data = json.loads((backups / f"{good}.json").read_text())
    fifo_data.update(name="20991227-000000-full", data_file="20991227-000000-full.sqlite.zst")
    (backups / "20991227-000000-full.json").write_text(json.dumps(fifo_data))
    os.mkfifo(backups / "20991227-000000-full.sqlite.zst")
    odd = sorted(p.name for p in backups.iterdir() if p.name.startswith("2099"))

    listed = run_planctl("backup", "list", "--json", env=env, timeout=30)
    assert listed.returncode == 0, listed.stderr
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert rows[good]["restorable"] is True
    assert all(not rows[name]["restorable"] for name in rows if name.startswith("2099"))
    verified = run_planctl("backup", "verify", "--all", env=env, timeout=30)
    assert verified.returncode == 5
    assert "20991227-000000-full" in verified.stdout + verified.stderr
    assert "not a regular file" in verified.stdout + verified.stderr
    kept = run_planctl("backup", "--keep", "1", env=env, timeout=60)
    assert kept.returncode == 0, kept.stderr
    restored = run_planctl("backup", "restore", "latest", "--yes", env=env, timeout=60)
    assert restored.returncode == 0, restored.stderr
    # Unreadable metadata is evidence nobody can date: kept. The backup whose data file is a
    # FIFO copies the old backup's sequence, so it is older than the one kept: rotated out.
    left = sorted(p.name for p in backups.iterdir() if p.name.startswith("2099"))
    assert left == [n for n in odd if not n.startswith("20991227")], (left, kept.stdout)
    assert "Rotated out 20991227-000000-full" in kept.stdout
