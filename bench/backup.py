"""Backup benchmarks against the engines' own tools, in one run.

    python bench/backup.py [--sessions 3500000] [--runs 3] [--no-postgres]

On a SQLite database of about 1 GB (db-seed --scale) and its PostgreSQL twin:
``planctl backup --no-compress`` vs ``sqlite3 DB ".backup FILE" && sha256sum
FILE`` (the same work: planctl records a sha256), vs the bare ``.backup`` and vs
``pg_dump -Fc -Z0``; ``planctl backup restore`` vs ``pg_restore`` with the same
flags planctl uses; and a chain restore (a full backup plus a delta of 100,000
changed sessions) in rows/s. Medians of --runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PLANCTL, create_pg_database, drop_pg_database, env_for, record


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    os.sync()  # the previous run's dirty pages are written back before this one starts
    started = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def seed(env: dict[str, str], sessions: int) -> None:
    subprocess.run([PLANCTL, "-q", "db-upgrade"], env=env, check=True)
    subprocess.run([PLANCTL, "-q", "db-seed", "--scale", str(sessions)], env=env, check=True)


def bench_sqlite(sessions: int, runs: int, work: Path) -> list[tuple[str, float, str, float]]:
    db = work / "big.db"
    env = env_for(f"sqlite:///{db}", work)
    seed(env, sessions)
    size = db.stat().st_size
    ref, hashed, plain, gated, packed, sealed = [], [], [], [], [], []
    sealed_env = {**env, "PLANCTL_BACKUP_RECIPIENTS": age_recipient(work)}
    for i in range(runs):
        target = work / f"ref-{i}.db"
        ref.append(timed(["sqlite3", str(db), f".backup {target}"]))
        target.unlink()
        hashed.append(
            timed(["sh", "-c", f'sqlite3 "{db}" ".backup {target}" && sha256sum "{target}"'])
        )
        target.unlink()
        plain.append(timed([PLANCTL, "-q", "backup", "--no-compress"], env=env))
        gated.append(timed([PLANCTL, "-q", "backup", "--no-compress", "--keep", "1"], env=env))
        packed.append(timed([PLANCTL, "-q", "backup", "--keep", "1"], env=env))
        sealed.append(
            timed([PLANCTL, "-q", "backup", "--no-compress", "--keep", "1"], env=sealed_env)
        )
    r, h = statistics.median(ref), statistics.median(hashed)
    reference = 'sqlite3 DB ".backup FILE"'
    chain = bench_chain(env, runs)
    return [
        (
            f"backup --no-compress, SQLite {size / 1e9:.2f} GB (sha256, no engine check)",
            statistics.median(plain),
            'sqlite3 DB ".backup F" && sha256sum F',
            h,
        ),
        (
            "backup --no-compress (the same, against the bare copy)",
            statistics.median(plain),
            reference,
            r,
        ),
        (
            "backup --no-compress --keep 1 (+ quick_check before rotation)",
            statistics.median(gated),
            reference,
            r,
        ),
        ("backup --keep 1 (zstd + quick_check)", statistics.median(packed), reference, r),
        (
            "backup --no-compress --keep 1, age-encrypted",
            statistics.median(sealed),
            "the same, not encrypted",
            statistics.median(gated),
        ),
        *chain,
    ]


CHANGED = 100_000


def age_recipient(work: Path) -> str:
    """A fresh age key pair (the identity stays in *work*); its public key."""
    from planctl.backup.crypto import _pyrage

    identity = _pyrage().x25519.Identity.generate()
    (work / "age-key.txt").write_text(str(identity))
    return str(identity.to_public())


def bench_chain(env: dict[str, str], runs: int) -> list[tuple[str, float, str, float]]:
    """A full backup, 100,000 sessions changed, a delta; restore the full, then the chain."""
    import sqlalchemy

    url = env["DATABASE_URL"]
    env = {**env, "PLANCTL_BACKUP_DIR": env["PLANCTL_BACKUP_DIR"] + "-chain"}  # a set of its own
    subprocess.run([PLANCTL, "-q", "backup", "--incremental", "--no-compress"], env=env, check=True)
    full = subprocess.run(
        [PLANCTL, "backup", "list", "--json"], env=env, check=True, capture_output=True, text=True
    )
    import json

    full_name = json.loads(full.stdout)[0]["name"]
    engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as connection:
        connection.execute(
            sqlalchemy.text(f"UPDATE sesiones SET notas = 'bench ' || id WHERE id <= {CHANGED}")
        )
    engine.dispose()
    subprocess.run([PLANCTL, "-q", "backup", "--incremental"], env=env, check=True)
    whole, base = [], []
    restore = [PLANCTL, "-q", "backup", "restore", "--yes", "--no-safety-backup"]
    for _ in range(runs):
        base.append(timed([*restore, full_name], env=env))
        whole.append(timed([*restore, "latest"], env=env))
    w, b = statistics.median(whole), statistics.median(base)
    rate = CHANGED / max(w - b, 1e-9)
    return [
        (
            f"chain restore: full + delta of {CHANGED:,} changed sessions "
            f"({rate:,.0f} delta rows/s beyond the full)",
            w,
            "restore of the full backup alone",
            b,
        )
    ]


def bench_postgres(sessions: int, runs: int, work: Path) -> list[tuple[str, float, str, float]]:
    url = create_pg_database()
    env = env_for(url, work)
    try:
        seed(env, sessions)
        dump = work / "ref.dump"
        ref, plain, gated = [], [], []
        for _ in range(runs):
            ref.append(timed(["pg_dump", "-d", url, "-Fc", "-Z0", "-f", str(dump)]))
            plain.append(timed([PLANCTL, "-q", "backup", "--no-compress"], env=env))
            gated.append(timed([PLANCTL, "-q", "backup", "--no-compress", "--keep", "1"], env=env))
        ref_restore, restore, restore_safe = [], [], []
        for _ in range(runs):
            ref_restore.append(
                timed(
                    [
                        "pg_restore",
                        "--clean",
                        "--if-exists",
                        "--single-transaction",
                        "--no-owner",
                        "-d",
                        url,
                        str(dump),
                    ]
                )
            )
            restore.append(
                timed([PLANCTL, "-q", "backup", "restore", "--yes", "--no-safety-backup"], env=env)
            )
            restore_safe.append(timed([PLANCTL, "-q", "backup", "restore", "--yes"], env=env))
        size = dump.stat().st_size
        chain = bench_chain(env, runs)
    finally:
        drop_pg_database(url)
    d, rr = statistics.median(ref), statistics.median(ref_restore)
    restore_ref = "pg_restore --clean --if-exists --single-transaction --no-owner"
    return [
        (
            f"backup --no-compress, PostgreSQL (dump {size / 1e9:.2f} GB)",
            statistics.median(plain),
            "pg_dump -Fc -Z0",
            d,
        ),
        (
            "backup --no-compress --keep 1 (+ pg_restore --list)",
            statistics.median(gated),
            "pg_dump -Fc -Z0",
            d,
        ),
        (
            "backup restore --no-safety-backup (checksum + TOC + restore)",
            statistics.median(restore),
            restore_ref,
            rr,
        ),
        (
            "backup restore (default: + safety pg_dump of the live database)",
            statistics.median(restore_safe),
            restore_ref,
            rr,
        ),
        *chain,
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=3_500_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="planctl-bench-") as tmp:
        rows += bench_sqlite(args.sessions, args.runs, Path(tmp))
    if not args.no_postgres:
        with tempfile.TemporaryDirectory(prefix="planctl-bench-") as tmp:
            rows += bench_postgres(args.sessions, args.runs, Path(tmp))
    record(
        f"backups, {args.sessions:,} sessions, median of {args.runs}",
        "| planctl | s | reference (same run) | s | ratio |",
        [f"| {a} | {x:.2f} | {b} | {y:.2f} | {x / y:.2f}× |" for a, x, b, y in rows],
    )


if __name__ == "__main__":
    main()
