"""Helpers shared by test modules: whole-table snapshots, real planctl processes, and the
one way to pick a port, wait for a server and wait for a condition."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import select

from planctl.db.engine import connect
from planctl.db.schema import TABLE_NAMES, metadata
from planctl.target import Target


def target_of(url: str) -> Target:
    """The :class:`Target` the library takes, for a test database's URL: parsed the one
    way configuration parses DATABASE_URL."""
    return Target.parse(url)


def table_contents(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every planner table (timestamps included), ordered by id."""
    out = {}
    with connect(target_of(url)) as connection:
        for name in TABLE_NAMES:
            table = metadata.tables[name]
            out[name] = [tuple(r) for r in connection.execute(select(table).order_by(table.c.id))]
    return out


def planctl_env(url: str, backup_dir: Path, log_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k != "DATABASE_URL" and not k.startswith("PLANCTL_")
    }
    env.update(DATABASE_URL=url, PLANCTL_BACKUP_DIR=str(backup_dir), PLANCTL_LOG_DIR=str(log_dir))
    env.update(extra)
    return env


FAULTS = Path(__file__).with_name("faults.py")


def _command(args: tuple[str, ...], fault: str | None) -> list[str]:
    """planctl as a real process; with *fault* ("crash:STAGE" or "pause:STAGE:SECONDS")
    through tests/faults.py, which injects the checkpoint."""
    if fault is None:
        return [sys.executable, "-m", "planctl", *args]
    return [sys.executable, str(FAULTS), fault, *args]


def run_planctl(
    *args: str,
    env: dict[str, str],
    cwd: Path | None = None,
    timeout: float = 120,
    fault: str | None = None,
    **kwargs: Any,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _command(args, fault),
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


def spawn_planctl(
    *args: str, env: dict[str, str], fault: str | None = None, **kwargs: Any
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        _command(args, fault),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


# --- ports, servers and waiting: one helper each ------------------------------------------------

T = TypeVar("T")


def free_port() -> int:
    """A loopback port nobody listens on now (the kernel's pick: unique across the
    parallel test workers and the other test runs on the machine)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerDidNotStart(RuntimeError):
    """A server process exited, or did not listen within its time."""


def wait_until(
    condition: Callable[[], T | None],
    *,
    timeout: float = 30.0,
    interval: float = 0.05,
    what: str = "the condition",
) -> T:
    """Poll *condition* until it returns something truthy (returned), or fail after
    *timeout* seconds: a wait that ends as soon as it can, never a fixed sleep."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout:g} s")
        time.sleep(interval)


def port_is_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def wait_for_port(
    port: int, process: subprocess.Popen[Any] | None = None, *, timeout: float = 30.0
) -> None:
    """Return once something listens on loopback *port*; :class:`ServerDidNotStart` when
    *process* exits first or nothing listens within *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while not port_is_open(port):
        if process is not None and process.poll() is not None:
            raise ServerDidNotStart(f"server exited early with {process.returncode}")
        if time.monotonic() > deadline:
            raise ServerDidNotStart(f"nothing listened on port {port} within {timeout:g} s")
        time.sleep(0.05)


def stop_process(process: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if *process* is still there after *timeout* seconds."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def holds_open(pid: int, path: Path) -> bool:
    """Whether process *pid* has *path* open (Linux ``/proc``): a real process is seen to
    have reached, say, its wait for a lock, instead of sleeping a guessed time."""
    try:
        links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
    except OSError:  # the process is gone, or one of its descriptors closed meanwhile
        return False
    return str(path.resolve()) in links
