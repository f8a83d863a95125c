"""Foundation benchmarks, each next to its reference tool in the same run.

    python bench/run.py [--sessions 1000000] [--runs 15] [--no-postgres]

1. Start-up: wall time of ``planctl --help`` vs ``python -c "import typer"``.
2. Bulk seed: ``planctl db-seed --scale N`` vs loading the very same session
   rows with the engine's own bulk tool (``sqlite3 .import`` of a CSV;
   ``psql \\copy`` on PostgreSQL), both into a freshly migrated database.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PLANCTL, create_pg_database, drop_pg_database, env_for, record

SESSION_COLUMNS = "id,contratacion_id,fecha,hora_inicio,hora_fin,direccion,enlace_vc,notas,estado"


def timed(cmd: list[str], env: dict[str, str] | None = None, input: bytes | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, input=input)
    return time.perf_counter() - started


def median_of(cmd: list[str], runs: int) -> float:
    timed(cmd)  # warm the page cache
    return statistics.median(timed(cmd) for _ in range(runs))


def bench_startup(runs: int) -> tuple[str, float, str, float]:
    ours = median_of([PLANCTL, "--help"], runs)
    ref = median_of([sys.executable, "-c", "import typer"], runs)
    return (f"planctl --help (median of {runs})", ours, 'python -c "import typer"', ref)


def bench_seed_sqlite(sessions: int, work: Path) -> tuple[str, float, str, float]:
    db, ref_db, csv = work / "seed.db", work / "ref.db", work / "sesiones.csv"
    env = env_for(f"sqlite:///{db}", work)
    subprocess.run([PLANCTL, "-q", "db-upgrade"], env=env, check=True)
    ours = timed([PLANCTL, "-q", "db-seed", "--scale", str(sessions)], env=env)
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
    ref = timed(["sqlite3", str(ref_db)], input=script.encode())
    return (
        f"db-seed --scale {sessions:,} (SQLite, all tables)",
        ours,
        f"sqlite3 .import + INSERT…SELECT of the {sessions:,} sessions only",
        ref,
    )


def bench_seed_postgres(sessions: int, work: Path) -> tuple[str, float, str, float]:
    url = create_pg_database()
    csv = work / "pg_sesiones.csv"
    try:
        env = env_for(url, work)
        subprocess.run([PLANCTL, "-q", "db-upgrade"], env=env, check=True)
        ours = timed([PLANCTL, "-q", "db-seed", "--scale", str(sessions)], env=env)
        subprocess.run(
            ["psql", url, "-qc", f"\\copy sesiones ({SESSION_COLUMNS}) TO '{csv}' CSV"], check=True
        )
        subprocess.run(["psql", url, "-qc", "TRUNCATE sesiones"], check=True)
        ref = timed(["psql", url, "-qc", f"\\copy sesiones ({SESSION_COLUMNS}) FROM '{csv}' CSV"])
    finally:
        drop_pg_database(url)
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
    rows = [bench_startup(args.runs)]
    with tempfile.TemporaryDirectory(prefix="planctl-bench-") as tmp:
        rows.append(bench_seed_sqlite(args.sessions, Path(tmp)))
        if not args.no_postgres:
            rows.append(bench_seed_postgres(args.sessions, Path(tmp)))
    record(
        "foundation",
        "| planctl | s | reference (same run) | s | ratio |",
        [f"| {a} | {x:.3f} | {b} | {y:.3f} | {x / y:.2f}× |" for a, x, b, y in rows],
    )


if __name__ == "__main__":
    main()
