"""Backups under stress, with real processes: concurrent writers, kill -9, locks,
full disks, and secrets that must never show."""

from __future__ import annotations

import os
import resource
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from planctl.backup import list_backups, verify_backup
from planctl.backup.catalog import CHECKSUM_CACHE, LAST_RUN_FILE
from planctl.backup.options import RestoreOptions
from planctl.backup.store import LOCK_NAME
from planctl.db import migrate
from planctl.db.seed import seed

from .conftest import EnvFor, ScramServer, require_root, skip_or_fail
from .helpers import run_planctl, spawn_planctl, table_contents, target_of


def _files(directory: Path) -> set[str]:
    ignored = {LOCK_NAME, CHECKSUM_CACHE, LAST_RUN_FILE}
    return {p.name for p in directory.iterdir()} - ignored if directory.exists() else set()


WRITER = r"""
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
db.execute("PRAGMA busy_timeout=30000")
i = 0
deadline = time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO temas (nombre) VALUES (?)", (f"w-{i}-a",))
    db.execute("INSERT INTO temas (nombre) VALUES (?)", (f"w-{i}-b",))
    db.execute("COMMIT")
    i += 1
print(i)
"""


def test_sqlite_backup_while_another_process_writes(tmp_path: Path, env_for: EnvFor) -> None:
    db = tmp_path / "live.db"
    url = f"sqlite:///{db}"
    migrate.upgrade(target_of(url))
    seed(target_of(url), scale=100_000)
    with sqlite3.connect(db) as connection:
        assert connection.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db), "6"], stdout=subprocess.PIPE, text=True
    )
    try:
        time.sleep(0.3)
        for _ in range(4):
            done = run_planctl("backup", "--no-compress", env=env_for(url))
            assert done.returncode == 0, done.stderr
    finally:
        out, _ = writer.communicate(timeout=60)
    assert writer.returncode == 0 and int(out) > 0
    backups = list_backups(tmp_path / "backups")
    assert len(backups) == 4
    written = []
    for info in backups:
        assert verify_backup(tmp_path / "backups", info.name)[0].ok  # integrity_check passes
        with sqlite3.connect(tmp_path / "backups" / info.data_file) as copy:
            count = copy.execute("SELECT count(*) FROM temas WHERE nombre LIKE 'w-%'").fetchone()[0]
            sessions = copy.execute("SELECT count(*) FROM sesiones").fetchone()[0]
        assert count % 2 == 0, "a snapshot caught half a transaction"
        assert sessions == 100_000
        assert info.row_counts["temas"] == count + 8  # metadata counted the same snapshot
        written.append(count)
    assert len(set(written)) > 1, "the writer made progress between backups (it was not blocked)"


STAGES = ["sqlite-copied", "verified", "data-written", "data-published", "metadata-published"]


@pytest.mark.parametrize("stage", STAGES)
def test_kill_9_during_sqlite_backup(tmp_path: Path, env_for: EnvFor, stage: str) -> None:
    _kill_9_scenario(tmp_path, env_for, f"sqlite:///{tmp_path / 'live.db'}", stage)


@pytest.mark.parametrize(
    "stage", ["pg-dump-start", "verified", "data-published", "metadata-published"]
)
def test_kill_9_during_postgres_backup(
    tmp_path: Path, env_for: EnvFor, pg_database: str, stage: str
) -> None:
    _kill_9_scenario(tmp_path, env_for, pg_database, stage)


def _kill_9_scenario(tmp_path: Path, env_for: EnvFor, url: str, stage: str) -> None:
    backups = tmp_path / "backups"
    migrate.upgrade(target_of(url))
    seed(target_of(url))
    for _ in range(2):
        assert run_planctl("backup", "--keep", "2", env=env_for(url)).returncode == 0
    before = {i.name for i in list_backups(backups)}

    crashed = run_planctl("backup", "--keep", "2", env=env_for(url), fault=f"crash:{stage}")
    assert crashed.returncode == -signal.SIGKILL

    after = list_backups(backups)
    complete = stage == "metadata-published"
    assert len(after) == len(before) + (1 if complete else 0)  # no partial backup listed
    assert before <= {i.name for i in after}  # rotation never ran
    assert all(r.ok for r in verify_backup(backups, all_backups=True))

    done = run_planctl("backup", "--keep", "2", env=env_for(url))
    assert done.returncode == 0, done.stderr
    final = list_backups(backups)
    assert len(final) == 2
    expected = {f"{i.name}.json" for i in final} | {i.data_file for i in final}
    assert _files(backups) == expected  # leftovers of the crash were cleaned
    assert all(r.ok for r in verify_backup(backups, all_backups=True))


def test_two_runs_at_once(seeded_url: str, tmp_path: Path, env_for: EnvFor) -> None:
    backups = tmp_path / "backups"
    assert run_planctl("backup", env=env_for(seeded_url)).returncode == 0
    slow = spawn_planctl(
        "backup", "--keep", "5", env=env_for(seeded_url), fault="pause:data-written:3"
    )
    try:
        deadline = time.monotonic() + 20
        while not any(p.name.startswith(".tmp-") for p in backups.iterdir()):
            assert time.monotonic() < deadline and slow.poll() is None
            time.sleep(0.05)
        second = run_planctl("backup", "--keep", "5", env=env_for(seeded_url))
        assert second.returncode == 4
        assert "another planctl backup holds the lock" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
        waiting = run_planctl(
            "backup", "--keep", "5", "--lock-timeout", "30", env=env_for(seeded_url)
        )
        assert waiting.returncode == 0, waiting.stderr
    finally:
        _, err = slow.communicate(timeout=60)
    assert slow.returncode == 0, err
    infos = list_backups(backups)
    assert len(infos) == 3
    assert all(r.ok for r in verify_backup(backups, all_backups=True))


def _limit_file_size(limit: int) -> Callable[[], None]:
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.parametrize("compress", ["--compress=zstd", "--no-compress"])
def test_file_size_limit_mid_backup(
    seeded_url: str, tmp_path: Path, env_for: EnvFor, compress: str
) -> None:
    backups = tmp_path / "backups"
    for _ in range(2):
        assert run_planctl("backup", "--no-compress", env=env_for(seeded_url)).returncode == 0
    before = _files(backups)
    size = min(i.size for i in list_backups(backups))
    done = subprocess.run(
        [sys.executable, "-m", "planctl", "backup", "--keep", "1", compress],
        env=env_for(seeded_url),
        capture_output=True,
        text=True,
        preexec_fn=_limit_file_size(size // 4),
    )
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert "file-size limit" in lines[0] or "disk is full" in lines[0], lines[0]
    assert _files(backups) == before  # no partial file, and --keep 1 did not rotate
    assert all(r.ok for r in verify_backup(backups, all_backups=True))


def test_tiny_disk_mid_backup(tmp_path: Path, env_for: EnvFor) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    migrate.upgrade(target_of(url))
    seed(target_of(url), scale=20_000)
    backups = tmp_path / "backups"
    backups.mkdir()
    require_root("mounting a tiny tmpfs")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(backups)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        skip_or_fail(f"cannot mount tmpfs: {mounted.stderr}")
    try:
        done = run_planctl("backup", "--no-compress", env=env_for(url))
        assert done.returncode == 1
        assert "disk is full" in done.stderr or "No space left" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
        assert _files(backups) == set()
    finally:
        subprocess.run(["umount", str(backups)], check=True)


def test_password_never_shows(tmp_path: Path, env_for: EnvFor, scram_server: ScramServer) -> None:
    import psycopg

    with psycopg.connect(scram_server.url(), autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS argv_check")
        conn.execute("CREATE DATABASE argv_check")
    url = scram_server.url(database="argv_check")
    secret = scram_server.password
    migrate.upgrade(target_of(url))
    seed(target_of(url), scale=150_000)

    seen: dict[str, list[str]] = {"pg_dump": [], "leaks": []}
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                argv = raw.replace(b"\0", b" ").decode(errors="replace")
                if "pg_dump" in argv or "pg_restore" in argv:
                    seen["pg_dump"].append(argv)
                if secret in argv:
                    seen["leaks"].append(argv)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        backup = run_planctl("-v", "backup", "--no-compress", env=env_for(url))
        verify = run_planctl("-v", "backup", "verify", env=env_for(url))
        restore = run_planctl("-v", "backup", "restore", "--yes", env=env_for(url))
    finally:
        stop.set()
        watcher.join()
    for done in (backup, verify, restore):
        assert done.returncode == 0, done.stderr
        assert secret not in done.stdout + done.stderr
    assert seen["pg_dump"], "the watcher never saw pg_dump running: the check proved nothing"
    assert seen["leaks"] == []
    for log in (tmp_path / "logs").iterdir():
        assert secret not in log.read_text()
    for meta in (tmp_path / "backups").glob("*.json"):
        assert secret not in meta.read_text()
    assert table_contents(url)["sesiones"]


def test_sqlite_restore_leaves_no_stale_wal_to_replay(tmp_path: Path) -> None:
    from planctl.backup import create_backup, restore_backup

    db = tmp_path / "live.db"
    url = f"sqlite:///{db}"
    migrate.upgrade(target_of(url))
    seed(target_of(url))
    holder = sqlite3.connect(db, isolation_level=None)  # another program keeps the database open
    holder.execute("PRAGMA journal_mode=WAL")
    holder.execute("PRAGMA wal_autocheckpoint=0")  # its changes stay in the -wal file
    backups = tmp_path / "b"
    create_backup(target_of(url), backups)
    expected = table_contents(url)
    holder.execute("DELETE FROM sesiones WHERE id > 100")
    holder.execute("UPDATE clientes SET empresa = 'Cambiada'")
    assert Path(f"{db}-wal").stat().st_size > 0

    restore_backup(target_of(url), backups, options=RestoreOptions(safety_backup=False))
    assert table_contents(url) == expected
    # the program that held the database open sees the restored data too
    assert holder.execute("SELECT count(*) FROM sesiones").fetchone()[0] == len(
        expected["sesiones"]
    )
    holder.close()
    # and a fresh process, after every connection closed, still reads the restored state
    query = "SELECT count(*) FROM sesiones"
    code = f"import sqlite3; print(sqlite3.connect({str(db)!r}).execute({query!r}).fetchone()[0])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(out.stdout) == len(expected["sesiones"])
    assert table_contents(url) == expected


def test_sqlite_restore_after_the_database_file_was_lost(tmp_path: Path, env_for: EnvFor) -> None:
    db = tmp_path / "live.db"
    url = f"sqlite:///{db}"
    migrate.upgrade(target_of(url))
    seed(target_of(url))
    expected = table_contents(url)
    assert run_planctl("backup", env=env_for(url)).returncode == 0
    db.unlink()
    done = run_planctl("backup", "restore", "--yes", env=env_for(url))
    assert done.returncode == 0, done.stderr
    assert table_contents(url) == expected
    assert len(list_backups(tmp_path / "backups")) == 1  # nothing to keep a safety copy of


def test_restore_and_verify_from_read_only_media(tmp_path: Path, env_for: EnvFor) -> None:
    """A set on a read-only mount verifies and restores; writing to it fails in one line."""
    db = tmp_path / "live.db"
    url = f"sqlite:///{db}"
    migrate.upgrade(target_of(url))
    seed(target_of(url))
    expected = table_contents(url)
    media = tmp_path / "media"
    media.mkdir()
    require_root("mounting read-only media")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(media)], check=True)
    try:
        env = env_for(url, PLANCTL_BACKUP_DIR=str(media))
        assert run_planctl("backup", env=env).returncode == 0
        subprocess.run(["mount", "-o", "remount,ro", str(media)], check=True)
        verify = run_planctl("backup", "verify", "--all", env=env)
        assert verify.returncode == 0, verify.stderr
        with sqlite3.connect(db) as connection:
            connection.execute("DELETE FROM sesiones")
        restore = run_planctl("backup", "restore", "--yes", "--no-safety-backup", env=env)
        assert restore.returncode == 0, restore.stderr
        assert table_contents(url) == expected
        write = run_planctl("backup", env=env)
        assert write.returncode == 1
        assert len(write.stderr.strip().splitlines()) == 1 and "Traceback" not in write.stderr
    finally:
        subprocess.run(["umount", str(media)], check=True)
