# ruff: noqa: F811 - the fixtures imported from offsite_support are redefined as arguments
"""Offsite backups through the CLI, real processes: encrypted with age, uploaded to a real
S3 server (moto) on loopback, verified and restored from it on a machine with no local
backups; status and pings for cron."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from planctl.backup import load_set

from .helpers import planctl_env, run_planctl, table_contents, target_of
from .offsite_support import (  # noqa: F401  (fixtures)
    S3Server,
    SFTPServer,
    age_key,
    age_tool,
    sftp_server,
)


@pytest.fixture
def moto(tmp_path: Path) -> Iterator[S3Server]:
    root = tmp_path / "s3root"
    root.mkdir()
    server = S3Server("moto", root).start()
    try:
        server.make_bucket("planctl")
        yield server
    finally:
        server.kill()


def _touch(url: str, note: str) -> None:
    from sqlalchemy import text

    from planctl.db.engine import connect

    with connect(target_of(url)) as c:
        c.execute(text("UPDATE sesiones SET notas = :n WHERE id <= 5"), {"n": note})


def test_encrypted_backups_need_the_identity_only_to_restore(
    seeded_url: str, tmp_path: Path, age_key: tuple[Path, str]
) -> None:
    key, public = age_key
    backups = tmp_path / "backups"
    cron = planctl_env(
        seeded_url, backups, tmp_path / "logs", PLANCTL_BACKUP_RECIPIENTS=public
    )  # the cron host: public key only
    done = run_planctl("backup", "--keep", "2", env=cron)
    assert done.returncode == 0, done.stderr
    info = load_set(backups).infos[-1]
    data = (backups / info.data_file).read_bytes()
    assert info.data_file.endswith(".age") and data.startswith(b"age-encryption.org/v1")
    assert info.encrypted_for and "age1" not in json.dumps(info.encrypted_for)
    # The age CLI decrypts it: a real backup inside.
    plain = subprocess.run(
        [age_tool("age"), "-d", "-i", str(key), str(backups / info.data_file)],
        check=True,
        capture_output=True,
    ).stdout
    # zstd (SQLite, the default), or a pg_dump archive
    assert plain.startswith((b"\x28\xb5\x2f\xfd", b"\x1f\x8b", b"SQLite format 3", b"PGDMP"))
    verified = run_planctl("backup", "verify", env=cron)
    assert verified.returncode == 0 and "checksum only" in verified.stdout
    expected = table_contents(seeded_url)
    _touch(seeded_url, "to be undone")
    refused = run_planctl("backup", "restore", "latest", "--yes", env=cron)
    assert refused.returncode == 1 and "PLANCTL_BACKUP_IDENTITY" in refused.stderr
    restorer = {**cron, "PLANCTL_BACKUP_IDENTITY": str(key)}
    assert run_planctl("backup", "verify", env=restorer).returncode == 0
    done = run_planctl("backup", "restore", "latest", "--yes", env=restorer)
    assert done.returncode == 0, done.stderr
    assert table_contents(seeded_url) == expected
    # The safety copy of the replaced state is encrypted too; no plaintext is left behind.
    for path in backups.iterdir():
        if path.name.endswith((".sqlite", ".gz", ".dump", ".jsonl")):
            raise AssertionError(f"plaintext left in the backup directory: {path.name}")


def test_a_bad_recipient_fails_closed(seeded_url: str, tmp_path: Path) -> None:
    env = planctl_env(
        seeded_url, tmp_path / "backups", tmp_path / "logs", PLANCTL_BACKUP_RECIPIENTS="age1nope"
    )
    done = run_planctl("backup", env=env)
    assert done.returncode == 1 and "age1nope" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not any(
        p.name.endswith((".sqlite", ".gz", ".dump", ".age"))
        for p in (tmp_path / "backups").glob("*")
    )


def test_offsite_round_trip_to_a_new_machine(
    seeded_url: str, tmp_path: Path, age_key: tuple[Path, str], moto: S3Server
) -> None:
    key, public = age_key
    remote = {
        **moto.aws_env(),
        "PLANCTL_BACKUP_RECIPIENTS": public,
        "PLANCTL_BACKUP_REMOTE": "s3://planctl/planner",
    }
    env = {**planctl_env(seeded_url, tmp_path / "backups", tmp_path / "logs"), **remote}
    env = {k: v for k, v in env.items() if k != "PLANCTL_BACKUP_DIR"} | {
        "PLANCTL_BACKUP_DIR": str(tmp_path / "backups")
    }
    done = run_planctl("backup", "--keep", "3", env=env)
    assert done.returncode == 0, done.stderr
    assert "Uploaded to" in done.stdout
    _touch(seeded_url, "second")
    assert run_planctl("backup", "--keep", "3", env=env).returncode == 0
    expected = table_contents(seeded_url)
    listed = run_planctl("backup", "list", "--remote", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert len(rows) == 2 and all(r["restorable"] for r in rows)
    checked = run_planctl("backup", "verify", "--remote", "--all", env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # A new machine: no local backup directory, only the identity and the remote.
    _touch(seeded_url, "lost with the laptop")
    fresh = {
        **env,
        "PLANCTL_BACKUP_DIR": str(tmp_path / "new-machine"),
        "PLANCTL_BACKUP_IDENTITY": str(key),
    }
    done = run_planctl("backup", "restore", "latest", "--remote", "--yes", env=fresh)
    assert done.returncode == 0, done.stderr
    assert table_contents(seeded_url) == expected

    # A flipped byte in the remote data: verify says 5, restore refuses.
    client = moto.client()
    newest = rows[0]
    obj = client.get_object(Bucket="planctl", Key=f"planner/{newest['data_file']}")["Body"].read()
    damaged = bytearray(obj)
    damaged[len(damaged) // 2] ^= 0xFF
    client.put_object(Bucket="planctl", Key=f"planner/{newest['data_file']}", Body=bytes(damaged))
    checked = run_planctl("backup", "verify", "--remote", newest["name"], env=env)
    assert checked.returncode == 5
    before = table_contents(seeded_url)
    refused = run_planctl("backup", "restore", newest["name"], "--remote", "--yes", env=fresh)
    assert refused.returncode == 5
    assert table_contents(seeded_url) == before


def test_push_uploads_what_is_missing_and_resumes(
    seeded_url: str, tmp_path: Path, moto: S3Server
) -> None:
    local = planctl_env(seeded_url, tmp_path / "backups", tmp_path / "logs")
    for _ in range(2):
        assert run_planctl("backup", env=local).returncode == 0
    env = {**local, **moto.aws_env(), "PLANCTL_BACKUP_REMOTE": "s3://planctl/p"}
    done = run_planctl("backup", "push", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("Uploaded") == 2
    again = run_planctl("backup", "push", env=env)
    assert again.returncode == 0 and "Nothing to upload" in again.stdout
    keys = {o["Key"] for o in moto.client().list_objects_v2(Bucket="planctl")["Contents"]}
    assert len([k for k in keys if k.endswith(".json")]) == 2


@pytest.fixture
def ping_server() -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def _record(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            seen.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = _record

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hc", seen
    server.shutdown()
    server.server_close()


def test_status_and_pings_for_cron(
    migrated_url: str, tmp_path: Path, ping_server: tuple[str, list[str]]
) -> None:
    url, seen = ping_server
    env = planctl_env(migrated_url, tmp_path / "backups", tmp_path / "logs")
    nothing = run_planctl("backup", "status", env=env)
    assert nothing.returncode == 5 and "no restorable backup" in nothing.stderr
    done = run_planctl("backup", "--ping", url, env=env)
    assert done.returncode == 0, done.stderr
    assert seen == ["/hc/start", "/hc"]
    fresh = run_planctl("backup", "status", "--max-age", "1h", "--json", env=env)
    assert fresh.returncode == 0, fresh.stderr
    assert json.loads(fresh.stdout)["last_run"]["outcome"] == "success"
    import time

    time.sleep(2.1)
    stale = run_planctl("backup", "status", "--max-age", "2s", env=env)
    assert stale.returncode == 5 and "older than 2s" in stale.stderr
    broken = {**env, "DATABASE_URL": f"sqlite:///{tmp_path / 'missing.db'}"}
    failed = run_planctl("backup", "--ping", url, env=broken)
    assert failed.returncode == 1 and seen[-1] == "/hc/fail"
    status = run_planctl("backup", "status", env=broken)
    assert status.returncode == 5 and "last backup run failed" in status.stderr


def test_a_hanging_ping_server_never_holds_the_backup(migrated_url: str, tmp_path: Path) -> None:
    import socket
    import time

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)  # accepts connections, never answers
    env = planctl_env(migrated_url, tmp_path / "backups", tmp_path / "logs")
    started = time.monotonic()
    done = run_planctl(
        "backup", "--ping", f"http://127.0.0.1:{listener.getsockname()[1]}/hc", env=env
    )
    listener.close()
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 60


def test_sftp_remote_through_the_cli(
    seeded_url: str, tmp_path: Path, sftp_server: SFTPServer
) -> None:
    """Key authentication and known_hosts from ~/.ssh, as a user's cron job has them."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    shutil.copy(sftp_server.client_key, home / ".ssh" / "id_ed25519")
    (home / ".ssh" / "id_ed25519").chmod(0o600)
    shutil.copy(sftp_server.known_hosts, home / ".ssh" / "known_hosts")
    env = {
        **planctl_env(seeded_url, tmp_path / "backups", tmp_path / "logs"),
        "HOME": str(home),
        "PLANCTL_BACKUP_REMOTE": sftp_server.url(),
    }
    done = run_planctl("backup", env=env)
    assert done.returncode == 0, done.stderr
    assert "Uploaded to" in done.stdout
    expected = table_contents(seeded_url)
    _touch(seeded_url, "gone")
    fresh = {**env, "PLANCTL_BACKUP_DIR": str(tmp_path / "elsewhere")}
    done = run_planctl("backup", "restore", "latest", "--remote", "--yes", env=fresh)
    assert done.returncode == 0, done.stderr
    assert table_contents(seeded_url) == expected
