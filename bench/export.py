"""Export benchmarks against the engines' own CSV output, in one run.

    python bench/export.py [--sessions 1000000] [--no-postgres]

At 10,000 sessions (what a trainer has, where start-up dominates):
``planctl export csv sesiones`` beside ``sqlite-utils rows DB sesiones --csv``
and csvkit's ``sql2csv`` (install both in the venv for the bench:
``pip install sqlite-utils csvkit``; not project dependencies) and
``sqlite3``; ``export ical`` and ``export pdf --view list`` against their
targets. At N sessions (default 1,000,000), one process:
``export csv sesiones`` vs ``sqlite3 -header -csv`` and ``psql \\copy … csv
header``, peak RSS, and a writer committing every 5 ms during the SQLite
export (WAL). Appends a table to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PLANCTL, create_pg_database, drop_pg_database, env_for, record


def run_measured(
    cmd: list[str], env: dict[str, str] | None = None, stdout: Path | None = None
) -> tuple[float, int]:
    """Wall time and peak RSS (MB) of one process."""
    with open(stdout or os.devnull, "wb") as sink:
        started = time.perf_counter()
        process = subprocess.Popen(cmd, env=env, stdout=sink)
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}")
    process.returncode = 0
    return elapsed, usage.ru_maxrss // 1024


def seed(url: str, work: Path, sessions: int) -> None:
    env = env_for(url, work)
    subprocess.run([PLANCTL, "-q", "db-upgrade"], env=env, check=True)
    subprocess.run(
        [PLANCTL, "-q", "db-seed", "--force", "--scale", str(sessions)], env=env, check=True
    )


def planctl_sql(url: str, lines: bool) -> str:
    """The SELECT planctl runs for ``export csv sesiones`` (SQLite: its line query)."""
    from planctl.export.csv_common import CsvOptions

    if url.startswith("sqlite"):
        import sqlite3

        from planctl.export import csv_sqlite

        connection = sqlite3.connect(url.removeprefix("sqlite:///"))
        kinds = csv_sqlite.column_kinds(connection, "sesiones")
        connection.close()
        sql, _ = csv_sqlite.lines_sql("sesiones", kinds, list(kinds), CsvOptions())
        return sql
    from sqlalchemy import create_engine

    from planctl.db.schema import metadata
    from planctl.export import csv_postgres

    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    table = metadata.tables["sesiones"]
    query = csv_postgres.build_select(table, list(table.columns), CsvOptions())
    return str(query.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))


def tool(name: str) -> str | None:
    """A reference tool from this venv (pip install sqlite-utils csvkit) or the PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def small_exports(work: Path) -> list[tuple[str, str, str, str]]:
    """10,000 sessions, what a trainer has: start-up dominates; sqlite-utils and csvkit beside."""
    db = work / "ten.db"
    url = f"sqlite:///{db}"
    seed(url, work, 10_000)
    env = env_for(url, work)
    commands: list[tuple[str, list[str], dict[str, str] | None]] = [
        ("planctl export csv sesiones", [PLANCTL, "-q", "export", "csv", "sesiones"], env)
    ]
    utils, sql2csv = tool("sqlite-utils"), tool("sql2csv")
    if utils:
        commands.append(
            (
                "sqlite-utils rows DB sesiones --csv",
                [utils, "rows", str(db), "sesiones", "--csv"],
                None,
            )
        )
    if sql2csv:
        commands.append(
            (
                "csvkit sql2csv --query 'select * from sesiones'",
                [sql2csv, "--db", url, "--query", "select * from sesiones"],
                None,
            )
        )
    commands.append(
        (
            "sqlite3 -header -csv",
            ["sqlite3", "-header", "-csv", str(db), "select * from sesiones"],
            None,
        )
    )
    timed = median_times([(cmd, e) for _, cmd, e in commands], work / "small.csv", runs=7)
    ours = timed[0][0]
    rows = []
    for (label, _, _), (seconds, rss) in zip(commands, timed, strict=True):
        rows.append(
            (
                f"{label}, 10,000 sessions (median of 7)",
                f"{seconds:.3f} s",
                "planctl export csv sesiones"
                if label.startswith("planctl")
                else f"planctl: {ours:.3f} s",
                f"planctl / this = **{ours / seconds:.2f}×**; peak RSS {rss} MB",
            )
        )
    for name, cmd, target in (
        (
            "export ical, 10,000 sessions (target ≤ 1.0 s)",
            ["export", "ical", "--include-cancelled", "-o", str(work / "x.ics")],
            1.0,
        ),
        (
            "export pdf --view list, 10,000 sessions (target ≤ 2.0 s)",
            [
                "export",
                "pdf",
                "--since",
                "2026-01-01",
                "--until",
                "2028-12-31",
                "-o",
                str(work / "x.pdf"),
            ],
            2.0,
        ),
    ):
        [(seconds, rss)] = median_times([([PLANCTL, "-q", *cmd], env)], work / "null", runs=3)
        rows.append(
            (
                name + " (median of 3)",
                f"{seconds:.2f} s",
                f"target {target:.1f} s",
                f"{seconds / target:.2f}× the target; peak RSS {rss} MB",
            )
        )
    return rows


WRITER = """
import sqlite3, sys, time, pathlib
con = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
stop = pathlib.Path(sys.argv[2])
worst, commits, failures = 0.0, 0, 0
while not stop.exists():
    started = time.monotonic()
    try:
        con.execute("BEGIN IMMEDIATE")
        con.execute("UPDATE sesiones SET notas = ? WHERE id = 1", (f"commit {commits}",))
        con.execute("COMMIT")
        commits += 1
    except sqlite3.Error:
        failures += 1
    worst = max(worst, time.monotonic() - started)
    time.sleep(0.005)
print(commits, failures, worst)
"""


def writer_during_export(db: Path, work: Path, sessions: int) -> tuple[str, str, str, str]:
    """The planner app commits every 5 ms while planctl exports the whole table (WAL)."""
    stop = work / "stop-writer"
    stop.unlink(missing_ok=True)
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db), str(stop)], stdout=subprocess.PIPE, text=True
    )
    time.sleep(0.3)
    seconds, _ = run_measured(
        [PLANCTL, "-q", "export", "csv", "sesiones", "-o", str(work / "w.csv")],
        env_for(f"sqlite:///{db}", work),
    )
    stop.touch()
    commits, failures, worst = writer.communicate(timeout=60)[0].split()
    return (
        f"app writer committing every 5 ms during export csv sesiones -o FILE, "
        f"{sessions:,} rows (WAL)",
        f"{seconds:.2f} s",
        "target: no failure, no wait > 1 s",
        f"{commits} commits, {failures} failures, longest commit {float(worst) * 1000:.0f} ms",
    )


def median_times(
    commands: list[tuple[list[str], dict[str, str] | None]], stdout: Path, runs: int = 3
) -> list[tuple[float, int]]:
    """Each command's median wall time and its peak RSS, the commands alternating."""
    times: list[list[float]] = [[] for _ in commands]
    peaks = [0] * len(commands)
    for _ in range(runs):
        for i, (cmd, env) in enumerate(commands):
            seconds, rss = run_measured(cmd, env, stdout)
            times[i].append(seconds)
            peaks[i] = max(peaks[i], rss)
    return [(sorted(t)[len(t) // 2], peak) for t, peak in zip(times, peaks, strict=True)]


def csv_rows(
    url: str, work: Path, label: str, reference: list[str], sessions: int
) -> list[tuple[str, str, str, str]]:
    """``export csv sesiones`` to stdout (as the reference writes), and with -o FILE."""
    env = env_for(url, work)
    out = work / "out.csv"
    if label == "SQLite":  # the same lines rendered by SQLite in one process, no Python
        floor = ["sqlite3", "-list", "-newline", "", reference[3], planctl_sql(url, True)]
        floor_env = None
        floor_what = "sqlite3 running planctl's line SELECT (no Python)"
    else:
        floor = ["psql", url, "-c", f"\\copy ({planctl_sql(url, False)}) to stdout csv header"]
        floor_env = {**os.environ, "PGTZ": "UTC", "PGDATESTYLE": "ISO, YMD"}
        floor_what = "psql \\copy of planctl's SELECT (no Python)"
    (ours, rss), (to_file, _), (ref, _), (low, _) = median_times(
        [
            ([PLANCTL, "-q", "export", "csv", "sesiones"], env),
            ([PLANCTL, "-q", "export", "csv", "sesiones", "-o", str(out)], env),
            (reference, None),
            (floor, floor_env),
        ],
        work / "stdout.csv",
    )
    tool = " ".join(reference[:2])
    return [
        (
            f"export csv sesiones > file, {label}, {sessions:,} rows (median of 3)",
            f"{ours:.2f} s",
            f"{tool} … > file ({ref:.2f} s)",
            f"**{ours / ref:.2f}×**; peak RSS {rss} MB",
        ),
        (
            f"export csv sesiones -o FILE (atomic, fsynced), {label}, {sessions:,} rows",
            f"{to_file:.2f} s",
            f"{tool} … > file ({ref:.2f} s)",
            f"{to_file / ref:.2f}×",
        ),
        (
            f"{floor_what}, {label}, {sessions:,} rows",
            f"{low:.2f} s",
            f"{tool} … > file ({ref:.2f} s)",
            f"{low / ref:.2f}×",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    rows: list[tuple[str, str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="planctl-bench-") as tmp:
        work = Path(tmp)
        rows += small_exports(work)
        db = work / f"s{args.sessions}.db"
        url = f"sqlite:///{db}"
        seed(url, work, args.sessions)
        rows += csv_rows(
            url,
            work,
            "SQLite",
            ["sqlite3", "-header", "-csv", str(db), "select * from sesiones"],
            args.sessions,
        )
        rows.append(writer_during_export(db, work, args.sessions))
        if not args.no_postgres:
            pg_url = create_pg_database()
            try:
                seed(pg_url, work, args.sessions)
                rows += csv_rows(
                    pg_url,
                    work,
                    "PostgreSQL",
                    ["psql", pg_url, "-c", "\\copy sesiones to stdout csv header"],
                    args.sessions,
                )
            finally:
                drop_pg_database(pg_url)
    record(
        f"exports — load average {os.getloadavg()[0]:.1f} at the end",
        "| planctl | time | reference (same run) | ratio / memory |",
        [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows],
    )


if __name__ == "__main__":
    main()
