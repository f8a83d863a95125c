"""Foundation benchmarks, each next to its reference tool in the same run.

    python bench/run.py [--sessions 1000000] [--runs 15] [--no-postgres] [--no-seed]
                        [--incremental]

1. Start-up (issue 14): wall time, median of --runs, of ``planctl --help``,
   ``--version``, ``db-info``, ``backup`` and ``export csv sesiones`` on a
   10,000-session SQLite database, next to ``python -c "import typer"`` and
   the peers ``sqlite-utils rows DB sesiones --csv`` and csvkit's ``sql2csv``
   (``pip install -e .[bench]``; a missing peer is reported, not timed). The
   commands take turns in each round, so a change of load on this shared
   machine reaches all of them alike.
2. Bulk seed: ``planctl db-seed --scale N`` vs loading the very same session
   rows with the engine's own bulk tool (``sqlite3 .import`` of a CSV;
   ``psql \\copy`` on PostgreSQL), both into a freshly migrated database.
3. With --incremental (minutes): on --sessions sessions, ``backup
   --incremental`` of 100 changed sessions as a command, as a share of
   ``backup --format logical`` (bench/incremental.py's measurement).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PLANCTL, create_pg_database, drop_pg_database, env_for, record

BIN = Path(sys.executable).parent
STARTUP_SESSIONS = 10_000
#: Issue 14's targets: a ratio to a reference, or seconds.
HELP_RATIO, DB_INFO_S, BACKUP_S, DELTA_SHARE = 1.3, 0.4, 0.4, 0.05

SESSION_COLUMNS = "id,contratacion_id,fecha,hora_inicio,hora_fin,direccion,enlace_vc,notas,estado"


def timed(cmd: list[str], env: dict[str, str] | None = None, input: bytes | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, input=input)
    return time.perf_counter() - started


def medians_taking_turns(
    commands: dict[str, list[str]], env: dict[str, str], runs: int
) -> dict[str, float]:
    """Median wall time of each command; each round runs every command once, in turn."""
    for cmd in commands.values():
        timed(cmd, env)  # warm the page cache and the bytecode caches
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, cmd in commands.items():
            samples[name].append(timed(cmd, env))
    return {name: statistics.median(times) for name, times in samples.items()}


def peer(name: str) -> str | None:
    """A peer tool from this interpreter's environment, else from PATH."""
    found = BIN / name
    return str(found) if found.exists() else shutil.which(name)


def bench_startup(runs: int, work: Path) -> list[str]:
    """Table rows: each command's start-up next to its references, with issue 14's targets."""
    db = work / "startup.db"
    env = env_for(f"sqlite:///{db}", work)
    subprocess.run([PLANCTL, "-q", "db-upgrade"], env=env, check=True)
    subprocess.run(
        [PLANCTL, "-q", "db-seed", "--scale", str(STARTUP_SESSIONS)], env=env, check=True
    )
    commands = {
        'python -c "import typer"': [sys.executable, "-c", "import typer"],
        'python -c "import sqlalchemy"': [sys.executable, "-c", "import sqlalchemy"],
        "planctl --help": [PLANCTL, "--help"],
        "planctl --version": [PLANCTL, "--version"],
        "planctl db-info": [PLANCTL, "db-info"],
        "planctl backup": [PLANCTL, "-q", "backup"],
        "planctl export csv sesiones": [PLANCTL, "export", "csv", "sesiones"],
    }
    missing = []
    sqlite_utils, sql2csv = peer("sqlite-utils"), peer("sql2csv")
    if sqlite_utils:
        commands["sqlite-utils rows DB sesiones --csv"] = [
            sqlite_utils,
            "rows",
            str(db),
            "sesiones",
            "--csv",
        ]
    else:
        missing.append("sqlite-utils")
    if sql2csv:
        query = "SELECT * FROM sesiones"
        commands["sql2csv (csvkit)"] = [sql2csv, "--db", f"sqlite:///{db}", "--query", query]
    else:
        missing.append("csvkit (sql2csv)")
    load_before = os.getloadavg()
    t = medians_taking_turns(commands, env, runs)
    load_after = os.getloadavg()
    typer_s = t['python -c "import typer"']

    def row(name: str, ref: str, target: str, met: bool | None) -> str:
        verdict = "—" if met is None else ("**met**" if met else "**not met**")
        ratio = f"{t[name] / t[ref]:.2f}×" if ref in t else "—"
        ref_s = f"{t[ref]:.3f}" if ref in t else "not installed"
        return f"| {name} | {t[name]:.3f} | {ref} | {ref_s} | {ratio} | {target} | {verdict} |"

    rows = [
        row(
            "planctl --help",
            'python -c "import typer"',
            f"≤ {HELP_RATIO}× typer",
            t["planctl --help"] <= HELP_RATIO * typer_s,
        ),
        row("planctl --version", 'python -c "import typer"', "", None),
        row(
            "planctl db-info",
            'python -c "import sqlalchemy"',
            f"≤ {DB_INFO_S} s",
            t["planctl db-info"] <= DB_INFO_S,
        ),
        row(
            "planctl backup",
            'python -c "import sqlalchemy"',
            f"≤ {BACKUP_S} s",
            t["planctl backup"] <= BACKUP_S,
        ),
    ]
    export = "planctl export csv sesiones"
    peer_s = t.get("sqlite-utils rows DB sesiones --csv")
    rows.append(
        row(
            export,
            "sqlite-utils rows DB sesiones --csv",
            "faster than sqlite-utils",
            None if peer_s is None else t[export] < peer_s,
        )
    )
    rows.append(row(export, "sql2csv (csvkit)", "", None))
    for name in (
        'python -c "import typer"',
        'python -c "import sqlalchemy"',
        *[n for n in commands if not n.startswith(("planctl", "python"))],
    ):
        rows.append(f"| {name} | {t[name]:.3f} | (reference) | | | | |")
    note = f"; not installed: {', '.join(missing)} (pip install -e .[bench])" if missing else ""
    rows.append(
        f"| load average (1 min) before / after: {load_before[0]:.2f} / {load_after[0]:.2f}"
        f"{note} | | | | | | |"
    )
    return rows


def bench_incremental(sessions: int, runs: int, work: Path) -> list[str]:
    """``backup --incremental`` of 100 changed sessions, as a share of ``--format logical``."""
    from incremental import full_then_delta

    url = f"sqlite:///{work / 'incremental.db'}"
    env = env_for(url, work)
    subprocess.run([PLANCTL, "-q", "db-upgrade"], env=env, check=True)
    subprocess.run([PLANCTL, "-q", "db-seed", "--scale", str(sessions)], env=env, check=True)
    load_before = os.getloadavg()
    timings = [full_then_delta(url, env, 100, i)[:2] for i in range(runs)]
    load_after = os.getloadavg()
    full = statistics.median(f for f, _ in timings)
    delta = statistics.median(d for _, d in timings)
    share = delta / full
    verdict = "**met**" if share <= DELTA_SHARE else "**not met**"
    return [
        f"| planctl -q backup --incremental, 100 changed of {sessions:,} sessions (SQLite) "
        f"| {delta:.3f} | planctl -q backup --format logical | {full:.3f} | {100 * share:.1f} % "
        f"| ≤ {100 * DELTA_SHARE:.0f} % | {verdict} |",
        f"| load average (1 min) before / after: {load_before[0]:.2f} / {load_after[0]:.2f}"
        " | | | | | | |",
    ]


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
    parser.add_argument("--no-seed", action="store_true", help="skip the bulk seed benchmark")
    parser.add_argument(
        "--incremental", action="store_true", help="also the --sessions incremental ratio"
    )
    parser.add_argument("--incremental-runs", type=int, default=3)
    args = parser.parse_args()
    header = "| command | median s | reference (same run) | s | ratio | target | verdict |"
    with tempfile.TemporaryDirectory(prefix="planctl-bench-") as tmp:
        record(
            f"start-up (issue 14), {STARTUP_SESSIONS:,} sessions (SQLite), median of {args.runs}",
            header,
            bench_startup(args.runs, Path(tmp)),
        )
        if args.incremental:
            record(
                f"incremental backup as a command (issue 14), {args.sessions:,} sessions, "
                f"median of {args.incremental_runs}",
                header,
                bench_incremental(args.sessions, args.incremental_runs, Path(tmp)),
            )
        if args.no_seed:
            return
        rows = [bench_seed_sqlite(args.sessions, Path(tmp))]
        if not args.no_postgres:
            rows.append(bench_seed_postgres(args.sessions, Path(tmp)))
    record(
        "foundation",
        "| planctl | s | reference (same run) | s | ratio |",
        [f"| {a} | {x:.3f} | {b} | {y:.3f} | {x / y:.2f}× |" for a, x, b, y in rows],
    )


if __name__ == "__main__":
    main()
