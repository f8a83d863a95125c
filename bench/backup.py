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
import functools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
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


@dataclass
class Pair:
    """One issue-19 target: planctl's command against the reference's, run in turns."""

    name: str
    ours: Callable[[int], list[str]]
    reference: Callable[[int], list[str]]
    reference_name: str
    target: float
    env: dict[str, str]
    ref_env: dict[str, str] | None = None
    walls: tuple[list[float], list[float]] = field(default_factory=lambda: ([], []))
    cpus: tuple[list[float], list[float]] = field(default_factory=lambda: ([], []))


def same(argv: list[str], _round: int) -> list[str]:
    """A command that is the same in every round."""
    return argv


def measured(cmd: list[str], env: dict[str, str] | None) -> tuple[float, float]:
    """(wall, CPU) seconds of one command; CPU is user + sys of the children it waited
    for (``getrusage(RUSAGE_CHILDREN)``), so a server's own work is not counted."""
    import resource

    os.sync()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def run_in_turns(pairs: list[Pair], rounds: int) -> None:
    """Each round runs every pair, reference and planctl back to back (the order
    alternating between rounds), so both meet the same load."""
    for round_ in range(rounds):
        for pair in pairs:
            sides = [(1, pair.reference, pair.ref_env), (0, pair.ours, pair.env)]
            for side, command, env in sides if round_ % 2 == 0 else reversed(sides):
                wall, cpu = measured(command(round_), env)
                pair.walls[side].append(wall)
                pair.cpus[side].append(cpu)


def load() -> str:
    """``uptime``'s line: the machine's load while the rounds ran."""
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def bench_issue19(sessions: int, runs: int, work: Path, postgres: bool) -> list[str]:
    """Issue 19's targets: encryption overhead per --compress, --keep 2 against sqlite3
    + zstd + sha256sum, push against rclone copyto, PostgreSQL against pg_dump +
    sha256sum. Medians of wall and CPU seconds over *runs* interleaved rounds."""
    import shutil

    db = work / "big.db"
    env = env_for(f"sqlite:///{db}", work)
    seed(env, sessions)
    sealed_env = {**env, "PLANCTL_BACKUP_RECIPIENTS": age_recipient(work)}
    pairs: list[Pair] = []
    for method in ("zstd", "gzip", "none"):
        argv = [PLANCTL, "-q", "backup", "--compress", method, "--keep", "1"]
        pairs.append(
            Pair(
                f"backup --compress {method} --keep 1, age-encrypted",
                functools.partial(same, argv),
                functools.partial(same, argv),
                "the same, not encrypted",
                1.10,
                sealed_env,
                env,
            )
        )
    target = work / "ref.db"
    reference = (
        f'sqlite3 "{db}" ".backup {target}" && zstd -3 -q -f "{target}" -o "{target}.zst" '
        f'&& sha256sum "{target}.zst"'
    )
    pairs.append(
        Pair(
            f"backup --keep 2 (zstd, checks, rotation), SQLite {db.stat().st_size / 1e6:.0f} MB",
            lambda _: [PLANCTL, "-q", "backup", "--keep", "2"],
            lambda _: ["sh", "-c", reference],
            "sqlite3 .backup + zstd -3 + sha256sum",
            1.3,
            env,
        )
    )
    rclone = shutil.which("rclone") or str(Path(sys.executable).parent / "rclone")
    key, secret = "AKIAPLANCTLBENCH0001", "planctl-bench-secret"
    root = work / "s3root"
    (root / "bench").mkdir(parents=True)
    port = free_port()
    server = serve_s3(rclone, root, port, key, secret)
    pg_url = create_pg_database() if postgres else ""
    try:
        aws = {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": key,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        push_env = {**env, **aws, "PLANCTL_BACKUP_DIR": str(work / "push-set")}
        subprocess.run([PLANCTL, "-q", "backup"], env=push_env, check=True)
        data = max(
            Path(push_env["PLANCTL_BACKUP_DIR"]).glob("*.zst"), key=lambda p: p.stat().st_size
        )
        rclone_env = {
            **os.environ,
            "RCLONE_CONFIG_BENCH_TYPE": "s3",
            "RCLONE_CONFIG_BENCH_PROVIDER": "Other",
            "RCLONE_CONFIG_BENCH_ENDPOINT": aws["AWS_ENDPOINT_URL"],
            "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": key,
            "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": secret,
        }
        pairs.append(
            Pair(
                f"backup push ({data.stat().st_size / 1e6:.0f} MB, checked upload)",
                # a fresh prefix per round: push uploads it all again, as rclone does
                lambda i: [
                    "env",
                    f"PLANCTL_BACKUP_REMOTE=s3://bench/run{i}",
                    PLANCTL,
                    "-q",
                    "backup",
                    "push",
                ],
                lambda i: [
                    rclone,
                    "--config",
                    "/dev/null",
                    "copyto",
                    "-I",
                    str(data),
                    f"bench:bench/r{i}",
                ],
                "rclone copyto -I, same server",
                1.2,
                push_env,
                rclone_env,
            )
        )
        if postgres:
            pg_env = env_for(pg_url, work / "pg")
            seed(pg_env, sessions)
            dump = work / "ref.dump"
            pairs.append(
                Pair(
                    "PostgreSQL backup --keep 1 (pg_dump -Fc, pg_restore --list, sha256)",
                    lambda _: [PLANCTL, "-q", "backup", "--keep", "1"],
                    lambda _: [
                        "sh",
                        "-c",
                        f'pg_dump -d "{pg_url}" -Fc -f "{dump}" && sha256sum "{dump}"',
                    ],
                    "pg_dump -Fc + sha256sum",
                    1.15,
                    pg_env,
                )
            )
        before = load()
        run_in_turns(pairs, runs)
        after = load()
    finally:
        stop_server(server)
        if pg_url:
            drop_pg_database(pg_url)
    rows = []
    for pair in pairs:
        ours_wall, ref_wall = (statistics.median(w) for w in pair.walls)
        ours_cpu, ref_cpu = (statistics.median(c) for c in pair.cpus)
        ratio = ours_wall / ref_wall
        met = "yes" if ratio <= pair.target else "no"
        rows.append(
            f"| {pair.name} | {ours_wall:.2f} / {ours_cpu:.2f} | {pair.reference_name} | "
            f"{ref_wall:.2f} / {ref_cpu:.2f} | {ratio:.2f}× / {ours_cpu / ref_cpu:.2f}× | "
            f"≤ {pair.target:.2f}× {met} |"
        )
    rows.append("")
    rows.append(f"`uptime` before: {before}; after: {after}.")
    return rows


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
            found = bench_issue19(args.sessions, args.runs, Path(tmp), not args.no_postgres)
        record(
            f"issue 19 targets, {args.sessions:,} sessions, medians of {args.runs} "
            "interleaved rounds (wall / CPU s; machine shared with other sessions)",
            "| planctl | wall / CPU s | reference (same rounds) | wall / CPU s | "
            "ratio wall / CPU | target |",
            found,
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
