"""The planner app keeps writing during a first CalDAV sync of 1,000 sessions on SQLite:
no write waits more than 200 ms, none fails (no transaction is open while planctl waits
on the server). Real processes: the sync, a real Radicale, a writer committing every 5 ms.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from planctl.db.seed import seed

from . import sync_support
from .conftest import EnvFor
from .helpers import target_of
from .sync_processes import calendar_events, dav_env, run_planctl, state_rows
from .sync_support import Radicale

radicale = sync_support.radicale
pytestmark = pytest.mark.slow  # a first CalDAV sync of 1,000 sessions (conftest runs it first)


def test_the_planner_app_keeps_writing_during_a_first_caldav_sync(
    tmp_path: Path, env_for: EnvFor, radicale: Radicale
) -> None:
    from planctl.db import migrate

    url = f"sqlite:///{tmp_path / 'planificador.db'}"
    migrate.upgrade(target_of(url))
    seed(target_of(url), scale=1000)
    env = dav_env(env_for, url, radicale, f"Writer {tmp_path.name}")
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
        sync = run_planctl(env, "-q", "sync", timeout=600)
    finally:
        done.set()
        writer.join()
    assert sync.returncode == 0, sync.stderr
    assert len(calendar_events(url, radicale, f"Writer {tmp_path.name}")) == state_rows(url) > 800
    assert failures == [] and len(waits) > 50
    assert max(waits) < 0.2, f"the slowest planner write waited {max(waits):.3f} s"
