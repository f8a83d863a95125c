"""The cases of issue 19, each a real-process test: one health model for every command,
foreign backups never counted or deleted, remote copies judged by checksum and repaired,
no plaintext on disk while an encrypted backup runs."""

from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from planctl.backup import create_backup, load_set
from planctl.backup.catalog import Owner
from planctl.backup.compress import Compression
from planctl.backup.options import BackupOptions, RestoreOptions
from planctl.db import migrate
from planctl.db.engine import connect
from planctl.db.seed import seed

from .helpers import planctl_env, run_planctl, spawn_planctl, table_contents, target_of
from .offsite_support import S3Server
from .offsite_support import s3_server as s3_server

PLAINTEXT_MAGIC = (b"SQLite format 3\x00", b"PGDMP")


def _env(url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    return planctl_env(url, tmp_path / "backups", tmp_path / "logs", **extra)


def test_two_databases_one_directory_keep_counts_only_this_database(
    seeded_url: str, tmp_path: Path
) -> None:
    other = f"sqlite:///{tmp_path / 'other.db'}"
    migrate.upgrade(target_of(other))
    seed(target_of(other), random_seed=3)
    backups = tmp_path / "backups"
    for _ in range(2):
        create_backup(target_of(seeded_url), backups)
        create_backup(target_of(other), backups)
    theirs = {p.name for p in backups.iterdir() if p.suffix == ".json"}
    env = _env(seeded_url, tmp_path)
    done = run_planctl("backup", "--keep", "2", env=env)
    assert done.returncode == 0, done.stderr
    names = {p.name for p in backups.iterdir()}
    others = load_set(backups, Owner(None, "sqlite")).infos
    other_id = next(i.database_id for i in others if i.source.endswith("other.db"))
    assert all(i.name + ".json" in names for i in others if i.database_id == other_id)
    mine = load_set(backups, Owner(_own_id(backups, other_id), None))
    assert mine.restorable_chains() == 2
    assert len(theirs - names) == 1  # only this database's oldest went
    listed = run_planctl("backup", "list", env=env)
    assert "foreign" in listed.stdout


def _own_id(backups: Path, other_id: str | None) -> str:
    ids = {i.database_id for i in load_set(backups).infos} - {other_id}
    return str(ids.pop())


def test_engine_field_mismatch_restore_latest_skips_it(seeded_url: str, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    good = create_backup(target_of(seeded_url), backups).info
    bad = create_backup(target_of(seeded_url), backups).info
    meta = backups / f"{bad.name}.json"
    data = json.loads(meta.read_text())
    data["engine"] = "postgresql" if good.engine == "sqlite" else "sqlite"
    meta.write_text(json.dumps(data))
    env = _env(seeded_url, tmp_path)
    done = run_planctl("backup", "restore", "latest", "--yes", env=env)
    assert done.returncode == 0, done.stderr
    assert f"Restored {good.name}" in " ".join(done.stdout.split())
    assert bad.name in done.stderr and "skipped" in done.stderr
    kept = run_planctl("backup", "--keep", "1", env=env)
    assert kept.returncode == 0, kept.stderr
    assert meta.exists()  # another engine's: never deleted


def test_empty_target_is_refused(seeded_url: str, tmp_path: Path) -> None:
    create_backup(target_of(seeded_url), tmp_path / "backups")
    done = run_planctl(
        "backup", "restore", "latest", "--target", "", "--yes", env=_env(seeded_url, tmp_path)
    )
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "--target is empty" in done.stderr


def test_restore_into_an_empty_postgresql_database(
    tmp_path: Path, pg_database: str, pg_admin_url: str
) -> None:
    import psycopg

    migrate.upgrade(target_of(pg_database))
    seed(target_of(pg_database), random_seed=5)
    create_backup(target_of(pg_database), tmp_path / "backups")
    expected = table_contents(pg_database)
    name = f"planctl_empty_{random.randrange(1 << 40):x}"
    admin = pg_admin_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    empty = pg_admin_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        env = _env(empty, tmp_path)
        done = run_planctl("backup", "restore", "latest", "--yes", "--force-foreign", env=env)
        assert done.returncode == 0, done.stderr
        assert "No safety backup: the target database is empty" in " ".join(done.stdout.split())
        assert table_contents(empty) == expected
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_fresh_s3_server_push_and_empty_remote_status(
    seeded_url: str, tmp_path: Path, s3_server: S3Server
) -> None:
    env = {**_env(seeded_url, tmp_path), **s3_server.aws_env()}
    env["PLANCTL_BACKUP_REMOTE"] = "s3://planctl/p"
    status = run_planctl("backup", "status", "--remote", "--max-age", "1h", env=env)
    assert status.returncode == 5 and "no restorable remote backup" in status.stderr
    create_backup(target_of(seeded_url), tmp_path / "backups")
    pushed = run_planctl("backup", "push", env=env)  # ListMultipartUploads on a fresh server
    assert pushed.returncode == 0, pushed.stderr
    status = run_planctl("backup", "status", "--remote", "--max-age", "1h", env=env)
    assert status.returncode == 0, status.stderr


def test_remote_bit_rot_push_keep_1_repairs(
    seeded_url: str, tmp_path: Path, s3_server: S3Server
) -> None:
    if s3_server.kind != "moto":
        pytest.skip("one server is enough for the repair case")
    env = {**_env(seeded_url, tmp_path), **s3_server.aws_env()}
    env["PLANCTL_BACKUP_REMOTE"] = "s3://planctl/p"
    backups = tmp_path / "backups"
    infos = [create_backup(target_of(seeded_url), backups).info for _ in range(3)]
    assert run_planctl("backup", "push", env=env).returncode == 0
    client = s3_server.client()
    key = f"p/{infos[-1].data_file}"
    body = bytearray(client.get_object(Bucket="planctl", Key=key)["Body"].read())
    body[len(body) // 2] ^= 0xFF  # same size: only a checksum tells
    client.put_object(Bucket="planctl", Key=key, Body=bytes(body))
    done = run_planctl("backup", "push", "--keep", "1", env=env)
    assert done.returncode == 0, done.stderr
    assert f"Repaired {infos[-1].name}" in " ".join(done.stdout.split())
    verified = run_planctl("backup", "verify", "--remote", "latest", env=env)
    assert verified.returncode == 0, verified.stderr
    # now with no good local copy: the rotten remote copy never counts
    client.put_object(Bucket="planctl", Key=key, Body=bytes(body))
    (backups / infos[-1].data_file).unlink()
    listed = run_planctl("backup", "list", "--remote", "--json", env=env)
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert rows[infos[-1].name]["restorable"] is False


@pytest.mark.parametrize("engine_delay", [0.1, 0.4])
def test_kill_9_during_encrypted_backups_leaves_no_plaintext(
    seeded_url: str, tmp_path: Path, engine_delay: float
) -> None:
    import pyrage

    public = str(pyrage.x25519.Identity.generate().to_public())
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = _env(seeded_url, tmp_path, PLANCTL_BACKUP_RECIPIENTS=public, TMPDIR=str(scratch))
    for attempt in range(3):
        process = spawn_planctl("backup", "--keep", "5", env=env)
        time.sleep(engine_delay * (attempt + 1) / 2)
        process.send_signal(signal.SIGKILL)
        process.wait()
        for place in (tmp_path / "backups", scratch):
            for path in place.rglob("*") if place.exists() else []:
                if path.is_file():
                    content = path.read_bytes()
                    assert not any(m in content for m in PLAINTEXT_MAGIC), path
    done = run_planctl("backup", "--keep", "5", env=env)  # the next run cleans up
    assert done.returncode == 0, done.stderr
    leftovers = [p for p in (tmp_path / "backups").iterdir() if p.name.startswith(".tmp-")]
    assert leftovers == []


def test_status_metrics_file_for_node_exporter(seeded_url: str, tmp_path: Path) -> None:
    env = _env(seeded_url, tmp_path)
    assert run_planctl("backup", "--keep", "2", env=env).returncode == 0
    metrics = tmp_path / "textfile" / "planctl.prom"
    metrics.parent.mkdir()
    done = run_planctl("backup", "status", "--max-age", "1h", "--metrics", str(metrics), env=env)
    assert done.returncode == 0, done.stderr
    values = {
        line.split("{")[0]: float(line.rsplit(" ", 1)[1])
        for line in metrics.read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert values["planctl_backup_last_run_success"] == 1
    assert values["planctl_backup_restorable_chains"] == 1
    assert 0 <= values["planctl_backup_newest_restorable_age_seconds"] < 3600
    assert values["planctl_backup_newest_restorable_size_bytes"] > 0
    assert values["planctl_backup_last_run_duration_seconds"] > 0
    assert abs(values["planctl_backup_last_success_timestamp_seconds"] - time.time()) < 3600
    assert [p.name for p in metrics.parent.iterdir()] == ["planctl.prom"]  # no temp left


@pytest.mark.parametrize("compress", ["zstd", "none"])
def test_streamed_encrypted_backup_restores(seeded_url: str, tmp_path: Path, compress: str) -> None:
    import pyrage

    from planctl.backup import restore_backup, verify_backup
    from planctl.backup.crypto import parse_recipients

    identity = pyrage.x25519.Identity.generate()
    key = tmp_path / "key.txt"
    key.write_text(str(identity) + "\n")
    recipients = parse_recipients(str(identity.to_public()))
    backups = tmp_path / "backups"
    expected = table_contents(seeded_url)
    info = create_backup(
        target_of(seeded_url),
        backups,
        BackupOptions(keep=1, compress=Compression(compress), recipients=recipients),
    ).info
    assert info.data_file.endswith(".age") and info.verified_at
    data = (backups / info.data_file).read_bytes()
    assert not any(m in data for m in PLAINTEXT_MAGIC)
    [checked] = verify_backup(backups, info.name, identity=key)
    assert checked.ok and checked.note is None, checked.problem
    with connect(target_of(seeded_url)) as connection:  # something for the restore to undo
        connection.execute(text("DELETE FROM sesiones WHERE id IN (1, 2, 3)"))
    assert table_contents(seeded_url) != expected
    restore_backup(
        target_of(seeded_url), backups, info.name, RestoreOptions(identity=key, safety_backup=False)
    )
    assert table_contents(seeded_url) == expected
