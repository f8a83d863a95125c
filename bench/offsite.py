"""Offsite benchmarks against reference tools, in one run.

    python bench/offsite.py [--sessions 3500000] [--db PATH] [--runs 3]

On the SQLite backup of a seeded database of about 1 GB (``db-seed --scale``;
``--db`` reuses an existing database):

1. encryption: ``planctl backup --no-compress`` vs age-encrypting that
   backup's data file with planctl.backup.crypto (pyrage) and with the ``age``
   CLI — the overhead encryption adds to a backup;
2. compression: zstd (level 3) vs gzip (level 6) through
   planctl.backup.compress, time and size, with the ``zstd -3``/``gzip -6`` CLIs;
3. upload: S3Store.upload (multipart, checked) to a loopback ``rclone serve s3``
   vs ``rclone copyto`` of the same file to the same server.

Medians of --runs; the table is appended to bench/RESULTS.md.
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
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PLANCTL, env_for, free_port, record, serve_s3, stop_server

BIN = Path(sys.executable).parent
KEY_ID, SECRET = "AKIAPLANCTLBENCH0001", "planctl-bench-secret"


def timed(action: Callable[[], object]) -> float:
    os.sync()
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def run(cmd: list[str], env: dict[str, str] | None = None) -> None:
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)


def newest_data_file(backups: Path) -> Path:
    files = [p for p in backups.rglob("*") if p.is_file() and p.suffix not in (".json", ".lock")]
    return max(files, key=lambda p: p.stat().st_size)


def compress_file(data: Path, packed: Path, method: object, level: int) -> None:
    from planctl.backup.compress import Compression, compressing

    assert isinstance(method, Compression)
    with (
        open(data, "rb") as src,
        open(packed, "wb") as dest,
        compressing(dest, method, level) as sink,
    ):
        while chunk := src.read(1 << 20):
            sink.write(chunk)


def cli_compress(argv: list[str], target: Path) -> None:
    with open(target, "wb") as out:
        subprocess.run(argv, check=True, stdout=out)


def bench_compression(data: Path, work: Path, runs: int) -> list[str]:
    """zstd vs gzip through planctl.backup.compress, with the CLIs as references."""
    from planctl.backup.compress import Compression

    size = data.stat().st_size
    rows = []
    for method, level, ref_name, ref_argv in (
        (Compression.ZSTD, 3, "`zstd -3`", ["zstd", "-q", "-3", "-c", str(data)]),
        (Compression.GZIP, 6, "`gzip -6`", ["gzip", "-6", "-c", str(data)]),
    ):
        packed = work / f"data.{method.value}"
        ref_target = work / f"ref.{method.value}"
        spent = statistics.median(
            timed(lambda: compress_file(data, packed, method, level))  # noqa: B023
            for _ in range(runs)
        )
        ref_time = timed(lambda: cli_compress(ref_argv, ref_target))  # noqa: B023
        packed_size = packed.stat().st_size
        rows.append(
            f"| compress {method.value} level {level} | {spent:.2f} s, "
            f"{packed_size / 1e6:.0f} MB ({packed_size / size * 100:.1f} %) "
            f"| {ref_name}: {ref_time:.2f} s, {ref_target.stat().st_size / 1e6:.0f} MB "
            f"| {spent / ref_time:.2f}× |"
        )
        packed.unlink()
        ref_target.unlink()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=3_500_000)
    parser.add_argument("--db", type=Path, help="reuse this SQLite database instead of seeding")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    from planctl.backup.compress import Compression, compressing
    from planctl.backup.crypto import encrypt_file, encrypting, parse_recipients
    from planctl.backup.remote import open_remote

    with tempfile.TemporaryDirectory(prefix="planctl-offsite-bench-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        db = args.db or work / "big.db"
        env = env_for(f"sqlite:///{db}", work)
        if not args.db:
            run([PLANCTL, "-q", "db-upgrade"], env)
            run([PLANCTL, "-q", "db-seed", "--scale", str(args.sessions)], env)
        rows: list[str] = []

        # 1. encryption overhead on a backup
        backup_times = []
        for _ in range(args.runs):
            shutil.rmtree(work / "backups", ignore_errors=True)
            backup_times.append(timed(lambda: run([PLANCTL, "-q", "backup", "--no-compress"], env)))
        data = newest_data_file(work / "backups")
        size = data.stat().st_size
        run(["age-keygen", "-o", str(work / "key.txt")])
        public = subprocess.run(
            ["age-keygen", "-y", str(work / "key.txt")], check=True, capture_output=True, text=True
        ).stdout.strip()
        recipients = parse_recipients(public)
        out = work / "data.age"

        def planctl_encrypt() -> None:
            with open(out, "wb") as dest:
                encrypt_file(data, dest, recipients)

        def zstd_only() -> None:
            compress_file(data, work / "data.zst", Compression.ZSTD, 3)

        def zstd_then_age() -> None:  # the create pipeline: compress inside encrypt, streaming
            with (
                open(data, "rb") as src,
                open(work / "data.zst.age", "wb") as dest,
                encrypting(dest, recipients) as cipher,
                compressing(cipher, Compression.ZSTD, 3) as sink,
            ):
                while chunk := src.read(1 << 20):
                    sink.write(chunk)

        enc = statistics.median(timed(planctl_encrypt) for _ in range(args.runs))
        age_cli = statistics.median(
            timed(lambda: run(["age", "-r", public, "-o", str(out), str(data)]))
            for _ in range(args.runs)
        )
        zstd = statistics.median(timed(zstd_only) for _ in range(args.runs))
        zstd_age = statistics.median(timed(zstd_then_age) for _ in range(args.runs))
        backup = statistics.median(backup_times)
        gb = size / 1e9
        rows += [
            f"| `planctl backup --no-compress` (SQLite, {gb:.2f} GB data file) "
            f"| {backup:.2f} s | — | — |",
            f"| age-encrypt that uncompressed file (crypto.encrypt_file, pyrage) | {enc:.2f} s "
            f"| `age -r KEY -o OUT FILE`: {age_cli:.2f} s | {enc / age_cli:.2f}×; "
            f"as a second pass it adds {enc / backup * 100:.0f} % to the backup |",
            f"| zstd-3 of the file, then the same + age streaming (compress inside encrypt) "
            f"| {zstd:.2f} s → {zstd_age:.2f} s | — "
            f"| encryption adds {(zstd_age - zstd) / (backup + zstd) * 100:.1f} % "
            f"to a compressed backup |",
        ]

        rows += bench_compression(data, work, args.runs)

        # 3. upload to a loopback rclone serve s3 vs rclone copyto
        rclone = str(BIN / "rclone") if (BIN / "rclone").exists() else "rclone"
        root = work / "s3root"
        (root / "bench").mkdir(parents=True)
        port = free_port()
        server = serve_s3(rclone, root, port, KEY_ID, SECRET)
        try:
            import boto3

            session = boto3.session.Session(
                aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET, region_name="us-east-1"
            )
            store = open_remote(
                "s3://bench/planctl", s3_session=session, s3_endpoint_url=f"http://127.0.0.1:{port}"
            )
            ours = statistics.median(
                timed(lambda: store.upload(data, "data.db")) for _ in range(args.runs)
            )
            readback = statistics.median(
                timed(lambda: store.sha256("data.db")) for _ in range(args.runs)
            )
            rclone_env = {
                **os.environ,
                "RCLONE_CONFIG_BENCH_TYPE": "s3",
                "RCLONE_CONFIG_BENCH_PROVIDER": "Other",
                "RCLONE_CONFIG_BENCH_ENDPOINT": f"http://127.0.0.1:{port}",
                "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": KEY_ID,
                "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": SECRET,
            }
            copyto = [rclone, "--config", "/dev/null", "copyto", "-I", str(data), "bench:bench/r"]
            reference = statistics.median(
                timed(lambda: run(copyto, rclone_env)) for _ in range(args.runs)
            )
        finally:
            stop_server(server)
        rows.append(
            f"| S3 upload to loopback `rclone serve s3` (multipart 64 MB, SHA-256 per part "
            f"+ read-back hash: this server reports no checksum) | {ours:.2f} s "
            f"(read-back alone {readback:.2f} s) "
            f"| `rclone copyto -I`: {reference:.2f} s | {ours / reference:.2f}× |"
        )
        record(
            f"offsite: encryption, compression, S3 upload, {args.sessions:,} sessions, "
            f"median of {args.runs}",
            "| what | planctl | reference (same run) | ratio |",
            rows,
        )


if __name__ == "__main__":
    main()
