"""Incremental and logical backup benchmarks, each next to a reference in the same run.

    python bench/incremental.py [--sessions 1000000] [--changed 100] [--runs 3] [--no-postgres]

On a database seeded with --sessions sessions, for SQLite and PostgreSQL:

- a full logical backup (``backup --format logical``) vs the engine's own
  logical dump (``sqlite3 DB .dump``, ``pg_dump --format=plain``): time, size,
  rows per second;
- after --changed sessions are updated by another program, a delta
  (``backup --incremental``): time and size as a share of the full logical
  backup (the targets: at most 5 % of the time, 1 % of the size). Timed both
  in-process (``create_backup``, what ``backup watch`` and ``BackupManager``
  pay) and as a ``planctl`` command (plus interpreter start-up);
- the logical restore (``backup restore --no-safety-backup``), rows per second;
- SQLite → PostgreSQL: a logical backup restored with ``--target`` into an
  empty PostgreSQL database at head, vs moving the sessions table alone with
  ``sqlite3 -csv`` piped into ``psql \\copy``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PLANCTL, create_pg_database, drop_pg_database, env_for, record

Row = tuple[str, str, str]  # (what, planctl figure, reference figure)


def run(cmd: list[str], env: dict[str, str] | None = None, **kwargs: Any) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, **kwargs)
    return time.perf_counter() - started


def newest(env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run(
        [PLANCTL, "backup", "list", "--json"], env=env, check=True, capture_output=True, text=True
    ).stdout
    return dict(json.loads(out)[0])


def change_sessions(url: str, count: int, round_: int) -> None:
    from sqlalchemy import text

    from planctl.db.engine import connect
    from planctl.target import Target

    with connect(Target.parse(url)) as connection:
        total = connection.execute(text("SELECT max(id) FROM sesiones")).scalar_one()
        stride = max(total // count - 1, 1)  # spread over the table, a different set each round
        connection.execute(
            text(
                "UPDATE sesiones SET notas = :n WHERE id IN (SELECT id FROM sesiones "
                "WHERE id % :stride = :r ORDER BY id LIMIT :k)"
            ),
            {"n": f"bench round {round_}", "stride": stride, "r": round_ % stride, "k": count},
        )


def full_then_delta(
    url: str, env: dict[str, str], changed: int, round_: int
) -> tuple[float, float, dict[str, Any], dict[str, Any]]:
    """``planctl backup --format logical``, then *changed* sessions updated by another
    program, then ``planctl backup --incremental``: both times and both backups."""
    full_time = run([PLANCTL, "-q", "backup", "--format", "logical"], env=env)
    full = newest(env)
    change_sessions(url, changed, round_)
    delta_time = run([PLANCTL, "-q", "backup", "--incremental"], env=env)
    delta = newest(env)
    assert delta["kind"] == "delta" and sum(delta["row_counts"].values()) == changed, delta
    return full_time, delta_time, full, delta


def bench_engine(
    label: str, url: str, env: dict[str, str], work: Path, changed: int, runs: int
) -> tuple[list[Row], dict[str, Any]]:
    from planctl.backup import create_backup
    from planctl.backup.options import BackupOptions
    from planctl.target import Target

    backups = work / f"backups-{label}"
    env = dict(env, PLANCTL_BACKUP_DIR=str(backups))
    full_t, full_size, cli_delta_t, api_delta_t, delta_size, api_full_t = [], [], [], [], [], []
    rows = 0
    full_name = ""
    for i in range(runs):
        full_time, delta_time, full_backup, delta_backup = full_then_delta(url, env, changed, 2 * i)
        full_t.append(full_time)
        full_name, rows = full_backup["name"], sum(full_backup["row_counts"].values())
        full_size.append(full_backup["size"])
        cli_delta_t.append(delta_time)
        delta_size.append(delta_backup["size"])
        change_sessions(url, changed, 2 * i + 1)
        started = time.perf_counter()
        result = create_backup(Target.parse(url), backups, BackupOptions(incremental=True))
        api_delta_t.append(time.perf_counter() - started)
        assert result.info.kind == "delta", result.full_because
        started = time.perf_counter()
        create_backup(Target.parse(url), backups, BackupOptions(fmt="logical"))
        api_full_t.append(time.perf_counter() - started)
    restore_t = [
        run([PLANCTL, "-q", "backup", "restore", full_name, "--yes", "--no-safety-backup"], env=env)
        for _ in range(runs)
    ]
    if label == "SQLite":
        db = url.removeprefix("sqlite:///")
        ref_t = [_timed_to_file(["sqlite3", db, ".dump"], work / "ref.sql") for _ in range(runs)]
        reference = "sqlite3 DB .dump"
    else:
        ref_t = [
            run(["pg_dump", "--format=plain", "-d", url, "-f", str(work / "ref.sql")])
            for _ in range(runs)
        ]
        reference = "pg_dump --format=plain"
    ref_size = (work / "ref.sql").stat().st_size
    med = statistics.median
    full, api_full = med(full_t), med(api_full_t)
    api_delta, cli_delta = med(api_delta_t), med(cli_delta_t)
    fsize, dsize = med(full_size), med(delta_size)
    out = [
        (
            f"{label}: full logical backup ({rows:,} rows, {fsize / 1e6:.1f} MB gzip)",
            f"{full:.2f} s · {rows / full:,.0f} rows/s",
            f"{reference}: {med(ref_t):.2f} s ({ref_size / 1e6:.0f} MB, uncompressed)",
        ),
        (
            f"{label}: delta of {changed} changed sessions, in-process (watch / BackupManager)",
            f"{api_delta:.3f} s = {100 * api_delta / api_full:.2f} % of the in-process full "
            f"({api_full:.2f} s)",
            "target ≤ 5 %",
        ),
        (
            f"{label}: delta of {changed} changed sessions, `planctl backup --incremental`",
            f"{cli_delta:.3f} s = {100 * cli_delta / full:.2f} % of `backup --format logical`",
            "target ≤ 5 %",
        ),
        (
            f"{label}: delta size",
            f"{dsize / 1e3:.1f} KB = {100 * dsize / fsize:.3f} % of the full logical backup",
            "target ≤ 1 %",
        ),
        (
            f"{label}: logical restore (backup restore --no-safety-backup)",
            f"{med(restore_t):.2f} s · {rows / med(restore_t):,.0f} rows/s",
            "",
        ),
    ]
    return out, {"full_name": full_name, "backups": backups, "rows": rows, "full_time": full}


def _timed_to_file(cmd: list[str], target: Path) -> float:
    started = time.perf_counter()
    with open(target, "wb") as out:
        subprocess.run(cmd, check=True, stdout=out)
    return time.perf_counter() - started


def bench_move(sqlite_env: dict[str, str], info: dict[str, Any], work: Path) -> list[Row]:
    target = create_pg_database()
    try:
        target_env = dict(sqlite_env, DATABASE_URL=target)
        subprocess.run([PLANCTL, "-q", "db-upgrade"], env=target_env, check=True)
        env = dict(sqlite_env, PLANCTL_BACKUP_DIR=str(info["backups"]))
        restore = run(
            [PLANCTL, "-q", "backup", "restore", info["full_name"], "--target", target, "--yes"],
            env=env,
        )
        db = sqlite_env["DATABASE_URL"].removeprefix("sqlite:///")
        ref_url = target.replace("postgresql+psycopg://", "postgresql://")
        subprocess.run(
            ["psql", "-q", "-d", ref_url, "-c", "CREATE TABLE ref_sesiones (LIKE sesiones)"],
            check=True,
        )
        started = time.perf_counter()
        export = subprocess.Popen(
            ["sqlite3", "-csv", db, "SELECT * FROM sesiones"], stdout=subprocess.PIPE
        )
        subprocess.run(
            ["psql", "-q", "-d", ref_url, "-c", "\\copy ref_sesiones FROM STDIN CSV"],
            stdin=export.stdout,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        export.wait()
        reference = time.perf_counter() - started
    finally:
        drop_pg_database(target)
    total = info["full_time"] + restore
    return [
        (
            f"SQLite → PostgreSQL move of the whole database ({info['rows']:,} rows)",
            f"{total:.2f} s (logical backup {info['full_time']:.2f} s + restore --target "
            f"{restore:.2f} s)",
            f"sqlite3 -csv piped into psql \\copy, sesiones only: {reference:.2f} s",
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--changed", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="planctl-bench-") as tmp:
        work = Path(tmp)
        url = f"sqlite:///{work / 'big.db'}"
        env = env_for(url, work)
        subprocess.run([PLANCTL, "-q", "db-upgrade"], env=env, check=True)
        subprocess.run(
            [PLANCTL, "-q", "db-seed", "--scale", str(args.sessions)], env=env, check=True
        )
        found, info = bench_engine("SQLite", url, env, work, args.changed, args.runs)
        rows += found
        if not args.no_postgres:
            rows += bench_move(env, info, work)
            pg = create_pg_database()
            try:
                pg_env = env_for(pg, work)
                subprocess.run([PLANCTL, "-q", "db-upgrade"], env=pg_env, check=True)
                subprocess.run(
                    [PLANCTL, "-q", "db-seed", "--scale", str(args.sessions)],
                    env=pg_env,
                    check=True,
                )
                found, _ = bench_engine("PostgreSQL", pg, pg_env, work, args.changed, args.runs)
                rows += found
            finally:
                drop_pg_database(pg)
    record(
        f"incremental and logical backups, {args.sessions:,} sessions, median of {args.runs}",
        "| what | planctl | reference / target (same run) |",
        [f"| {a} | {b} | {c} |" for a, b, c in rows],
    )


if __name__ == "__main__":
    main()
