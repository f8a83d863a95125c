"""Sync next to the planner app and next to another sync, with real processes.

- The planner app keeps writing during a first CalDAV sync of 1,000 sessions on
  SQLite: no write waits more than 200 ms, none fails (no transaction is open
  while planctl waits on the server).
- Two syncs of one database at once, on SQLite and PostgreSQL: the second exits
  4 with one line, or with --lock-timeout waits; no duplicates, no raw
  constraint error, no stale run row.
- A sync killed with -9 halfway: the next run marks the run row interrupted
  and converges without duplicates.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from planctl.db.engine import connect
from planctl.db.schema import metadata
from planctl.db.seed import seed
from planctl.sync.backends.caldav import CalDAVBackend

from . import sync_support
from .conftest import EnvFor
from .helpers import target_of
from .sync_support import TZ, Radicale, caldav_settings

radicale = sync_support.radicale
pytestmark = pytest.mark.slow  # real syncs of hundreds of sessions (conftest runs it first)
RUNS = metadata.tables["planctl_sync_runs"]
STATE = metadata.tables["planctl_sync_states"]


def _dav_env(env_for: EnvFor, url: str, server: Radicale, calendar: str) -> dict[str, str]:
    return env_for(
        url,
        PLANCTL_SYNC_BACKEND="caldav",
        PLANCTL_CALDAV_URL=server.url,
        PLANCTL_CALDAV_USER=server.user,
        PLANCTL_CALDAV_CALENDAR=calendar,
        PLANCTL_TIMEZONE=TZ,
    )


def _planctl(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "planctl", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run_planctl(
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


def _events(url: str, server: Radicale, calendar: str) -> dict[str, str | None]:
    backend = CalDAVBackend(caldav_settings(url, server, calendar), create_calendar=False)
    try:
        return {e.id: e.etag for e in backend.list()}
    finally:
        backend.close()


def _wait_for_writes(log: Path, count: int, process: subprocess.Popen[str]) -> None:
    """Until the sync log shows *count* events written (the run is halfway)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if log.exists() and log.read_text(encoding="utf-8").count("created event") >= count:
            return
        time.sleep(0.02)
    raise AssertionError(f"the sync did not get to {count} writes: {process.poll()}")


def _results(url: str) -> list[str]:
    with connect(target_of(url)) as connection:
        return list(connection.execute(select(RUNS.c.result).order_by(RUNS.c.id)).scalars())


def _state_rows(url: str) -> int:
    with connect(target_of(url)) as connection:
        return len(connection.execute(select(STATE.c.id)).all())


def test_the_planner_app_keeps_writing_during_a_first_caldav_sync(
    tmp_path: Path, env_for: EnvFor, radicale: Radicale
) -> None:
    from planctl.db import migrate

    url = f"sqlite:///{tmp_path / 'planificador.db'}"
    migrate.upgrade(target_of(url))
    seed(target_of(url), scale=1000)
    env = _dav_env(env_for, url, radicale, f"Writer {tmp_path.name}")
    waits: list[float] = []
    failures: list[str] = []
    done = threading.Event()

    def planner_app() -> None:
        """Commit a change every 5 ms, as the planner app's user clicks along."""
        db = sqlite3.connect(tmp_path / "planificador.db", timeout=5)
        try:
            n = 0
            while not done.is_set():
                n += 1
                started = time.perf_counter()
                try:
                    db.execute("UPDATE clientes SET notas = ? WHERE id = 1", (f"nota {n}",))
                    db.commit()
                except sqlite3.Error as error:
                    failures.append(str(error))
                    db.rollback()
                waits.append(time.perf_counter() - started)
                time.sleep(0.005)
        finally:
            db.close()

    writer = threading.Thread(target=planner_app)
    writer.start()
    try:
        sync = _run_planctl(env, "-q", "sync", timeout=600)
    finally:
        done.set()
        writer.join()
    assert sync.returncode == 0, sync.stderr
    assert len(_events(url, radicale, f"Writer {tmp_path.name}")) == _state_rows(url) > 800
    assert failures == [] and len(waits) > 50
    assert max(waits) < 0.2, f"the slowest planner write waited {max(waits):.3f} s"


@pytest.fixture
def seeded_dav(
    seeded_url: str, tmp_path: Path, env_for: EnvFor, radicale: Radicale
) -> tuple[str, dict[str, str], str]:
    calendar = f"Twice {tmp_path.name}"
    return seeded_url, _dav_env(env_for, seeded_url, radicale, calendar), calendar


def test_two_syncs_at_once_one_waits_or_exits_4(
    seeded_dav: tuple[str, dict[str, str], str], tmp_path: Path, radicale: Radicale
) -> None:
    url, env, calendar = seeded_dav
    first = _planctl(env, "-q", "sync")
    try:
        _wait_for_writes(tmp_path / "logs" / "sincronizacion.log", 5, first)
        refused = _run_planctl(env, "-q", "sync", timeout=120)
        waiting = _planctl(env, "-q", "sync", "--lock-timeout", "300")
        assert first.wait(timeout=300) == 0, first.stderr.read() if first.stderr else ""
        assert waiting.wait(timeout=300) == 0, waiting.stderr.read() if waiting.stderr else ""
    finally:
        first.kill()
    lines = refused.stderr.strip().splitlines()
    assert refused.returncode == 4 and len(lines) == 1, refused.stderr
    assert "another planctl sync with the caldav calendar is running" in lines[0]
    assert "Traceback" not in refused.stderr and "duplicate key" not in refused.stderr
    events = _events(url, radicale, calendar)
    assert len(events) == _state_rows(url)  # one event per synced session, no duplicates
    assert _results(url) == ["ok", "ok"]  # the refused run wrote no run row


def test_a_sync_killed_with_9_is_marked_interrupted_and_the_next_converges(
    seeded_dav: tuple[str, dict[str, str], str], tmp_path: Path, radicale: Radicale
) -> None:
    url, env, calendar = seeded_dav
    victim = _planctl(env, "-q", "sync")
    try:
        _wait_for_writes(tmp_path / "logs" / "sincronizacion.log", 30, victim)
    finally:
        victim.kill()  # SIGKILL: no cleanup runs
        victim.wait()
    assert _results(url) == ["running"]
    rerun = _run_planctl(env, "-q", "sync", timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert _results(url) == ["interrupted", "ok"]
    events = _events(url, radicale, calendar)
    assert len(events) == _state_rows(url) and all(
        path.endswith(".ics") for path in events
    )  # every session once: the killed run's writes were adopted, not repeated
    status = _run_planctl(env, "sync", "status", "--json", timeout=120)
    assert '"result": "ok"' in status.stdout and "running" not in status.stdout
