"""Benchmarks for the foundation, each next to its reference tool in the same run.

    python bench/run.py [--sessions 1000000] [--runs 15] [--no-postgres]

1. Start-up: wall time of ``planctl --help`` vs ``python -c "import typer"``.
2. Bulk seed: ``planctl db-seed --scale N`` vs loading the very same session
   rows with the engine's own bulk tool (``sqlite3 .import`` of a CSV;
   ``psql \\copy`` on PostgreSQL), both into a freshly migrated database.

Prints a table and appends it to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
PLANCTL = str(BIN / "planctl")
ADMIN_URL = os.environ.get(
    "PLANCTL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
SESSION_COLUMNS = "id,contratacion_id,fecha,hora_inicio,hora_fin,direccion,enlace_vc,notas,estado"


def timed(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=cwd, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def median_of(cmd: list[str], runs: int) -> float:
    timed(cmd)  # warm the page cache
    return statistics.median(timed(cmd) for _ in range(runs))


def bench_startup(runs: int) -> list[tuple[str, float, str, float]]:
    ours = median_of([PLANCTL, "--help"], runs)
    ref = median_of([sys.executable, "-c", "import typer"], runs)
    return [(f"planctl --help (median of {runs})", ours, 'python -c "import typer"', ref)]


def _env(url: str, work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLANCTL_")}
    env.update(DATABASE_URL=url, PLANCTL_LOG_DIR=str(work / "logs"))
    return env


def bench_seed_sqlite(sessions: int, work: Path) -> tuple[str, float, str, float]:
    db, ref_db, csv = work / "seed.db", work / "ref.db", work / "sesiones.csv"
    env = _env(f"sqlite:///{db}", work)
    subprocess.run([PLANCTL, "-q", "db-upgrade"], env=env, check=True)
    ours = timed([PLANCTL, "-q", "db-seed", "--scale", str(sessions)], env=env)

    # Reference: the same parent rows, then the sessions through sqlite3's .import.
    with open(csv, "w") as out:
        subprocess.run(
            ["sqlite3", "-csv", "-header", str(db), f"SELECT {SESSION_COLUMNS} FROM sesiones"],
            stdout=out,
            check=True,
        )
    shutil.copy(db, ref_db)
    subprocess.run(["sqlite3", str(ref_db), "DELETE FROM sesiones; VACUUM;"], check=True)
    # .import fills absent columns with NULL, not their defaults: stage, then copy.
    script = (
        f".import --csv {csv} staging\n"
        f"INSERT INTO sesiones ({SESSION_COLUMNS}) SELECT {SESSION_COLUMNS} FROM staging;\n"
    )
    started = time.perf_counter()
    subprocess.run(["sqlite3", str(ref_db)], input=script, text=True, check=True)
    ref = time.perf_counter() - started
    return (
        f"db-seed --scale {sessions:,} (SQLite, all tables)",
        ours,
        f"sqlite3 .import + INSERT…SELECT of the {sessions:,} sessions only",
        ref,
    )


def bench_seed_postgres(sessions: int, work: Path) -> tuple[str, float, str, float] | None:
    import psycopg

    name = f"planctl_bench_{uuid.uuid4().hex[:8]}"
    admin = ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
    try:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as error:
        print(f"skipping PostgreSQL: {error}", file=sys.stderr)
        return None
    url = admin.rsplit("/", 1)[0] + "/" + name
    csv = work / "pg_sesiones.csv"
    try:
        env = _env(url, work)
        subprocess.run([PLANCTL, "-q", "db-upgrade"], env=env, check=True)
        ours = timed([PLANCTL, "-q", "db-seed", "--scale", str(sessions)], env=env)
        subprocess.run(
            ["psql", url, "-qc", f"\\copy sesiones ({SESSION_COLUMNS}) TO '{csv}' CSV"], check=True
        )
        subprocess.run(["psql", url, "-qc", "TRUNCATE sesiones"], check=True)
        ref = timed(["psql", url, "-qc", f"\\copy sesiones ({SESSION_COLUMNS}) FROM '{csv}' CSV"])
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return (
        f"db-seed --scale {sessions:,} (PostgreSQL, all tables)",
        ours,
        f"psql \\copy of the {sessions:,} sessions only",
        ref,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()

    rows = bench_startup(args.runs)
    with tempfile.TemporaryDirectory(prefix="planctl-bench-") as tmp:
        work = Path(tmp)
        rows.append(bench_seed_sqlite(args.sessions, work))
        if not args.no_postgres:
            pg = bench_seed_postgres(args.sessions, work)
            if pg:
                rows.append(pg)

    stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = [
        f"## {stamp} — {platform.node()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "",
        "| planctl | s | reference (same run) | s | ratio |",
        "|---|---:|---|---:|---:|",
    ]
    for ours_name, ours, ref_name, ref in rows:
        lines.append(f"| {ours_name} | {ours:.3f} | {ref_name} | {ref:.3f} | {ours / ref:.2f}× |")
    text = "\n".join(lines) + "\n"
    print(text)
    results = HERE / "RESULTS.md"
    if not results.exists():
        results.write_text("# Benchmark results\n\nAppended by `make bench` (bench/run.py).\n\n")
    with results.open("a") as out:
        out.write(text + "\n")


if __name__ == "__main__":
    main()
