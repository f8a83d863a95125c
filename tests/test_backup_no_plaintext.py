"""Restoring and verifying an encrypted backup leaves no readable plaintext under a name
(issue 19): the data is decrypted into files without a name and streamed into the
engines. Real processes killed with SIGKILL at named stages and at random instants; the
backup directory and TMPDIR are searched for a SQLite or pg_dump header afterwards, and
the database is always its old state or the restored one, never half of each."""

from __future__ import annotations

import random
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from planctl.backup import create_backup
from planctl.backup.crypto import parse_recipients
from planctl.backup.options import BackupOptions
from planctl.db.engine import connect

from .helpers import planctl_env, run_planctl, spawn_planctl, table_contents, target_of

PLAINTEXT_MAGIC = (b"SQLite format 3\x00", b"PGDMP")


@dataclass
class Encrypted:
    url: str
    env: dict[str, str]
    places: tuple[Path, Path]  # the backup directory and the child's TMPDIR
    backup: str  # the delta on top of the full backup: its chain is restored
    restored: dict[str, list[tuple[Any, ...]]]  # the state it holds
    current: dict[str, list[tuple[Any, ...]]]  # the state the database holds now


def _change(url: str, value: str) -> None:
    with connect(target_of(url)) as connection:
        connection.execute(text("UPDATE temas SET descripcion = :v WHERE id = 1"), {"v": value})
        connection.execute(text("DELETE FROM sesiones WHERE id IN (SELECT max(id) FROM sesiones)"))


@pytest.fixture
def encrypted(seeded_url: str, tmp_path: Path) -> Encrypted:
    """A chain (full + delta) encrypted with age, then the database changed again."""
    import pyrage

    identity = pyrage.x25519.Identity.generate()
    key = tmp_path / "key.txt"
    key.write_text(str(identity) + "\n")
    public = str(identity.to_public())
    backups, scratch = tmp_path / "backups", tmp_path / "tmp"
    scratch.mkdir()
    options = BackupOptions(incremental=True, recipients=parse_recipients(public))
    create_backup(target_of(seeded_url), backups, options)
    _change(seeded_url, "between the full backup and the delta")
    delta = create_backup(target_of(seeded_url), backups, options).info
    assert delta.kind == "delta" and delta.data_file.endswith(".age")
    restored = table_contents(seeded_url)
    _change(seeded_url, "after the delta")
    env = planctl_env(
        seeded_url,
        backups,
        tmp_path / "logs",
        PLANCTL_BACKUP_RECIPIENTS=public,  # the safety copy is encrypted too
        PLANCTL_BACKUP_IDENTITY=str(key),
        TMPDIR=str(scratch),
    )
    return Encrypted(
        seeded_url, env, (backups, scratch), delta.name, restored, table_contents(seeded_url)
    )


def _readable_plaintext(places: tuple[Path, ...]) -> list[Path]:
    """Every file under *places* holding a SQLite or pg_dump header."""
    return [
        path
        for place in places
        for path in place.rglob("*")
        if path.is_file() and any(magic in path.read_bytes() for magic in PLAINTEXT_MAGIC)
    ]


def _after_the_kill(setup: Encrypted, what: str) -> None:
    assert _readable_plaintext(setup.places) == [], what
    state = table_contents(setup.url)
    assert state in (setup.current, setup.restored), f"{what}: the database is half restored"
    setup.current = state  # a restore that finished before the kill is the new old state


STAGES = {
    "sqlite": ("before-restore", "deltas-applied", "sqlite-restored"),
    "postgresql": ("before-restore", "deltas-applied", "restore-point-dumped", "pg-restored"),
}


def test_kill_9_during_an_encrypted_restore_leaves_no_plaintext(encrypted: Encrypted) -> None:
    engine = "sqlite" if encrypted.url.startswith("sqlite") else "postgresql"
    restore = ("backup", "restore", encrypted.backup, "--yes")
    for stage in STAGES[engine]:  # a SIGKILL at exactly that stage
        done = run_planctl(*restore, env=encrypted.env, fault=f"crash:{stage}")
        assert done.returncode == -signal.SIGKILL, (stage, done.stderr)
        _after_the_kill(encrypted, f"killed at {stage}")
    randomly = random.Random(19)
    for attempt in range(4):  # and at instants nobody chose
        process = spawn_planctl(*restore, env=encrypted.env)
        time.sleep(randomly.uniform(0.3, 1.5) * (attempt + 1) / 2)
        process.send_signal(signal.SIGKILL)
        process.communicate()
        _after_the_kill(encrypted, f"killed after {attempt}")
    done = run_planctl(*restore, env=encrypted.env)
    assert done.returncode == 0, done.stderr
    assert table_contents(encrypted.url) == encrypted.restored
    assert _readable_plaintext(encrypted.places) == []


def test_kill_9_during_an_encrypted_verify_leaves_no_plaintext(encrypted: Encrypted) -> None:
    verify = ("backup", "verify", encrypted.backup)
    randomly = random.Random(23)
    for attempt in range(3):
        process = spawn_planctl(*verify, env=encrypted.env)
        time.sleep(randomly.uniform(0.3, 1.2) * (attempt + 1) / 2)
        process.send_signal(signal.SIGKILL)
        process.communicate()
        assert _readable_plaintext(encrypted.places) == [], attempt
    done = run_planctl(*verify, env=encrypted.env)
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stdout.split())
    assert f"OK {encrypted.backup}" in said
    assert "checksum only" not in said  # the deep check ran on the decrypted data
    assert _readable_plaintext(encrypted.places) == []
    assert table_contents(encrypted.url) == encrypted.current


def test_the_search_finds_a_plaintext_file(tmp_path: Path) -> None:
    """The checker itself: a SQLite database or a pg_dump archive anywhere is found."""
    (tmp_path / "deep" / "er").mkdir(parents=True)
    (tmp_path / "deep" / "er" / ".tmp-x.data").write_bytes(b"SQLite format 3\x00" + bytes(84))
    (tmp_path / "a.dump").write_bytes(b"PGDMP\x01\x0f")
    (tmp_path / "fine.age").write_bytes(b"age-encryption.org/v1\n")
    assert sorted(p.name for p in _readable_plaintext((tmp_path,))) == [".tmp-x.data", "a.dump"]
