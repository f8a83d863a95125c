"""What the benchmark scripts share: environments, throwaway databases, results."""

from __future__ import annotations

import datetime as dt
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
PLANCTL = str(Path(sys.executable).parent / "planctl")
ADMIN_URL = os.environ.get(
    "PLANCTL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
).replace("postgresql+psycopg://", "postgresql://")


def env_for(url: str, work: Path) -> dict[str, str]:
    """planctl's environment for one benchmark database, logs and backups in *work*."""
    # As on a user's machine: bytecode caches on (this sandbox sets PYTHONDONTWRITEBYTECODE,
    # which would recompile planctl's modules on every command and time that too).
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PLANCTL_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    env.update(
        DATABASE_URL=url,
        PLANCTL_LOG_DIR=str(work / "logs"),
        PLANCTL_BACKUP_DIR=str(work / "backups"),
    )
    return env


def create_pg_database() -> str:
    """A fresh PostgreSQL database on the benchmark server; returns its URL."""
    import psycopg

    name = f"planctl_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def drop_pg_database(url: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def record(title: str, header: str, rows: list[str]) -> None:
    """Print a Markdown table and append it to bench/RESULTS.md."""
    stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = [
        f"## {title} — {stamp} — {os.cpu_count()} cores, Python {platform.python_version()}",
        "",
        header,
        _rule(header),
        *rows,
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    results = HERE / "RESULTS.md"
    if not results.exists():
        results.write_text("# Benchmark results\n\nAppended by `make bench`.\n\n")
    with results.open("a") as out:
        out.write(text + "\n")


def _rule(header: str) -> str:
    cells = header.strip("|").split("|")
    return "|" + "|".join("---" for _ in cells) + "|"


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_s3(rclone: str, root: Path, port: int, key: str, secret: str) -> subprocess.Popen[bytes]:
    """Start ``rclone serve s3`` over *root* on loopback *port* and wait (up to ~10 s) until it
    accepts connections. The caller stops it with ``stop_server``."""
    server = subprocess.Popen(
        [rclone, "serve", "s3", "--addr", f"127.0.0.1:{port}", "--config", "/dev/null",
         "--auth-key", f"{key},{secret}", str(root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
    except BaseException:
        stop_server(server)
        raise
    return server


def stop_server(server: subprocess.Popen[bytes]) -> None:
    """Stop a server started by ``serve_s3`` (its whole process group)."""
    os.killpg(server.pid, signal.SIGTERM)
    server.wait()
