"""Backup benchmarks against the engines' own tools, in one run.

    python bench/backup.py [--sessions 3500000] [--runs 3] [--no-postgres]

On a SQLite database of about 1 GB (db-seed --scale) and its PostgreSQL twin:
``planctl backup --no-compress`` vs ``sqlite3 DB ".backup FILE"`` and vs
``pg_dump -Fc -Z0``; ``planctl backup restore`` vs ``pg_restore`` with the same
flags planctl uses. Median of --runs. Appends a table to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
PLANCTL = str(Path(sys.executable).parent / "planctl")
ADMIN_URL = os.environ.get(
    "PLANCTL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def env_for(url: str, work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLANCTL_")}
    env.update(
        DATABASE_URL=url,
        PLANCTL_LOG_DIR=str(work / "logs"),
        PLANCTL_BACKUP_DIR=str(work / "backups"),
    )
    return env


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def bench_sqlite(sessions: int, runs: int, work: Path) -> list[tuple[str, float, str, float]]:
    db = work / "big.db"
    env = env_for(f"sqlite:///{db}", work)
    subprocess.run([PLANCTL, "-q", "db-upgrade"], env=env, check=True)
    subprocess.run([PLANCTL, "-q", "db-seed", "--scale", str(sessions)], env=env, check=True)
    size = db.stat().st_size
    ours, ref = [], []
    for i in range(runs):
        target = work / f"ref-{i}.db"
        ref.append(timed(["sqlite3", str(db), f".backup {target}"]))
        target.unlink()
        ours.append(timed([PLANCTL, "-q", "backup", "--no-compress", "--keep", "1"], env=env))
    compressed = timed([PLANCTL, "-q", "backup", "--compress", "--keep", "1"], env=env)
    return [
        (
            f"backup --no-compress, SQLite {size / 1e9:.2f} GB",
            median(ours),
            'sqlite3 DB ".backup FILE"',
            median(ref),
        ),
        (
            "backup --compress (gzip -1), same database",
            compressed,
            'sqlite3 DB ".backup FILE"',
            median(ref),
        ),
    ]


def bench_postgres(sessions: int, runs: int, work: Path) -> list[tuple[str, float, str, float]]:
    import psycopg

    admin = ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
    name = f"planctl_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin.rsplit("/", 1)[0] + "/" + name
    env = env_for(url, work)
    libpq = {**os.environ, "PGDATABASE": name}
    try:
        subprocess.run([PLANCTL, "-q", "db-upgrade"], env=env, check=True)
        subprocess.run([PLANCTL, "-q", "db-seed", "--scale", str(sessions)], env=env, check=True)
        ours, ref = [], []
        dump = work / "ref.dump"
        for _ in range(runs):
            ref.append(timed(["pg_dump", "-d", url, "-Fc", "-Z0", "-f", str(dump)]))
            ours.append(timed([PLANCTL, "-q", "backup", "--no-compress", "--keep", "1"], env=env))
        ours_restore, ref_restore = [], []
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
                    ],
                    env=libpq,
                )
            )
            ours_restore.append(timed([PLANCTL, "-q", "backup", "restore", "--yes"], env=env))
        size = dump.stat().st_size
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return [
        (
            f"backup --no-compress, PostgreSQL (dump {size / 1e9:.2f} GB)",
            median(ours),
            "pg_dump -Fc -Z0",
            median(ref),
        ),
        (
            "backup restore (incl. verify + safety backup)",
            median(ours_restore),
            "pg_restore --clean --if-exists --single-transaction --no-owner",
            median(ref_restore),
        ),
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
    stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = [
        f"## backups — {stamp} — {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{args.sessions:,} sessions, median of {args.runs}",
        "",
        "| planctl | s | reference (same run) | s | ratio |",
        "|---|---:|---|---:|---:|",
    ]
    lines += [f"| {a} | {x:.2f} | {b} | {y:.2f} | {x / y:.2f}× |" for a, x, b, y in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    with (HERE / "RESULTS.md").open("a") as out:
        out.write(text + "\n")


if __name__ == "__main__":
    main()
