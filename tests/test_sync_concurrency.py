"""Sync next to another sync, with real processes.

- Two syncs of one database at once, on SQLite and PostgreSQL: the second exits
  4 with one line, or with --lock-timeout waits; no duplicates, no raw
  constraint error, no stale run row.
- A sync killed with -9 halfway: the next run marks the run row interrupted
  and converges without duplicates.

The planner app writing during a first CalDAV sync is tests/test_sync_writer_latency.py
(its own file, so the two slowest real-process files run on different workers).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from . import sync_support
from .conftest import EnvFor
from .sync_processes import (
    calendar_events,
    dav_env,
    planctl,
    results,
    run_planctl,
    state_rows,
    wait_for_writes,
)
from .sync_support import Radicale

radicale = sync_support.radicale
pytestmark = pytest.mark.slow  # real syncs of hundreds of sessions (conftest runs it first)


@pytest.fixture
def seeded_dav(
    seeded_url: str, tmp_path: Path, env_for: EnvFor, radicale: Radicale
) -> tuple[str, dict[str, str], str]:
    calendar = f"Twice {tmp_path.name}"
    return seeded_url, dav_env(env_for, seeded_url, radicale, calendar), calendar


def test_two_syncs_at_once_one_waits_or_exits_4(
    seeded_dav: tuple[str, dict[str, str], str], tmp_path: Path, radicale: Radicale
) -> None:
    url, env, calendar = seeded_dav
    first = planctl(env, "-q", "sync")
    try:
        wait_for_writes(tmp_path / "logs" / "sincronizacion.log", 5, first)
        refused = run_planctl(env, "-q", "sync", timeout=120)
        waiting = planctl(env, "-q", "sync", "--lock-timeout", "300")
        assert first.wait(timeout=300) == 0, first.stderr.read() if first.stderr else ""
        assert waiting.wait(timeout=300) == 0, waiting.stderr.read() if waiting.stderr else ""
    finally:
        first.kill()
    lines = refused.stderr.strip().splitlines()
    assert refused.returncode == 4 and len(lines) == 1, refused.stderr
    assert "another planctl sync with the caldav calendar is running" in lines[0]
    assert "Traceback" not in refused.stderr and "duplicate key" not in refused.stderr
    events = calendar_events(url, radicale, calendar)
    assert len(events) == state_rows(url)  # one event per synced session, no duplicates
    assert results(url) == ["ok", "ok"]  # the refused run wrote no run row


def test_a_sync_killed_with_9_is_marked_interrupted_and_the_next_converges(
    seeded_dav: tuple[str, dict[str, str], str], tmp_path: Path, radicale: Radicale
) -> None:
    url, env, calendar = seeded_dav
    victim = planctl(env, "-q", "sync")
    try:
        wait_for_writes(tmp_path / "logs" / "sincronizacion.log", 30, victim)
    finally:
        victim.kill()  # SIGKILL: no cleanup runs
        victim.wait()
    assert results(url) == ["running"]
    rerun = run_planctl(env, "-q", "sync", timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert results(url) == ["interrupted", "ok"]
    events = calendar_events(url, radicale, calendar)
    assert len(events) == state_rows(url) and all(
        path.endswith(".ics") for path in events
    )  # every session once: the killed run's writes were adopted, not repeated
    status = run_planctl(env, "sync", "status", "--json", timeout=120)
    assert '"result": "ok"' in status.stdout and "running" not in status.stdout
