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
from common import (
    PLANCTL,
    create_pg_database,
    drop_pg_database,
    env_for,
    free_port,
    record,
    serve_s3,
    stop_server,
)


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


def bench_issue19(sessions: int, runs: int, work: Path) -> list[tuple[str, float, str, float]]:
    """Issue 19's targets: encryption overhead per --compress, --keep 2 against sqlite3
    + zstd + sha256sum, push against rclone copyto, PostgreSQL against pg_dump + sha256sum."""
    db = work / "big.db"
    env = env_for(f"sqlite:///{db}", work)
    seed(env, sessions)
    sealed_env = {**env, "PLANCTL_BACKUP_RECIPIENTS": age_recipient(work)}
    rows: list[tuple[str, float, str, float]] = []
    for method in ("zstd", "gzip", "none"):
        plain = [timed([PLANCTL, "-q", "backup", "--compress", method, "--keep", "1"], env=env)]
        sealed = [
            timed([PLANCTL, "-q", "backup", "--compress", method, "--keep", "1"], env=sealed_env)
            for _ in range(runs)
        ]
        plain += [
            timed([PLANCTL, "-q", "backup", "--compress", method, "--keep", "1"], env=env)
            for _ in range(runs - 1)
        ]
        rows.append(
            (
                f"backup --compress {method} --keep 1, age-encrypted (streamed)",
                statistics.median(sealed),
                "the same, not encrypted",
                statistics.median(plain),
            )
        )
    target = work / "ref.db"
    reference = (
        f'sqlite3 "{db}" ".backup {target}" && zstd -3 -q -f "{target}" -o "{target}.zst" '
        f'&& sha256sum "{target}.zst"'
    )
    ref, ours = [], []
    for _ in range(runs):
        ref.append(timed(["sh", "-c", reference]))
        ours.append(timed([PLANCTL, "-q", "backup", "--keep", "2"], env=env))
    rows.append(
        (
            f"backup --keep 2 (zstd, quick_check, rotation), "
            f"SQLite {db.stat().st_size / 1e6:.0f} MB",
            statistics.median(ours),
            "sqlite3 .backup + zstd -3 + sha256sum",
            statistics.median(ref),
        )
    )
    rows.append(bench_push(env, work, runs))
    rows += bench_postgres_issue19(sessions, runs, work)
    return rows


def bench_push(env: dict[str, str], work: Path, runs: int) -> tuple[str, float, str, float]:
    """``backup push`` of the newest backup vs ``rclone copyto`` of its data file, both to
    one loopback ``rclone serve s3``."""
    import shutil

    rclone = shutil.which("rclone") or str(Path(sys.executable).parent / "rclone")
    key, secret = "AKIAPLANCTLBENCH0001", "planctl-bench-secret"
    root = work / "s3root"
    (root / "bench").mkdir(parents=True)
    port = free_port()
    server = serve_s3(rclone, root, port, key, secret)
    try:
        aws = {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": key,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        backups = Path(env["PLANCTL_BACKUP_DIR"])
        subprocess.run([PLANCTL, "-q", "backup", "--keep", "1"], env=env, check=True)
        data = max(
            (p for p in backups.iterdir() if p.is_file() and not p.name.startswith(".")),
            key=lambda p: p.stat().st_size,
        )
        ours, ref = [], []
        rclone_env = {
            **os.environ,
            "RCLONE_CONFIG_BENCH_TYPE": "s3",
            "RCLONE_CONFIG_BENCH_PROVIDER": "Other",
            "RCLONE_CONFIG_BENCH_ENDPOINT": aws["AWS_ENDPOINT_URL"],
            "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": key,
            "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": secret,
        }
        for i in range(runs):
            pushed = {**env, **aws, "PLANCTL_BACKUP_REMOTE": f"s3://bench/run{i}"}
            ours.append(timed([PLANCTL, "-q", "backup", "push"], env=pushed))
            copy = [rclone, "--config", "/dev/null", "copyto", "-I", str(data), f"bench:bench/r{i}"]
            ref.append(timed(copy, env=rclone_env))
    finally:
        stop_server(server)
    return (
        f"backup push ({data.stat().st_size / 1e6:.0f} MB, checked upload)",
        statistics.median(ours),
        "rclone copyto -I, same server",
        statistics.median(ref),
    )


def bench_postgres_issue19(
    sessions: int, runs: int, work: Path
) -> list[tuple[str, float, str, float]]:
    url = create_pg_database()
    env = env_for(url, work / "pg")
    try:
        seed(env, sessions)
        dump = work / "ref.dump"
        reference = f'pg_dump -d "{url}" -Fc -f "{dump}" && sha256sum "{dump}"'
        ref, ours = [], []
        for _ in range(runs):
            ref.append(timed(["sh", "-c", reference]))
            ours.append(timed([PLANCTL, "-q", "backup", "--keep", "1"], env=env))
    finally:
        drop_pg_database(url)
    return [
        (
            "PostgreSQL backup --keep 1 (pg_dump -Fc, pg_restore --list, sha256)",
            statistics.median(ours),
            "pg_dump -Fc + sha256sum",
            statistics.median(ref),
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=3_500_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument(
        "--issue19", action="store_true", help="only issue 19's targets (db-seed --scale N)"
    )
    args = parser.parse_args()
    if args.issue19:
        with tempfile.TemporaryDirectory(prefix="planctl-bench-", dir="/var/tmp") as tmp:
            found = bench_issue19(args.sessions, args.runs, Path(tmp))
        record(
            f"issue 19: streamed encryption, --keep 2, push, PostgreSQL; {args.sessions:,} "
            f"sessions, median of {args.runs} (loaded machine: six helpers on 2 cores)",
            "| planctl | s | reference (same run) | s | ratio |",
            [f"| {a} | {x:.2f} | {b} | {y:.2f} | {x / y:.2f}× |" for a, x, b, y in found],
        )
        return
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
