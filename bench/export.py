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


def csv_rows(
    url: str, work: Path, label: str, reference: list[str], sessions: int
) -> list[tuple[str, str, str, str]]:
    out = work / "out.csv"
    ours, rss = run_measured(
        [PLANCTL, "-q", "export", "csv", "sesiones", "-o", str(out)], env_for(url, work)
    )
    ref, _ = run_measured(reference, stdout=work / "ref.csv")
    return [
        (
            f"export csv sesiones, {label}, {sessions:,} rows",
            f"{ours:.2f} s",
            f"{' '.join(reference[:2])} … ({ref:.2f} s)",
            f"{ours / ref:.2f}×; peak RSS {rss} MB",
        )
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
