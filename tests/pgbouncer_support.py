"""A real PgBouncer in transaction-pooling mode in front of the test server (Debian package)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import make_url

from .helpers import ServerDidNotStart, free_port, stop_process, wait_for_port


def find_pgbouncer() -> str | None:
    return shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None
    )


@contextmanager
def pgbouncer(server_url: str) -> Iterator[int]:
    """PgBouncer on a random loopback port, pool_mode=transaction, two server connections
    per pool (so server connections are handed from one client to the next)."""
    binary = find_pgbouncer()
    assert binary is not None
    url = make_url(server_url)
    port = free_port()
    directory = Path(tempfile.mkdtemp(prefix="planctl-pgbouncer-"))
    directory.chmod(0o755)
    backend = f"host={url.host or '127.0.0.1'} port={url.port or 5432}"
    if url.username:
        backend += f" user={url.username}"
    if url.password:
        backend += f" password={url.password}"
    (directory / "users.txt").write_text(f'"{url.username or "postgres"}" ""\n')
    config = directory / "pgbouncer.ini"
    config.write_text(
        "[databases]\n"
        f"* = {backend}\n"
        "[pgbouncer]\n"
        "listen_addr = 127.0.0.1\n"
        f"listen_port = {port}\n"
        "unix_socket_dir =\n"
        "auth_type = trust\n"
        f"auth_file = {directory / 'users.txt'}\n"
        "pool_mode = transaction\n"
        "default_pool_size = 2\n"
        "max_client_conn = 50\n"
        "ignore_startup_parameters = extra_float_digits,options\n"
        f"logfile = {directory / 'pgbouncer.log'}\n"
    )
    for path in directory.iterdir():
        path.chmod(0o644)
    command = [binary, str(config)]
    import os

    if os.geteuid() == 0:  # PgBouncer refuses to run as root: it runs as postgres
        command = [binary, "-u", "postgres", str(config)]
        shutil.chown(directory, "postgres")
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        try:
            wait_for_port(port, process, timeout=15)
        except ServerDidNotStart as error:
            log_file = directory / "pgbouncer.log"
            log = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
            log += process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise RuntimeError(f"pgbouncer did not start ({error}): {log}") from error
        yield port
    finally:
        stop_process(process)
        shutil.rmtree(directory, ignore_errors=True)
