"""Export benchmarks against the engines' own CSV output, in one run (issue 22's targets).

    python bench/export.py [--sessions 1000000] [--no-postgres]

Every figure is CPU seconds (user + system, from ``wait4``) and wall seconds
of one process, and its peak RSS. At 10,000 sessions: ``export csv sesiones``
beside ``sqlite3 -header -csv``, ``sqlite-utils rows DB sesiones --csv`` and
csvkit's ``sql2csv`` (``pip install sqlite-utils csvkit`` in the venv; not
project dependencies) and, on PostgreSQL, ``psql \\copy … csv header``;
``export ical`` (target 0.5 s CPU), ``export pdf --view list`` (2.0 s) and
``--view month`` (1.0 s). At N sessions (default 1,000,000): the same CSV
references (sqlite-utils and csvkit once each), the targets being 2.0× the CPU
of ``sqlite3 -csv`` on SQLite and 1.3× the wall time of ``psql \\copy`` on
PostgreSQL; and a writer committing every 5 ms during the SQLite export
(WAL). Appends a table to bench/RESULTS.md.
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

Measured = tuple[float, float, int]  # wall s, CPU s, peak RSS MB


def run_measured(
    cmd: list[str], env: dict[str, str] | None = None, stdout: Path | None = None
) -> Measured:
    """Wall time, CPU time (user + system) and peak RSS (MB) of one process."""
    with open(stdout or os.devnull, "wb") as sink:
        started = time.perf_counter()
        # close_fds=False lets subprocess use posix_spawn: a forked copy of this Python
        # would count in the child's peak RSS (35 MB for sqlite3, which needs 12).
        process = subprocess.Popen(cmd, env=env, stdout=sink, close_fds=False)
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}")
    process.returncode = 0
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss // 1024


def seed(url: str, work: Path, sessions: int) -> None:
    env = env_for(url, work)
    subprocess.run([PLANCTL, "-q", "db-upgrade"], env=env, check=True)
    subprocess.run(
        [PLANCTL, "-q", "db-seed", "--force", "--scale", str(sessions)], env=env, check=True
    )


def tool(name: str) -> str | None:
    """A reference tool from this venv (pip install sqlite-utils csvkit) or the PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


Row = tuple[str, str, str, str]
Command = tuple[str, list[str], "dict[str, str] | None"]


def csv_references(
    db: Path, url: str, pg_url: str | None, env_pg: dict[str, str] | None, sessions: int, runs: int
) -> list[Row]:
    """``export csv sesiones`` beside every reference, the commands alternating."""
    work = db.parent
    env = env_for(url, work)
    commands: list[Command] = [
        ("planctl export csv sesiones (SQLite)", [PLANCTL, "-q", "export", "csv", "sesiones"], env),
        (
            "sqlite3 -header -csv",
            ["sqlite3", "-header", "-csv", str(db), "select * from sesiones"],
            None,
        ),
    ]
    once: list[Command] = []
    utils, sql2csv = tool("sqlite-utils"), tool("sql2csv")
    if utils:
        once.append(
            (
                "sqlite-utils rows DB sesiones --csv",
                [utils, "rows", str(db), "sesiones", "--csv"],
                None,
            )
        )
    if sql2csv:
        once.append(
            (
                "csvkit sql2csv --query 'select * from sesiones'",
                [sql2csv, "--db", url, "--query", "select * from sesiones"],
                None,
            )
        )
    if pg_url is not None:
        commands.append(
            (
                "planctl export csv sesiones (PostgreSQL)",
                [PLANCTL, "-q", "export", "csv", "sesiones"],
                env_pg,
            )
        )
        commands.append(
            (
                "psql \\copy sesiones to stdout csv header",
                ["psql", pg_url, "-c", "\\copy sesiones to stdout csv header"],
                None,
            )
        )
    timed = median_times([(cmd, e) for _, cmd, e in commands], work / "out.csv", runs=runs)
    timed += median_times([(cmd, e) for _, cmd, e in once], work / "out.csv", runs=1)
    results = dict(zip([label for label, _, _ in commands + once], timed, strict=True))
    ours_sqlite = results["planctl export csv sesiones (SQLite)"]
    rows: list[Row] = []
    for label, (wall, cpu, rss) in results.items():
        if label.startswith("planctl") and "PostgreSQL" in label:
            ref = results["psql \\copy sesiones to stdout csv header"]
            verdict = (
                f"**{wall / ref[0]:.2f}× psql's wall** (target ≤ 1.3×), {cpu / ref[1]:.1f}× its CPU"
            )
        elif label.startswith("planctl"):
            ref = results["sqlite3 -header -csv"]
            verdict = (
                f"**{cpu / ref[1]:.2f}× sqlite3's CPU** (target ≤ 2.0×), "
                f"{wall / ref[0]:.2f}× its wall"
            )
        elif label.startswith("psql"):
            verdict = "reference (PostgreSQL)"
        else:
            verdict = f"planctl (SQLite) / this: {ours_sqlite[1] / cpu:.2f}× CPU"
        n = runs if any(label == c[0] for c in commands) else 1
        rows.append(
            (
                f"{label}, {sessions:,} sessions ({'median of ' + str(n) if n > 1 else 'one run'})",
                f"{cpu:.2f} s CPU, {wall:.2f} s wall",
                verdict,
                f"peak RSS {rss} MB",
            )
        )
    return rows


def calendar_exports(url: str, work: Path) -> list[Row]:
    """``export ical`` and ``export pdf`` (list and month) at 10,000 sessions vs their targets."""
    env = env_for(url, work)
    period = ["--since", "2026-01-01", "--until", "2028-12-31"]
    jobs = [
        (
            "export ical --include-cancelled",
            ["export", "ical", "--include-cancelled", "-o", str(work / "x.ics")],
            0.5,
        ),
        ("export pdf --view list", ["export", "pdf", *period, "-o", str(work / "x.pdf")], 2.0),
        (
            "export pdf --view month",
            ["export", "pdf", "--view", "month", *period, "-o", str(work / "m.pdf")],
            1.0,
        ),
    ]
    timed = median_times([([PLANCTL, "-q", *cmd], env) for _, cmd, _ in jobs], work / "null")
    rows: list[Row] = []
    for (label, _, target), (wall, cpu, rss) in zip(jobs, timed, strict=True):
        rows.append(
            (
                f"{label}, 10,000 sessions (median of 3)",
                f"{cpu:.2f} s CPU, {wall:.2f} s wall",
                f"target ≤ {target:.1f} s CPU",
                f"**{cpu / target:.2f}× the target**; peak RSS {rss} MB",
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
    seconds, _, _ = run_measured(
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
) -> list[Measured]:
    """Each command's median wall and CPU time and its peak RSS, the commands alternating."""
    walls: list[list[float]] = [[] for _ in commands]
    cpus: list[list[float]] = [[] for _ in commands]
    peaks = [0] * len(commands)
    for _ in range(runs):
        for i, (cmd, env) in enumerate(commands):
            wall, cpu, rss = run_measured(cmd, env, stdout)
            walls[i].append(wall)
            cpus[i].append(cpu)
            peaks[i] = max(peaks[i], rss)
    return [
        (sorted(w)[len(w) // 2], sorted(c)[len(c) // 2], peak)
        for w, c, peak in zip(walls, cpus, peaks, strict=True)
    ]


def one_size(work: Path, sessions: int, postgres: bool, runs: int) -> list[Row]:
    db = work / f"s{sessions}.db"
    url = f"sqlite:///{db}"
    seed(url, work, sessions)
    rows: list[Row] = []
    pg_url = create_pg_database() if postgres else None
    try:
        if pg_url is not None:
            seed(pg_url, work, sessions)
        env_pg = env_for(pg_url, work) if pg_url else None
        rows += csv_references(db, url, pg_url, env_pg, sessions, runs)
        if sessions == 10_000:
            rows += calendar_exports(url, work)
        else:
            rows.append(writer_during_export(db, work, sessions))
    finally:
        if pg_url is not None:
            drop_pg_database(pg_url)
    db.unlink()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="planctl-bench-") as tmp:
        work = Path(tmp)
        rows += one_size(work, 10_000, not args.no_postgres, runs=5)
        rows += one_size(work, args.sessions, not args.no_postgres, runs=3)
    record(
        f"exports, issue 22 — load average {load:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end (machine shared with other helpers)",
        "| planctl or reference | CPU / wall | against (same run) | memory |",
        [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows],
    )


if __name__ == "__main__":
    main()
