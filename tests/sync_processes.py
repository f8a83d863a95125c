"""Real planctl sync processes against a real CalDAV server, for the concurrency tests
(tests/test_sync_concurrency.py, tests/test_sync_writer_latency.py)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

from planctl.db.engine import connect
from planctl.db.schema import metadata
from planctl.sync.backends.caldav import CalDAVBackend

from .conftest import EnvFor
from .helpers import target_of
from .sync_support import TZ, Radicale, caldav_settings

RUNS = metadata.tables["planctl_sync_runs"]
STATE = metadata.tables["planctl_sync_states"]


def dav_env(env_for: EnvFor, url: str, server: Radicale, calendar: str) -> dict[str, str]:
    return env_for(
        url,
        PLANCTL_SYNC_BACKEND="caldav",
        PLANCTL_CALDAV_URL=server.url,
        PLANCTL_CALDAV_USER=server.user,
        PLANCTL_CALDAV_CALENDAR=calendar,
        PLANCTL_TIMEZONE=TZ,
    )


def planctl(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "planctl", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_planctl(
    env: dict[str, str], *args: str, timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run ``planctl *args`` to the end, its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "planctl", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def calendar_events(url: str, server: Radicale, calendar: str) -> dict[str, str | None]:
    backend = CalDAVBackend(caldav_settings(url, server, calendar), create_calendar=False)
    try:
        return {e.id: e.etag for e in backend.list()}
    finally:
        backend.close()


def wait_for_writes(log: Path, count: int, process: subprocess.Popen[str]) -> None:
    """Until the sync log shows *count* events written (the run is halfway)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if log.exists() and log.read_text(encoding="utf-8").count("created event") >= count:
            return
        time.sleep(0.02)
    raise AssertionError(f"the sync did not get to {count} writes: {process.poll()}")


def results(url: str) -> list[str]:
    with connect(target_of(url)) as connection:
        return list(connection.execute(select(RUNS.c.result).order_by(RUNS.c.id)).scalars())


def state_rows(url: str) -> int:
    with connect(target_of(url)) as connection:
        return len(connection.execute(select(STATE.c.id)).all())
