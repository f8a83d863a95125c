"""Export benchmarks against the engines' own CSV output, in one run.

    python bench/export.py [--sessions 1000000] [--no-postgres]

Builds a database of N sessions (db-seed --scale) on SQLite and PostgreSQL and
prints: ``planctl export csv sesiones`` vs ``sqlite3 -header -csv`` and vs
``psql \\copy … csv header`` (time ratio), planctl's peak RSS at 100,000 and
N rows, and the time of ``export ical`` and ``export pdf --view list`` for
10,000 sessions. Appends a table to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
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
    """The SELECT planctl runs for ``export csv sesiones`` (*lines*: the SQLite line query)."""
    from sqlalchemy import create_engine, select

    from planctl.export import csv as csv_export
    from planctl.export import csv_sqlite

    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    table = csv_export.resolve_table("sesiones")
    columns = list(table.columns)
    dialect = engine.dialect.name
    query = csv_export.build_select(table, columns, dialect, csv_export.CsvOptions())
    if lines:
        cells = [csv_export.cell_expression(c, dialect, False) for c in columns]
        line = csv_sqlite.line_expression(columns, cells, ",")
        query = select(line).select_from(table).order_by(table.c.id)
    return str(query.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))


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
        for sessions in sorted({100_000, args.sessions}):
            db = work / f"s{sessions}.db"
            url = f"sqlite:///{db}"
            seed(url, work, sessions)
            rows += csv_rows(
                url,
                work,
                "SQLite",
                ["sqlite3", "-header", "-csv", str(db), "select * from sesiones"],
                sessions,
            )
            if not args.no_postgres:
                pg_url = create_pg_database()
                try:
                    seed(pg_url, work, sessions)
                    rows += csv_rows(
                        pg_url,
                        work,
                        "PostgreSQL",
                        ["psql", pg_url, "-c", "\\copy sesiones to stdout csv header"],
                        sessions,
                    )
                finally:
                    drop_pg_database(pg_url)
        url = f"sqlite:///{work / 'ten.db'}"
        seed(url, work, 10_000)
        env = env_for(url, work)
        for name, cmd in (
            (
                "export ical, 10,000 sessions (SQLite)",
                ["export", "ical", "--include-cancelled", "-o", str(work / "x.ics")],
            ),
            (
                "export pdf --view list, 10,000 sessions",
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
            ),
            (
                "export pdf --view month, 10,000 sessions",
                [
                    "export",
                    "pdf",
                    "--view",
                    "month",
                    "--since",
                    "2026-09-01",
                    "--until",
                    "2027-06-30",
                    "-o",
                    str(work / "m.pdf"),
                ],
            ),
        ):
            seconds, rss = run_measured([PLANCTL, "-q", *cmd], env)
            rows.append((name, f"{seconds:.2f} s", "—", f"peak RSS {rss} MB"))
    record(
        "exports",
        "| planctl | time | reference (same run) | ratio / memory |",
        [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows],
    )


if __name__ == "__main__":
    main()
