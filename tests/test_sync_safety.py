"""Sync never cancels sessions because a calendar looks empty, lost or replaced.

The guards of docs/sync.md#safety-no-mass-cancellation: a store that is missing, unreadable or
another calendar stops the run before any change (exit 1, one line); a run
that would cancel more than a small share of the tracked sessions is refused
unless --allow-mass-cancel; the default store is not relative to the working
directory. Library and CLI, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from planctl.config import default_sync_store, former_default_sync_store, load_settings
from planctl.errors import SyncError
from planctl.sync.engine import MASS_CANCEL_MIN, Kind, UnsafeRunError

from .conftest import Cli
from .helpers import table_contents
from .sync_support import World, add_sessions, make_tiny_planner


@pytest.fixture
def synced(migrated_url: str, tmp_path: Path) -> World:
    """Three plus twelve sessions, all synced to a simulated calendar."""
    make_tiny_planner(migrated_url)
    add_sessions(migrated_url, 12)
    world = World(migrated_url, tmp_path / "calendar.json")
    assert world.sync().count(Kind.CREATE_REMOTE) == 15
    return world


def _cancelled(world: World) -> int:
    return 15 - len(world.active_session_ids())  # of the 15 synced (session 4 never was)


def test_a_missing_store_stops_the_run_before_any_change(synced: World) -> None:
    before = table_contents(synced.url)
    synced.store.rename(synced.store.with_suffix(".moved"))
    with pytest.raises(UnsafeRunError, match="does not list 15 of the 15 events"):
        synced.sync()
    assert table_contents(synced.url) == before and _cancelled(synced) == 0
    assert not synced.store.exists()  # nothing was written to a new, empty store


def test_another_calendar_in_place_of_the_store_stops_the_run(
    synced: World, tmp_path: Path
) -> None:
    other = World(synced.url, tmp_path / "other.json")
    with other.calendar() as calendar:
        import datetime as dt

        calendar.add("Dentista", dt.date(2026, 11, 23), dt.time(18), dt.time(19))
    before = table_contents(synced.url)
    with pytest.raises(UnsafeRunError, match="looks missing, replaced or unreadable"):
        other.sync()
    assert table_contents(synced.url) == before


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_a_store_that_is_not_a_file_is_one_clear_error(
    synced: World, tmp_path: Path, kind: str
) -> None:
    odd = tmp_path / f"odd-{kind}.json"
    if kind == "directory":
        odd.mkdir()
    else:
        os.mkfifo(odd)  # reading it would block forever
    with pytest.raises(SyncError, match="is not a regular file"):
        World(synced.url, odd).sync()


def test_deleting_many_events_on_the_phone_is_refused_then_allowed(synced: World) -> None:
    removed = MASS_CANCEL_MIN + 2
    with synced.calendar() as calendar:
        for session_id in range(10, 10 + removed):
            calendar.remove(str(session_id))
    before = table_contents(synced.url)
    with pytest.raises(UnsafeRunError, match=f"would cancel {removed} of the 15 synced"):
        synced.sync()
    assert table_contents(synced.url) == before
    plan = synced.sync(dry_run=True)  # the plan still shows what would happen
    assert plan.count(Kind.CANCEL_LOCAL) == removed
    assert plan.refusal is not None and f"would cancel {removed}" in plan.refusal
    report = synced.sync(allow_mass_cancel=True)
    assert report.summary()["planner_cancelled"] == removed
    assert _cancelled(synced) == removed


def test_a_few_deletions_pass_the_guard(synced: World) -> None:
    with synced.calendar() as calendar:
        for session_id in range(10, 10 + MASS_CANCEL_MIN):
            calendar.remove(str(session_id))
    assert synced.sync().summary()["planner_cancelled"] == MASS_CANCEL_MIN


# -- the CLI: exit code, one line, the default store ---------------------------------------


def test_cli_refuses_a_mass_cancel_with_one_line_and_exit_1(
    synced: World, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", synced.url)
    monkeypatch.setenv("PLANCTL_SYNC_STORE", str(synced.store.with_name("elsewhere.json")))
    run = cli("-q", "sync")
    assert run.exit_code == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "--allow-mass-cancel" in lines[0]
    assert run.stdout == "" and _cancelled(synced) == 0


def test_default_store_is_next_to_a_sqlite_database_or_in_the_data_dir(tmp_path: Path) -> None:
    db = tmp_path / "data" / "planner.db"
    sqlite = f"sqlite:///{db}"
    assert default_sync_store(sqlite, {}) == db.with_name("planner.db.planctl-calendar.sqlite")
    assert former_default_sync_store(sqlite, {}) == db.with_name(
        "planner.db.calendario_simulado.json"
    )
    pg_url, pg_env = "postgresql+psycopg://u:pw@h/planner", {"XDG_DATA_HOME": "/x/share"}
    assert default_sync_store(pg_url, pg_env) == Path("/x/share/planctl/calendar-planner.sqlite")
    assert former_default_sync_store(pg_url, pg_env) == Path(
        "/x/share/planctl/calendario_simulado-planner.json"
    )
    home = default_sync_store("postgresql+psycopg://u@h/db", {"HOME": "/home/ana"})
    assert home == Path("/home/ana/.local/share/planctl/calendar-db.sqlite")
    settings = load_settings(
        environ={"PLANCTL_SYNC_STORE": "rel/cal.json"}, dotenv_path=tmp_path / "none"
    )
    assert settings.sync_store.is_absolute() and not settings.sync_store_is_default
    assert settings.sync_store_former is None  # a store the user names is never moved


def test_the_default_store_under_its_former_name_is_moved_and_used(
    migrated_url: str, tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A planner synced under the Spanish default name keeps its calendar: a dry run reads
    it where it is; the first run moves it, and the files named after it, to the English
    name and finds every event (no new event, no "does not list N events" guard)."""
    env = {"XDG_DATA_HOME": str(tmp_path / "share")}
    former = former_default_sync_store(migrated_url, env)
    store = default_sync_store(migrated_url, env)
    assert store.parent == former.parent and store != former
    former.parent.mkdir(parents=True, exist_ok=True)
    make_tiny_planner(migrated_url)
    assert World(migrated_url, former).sync().count(Kind.CREATE_REMOTE) == 3

    def named_after(path: Path) -> set[str]:
        return {
            p.name[len(path.name) :] for p in path.parent.iterdir() if p.name.startswith(path.name)
        }

    assert named_after(former) == {"", ".mirror"} and named_after(store) == set()
    monkeypatch.setenv("DATABASE_URL", migrated_url)
    monkeypatch.setenv("XDG_DATA_HOME", env["XDG_DATA_HOME"])
    dry = cli("sync", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.stderr
    assert json.loads(dry.stdout)["summary"]["unchanged"] == 3
    assert named_after(former) == {"", ".mirror"} and named_after(store) == set()
    run = cli("sync", "--json")
    assert run.exit_code == 0, run.stderr
    summary = json.loads(run.stdout)["summary"]
    assert (summary["unchanged"], summary["calendar_created"]) == (3, 0)
    assert named_after(former) == set() and named_after(store) == {"", ".mirror"}
    assert sorted(World(migrated_url, store).events_by_session()) == [1, 2, 3]
    status = json.loads(cli("sync", "status", "--json").stdout)
    assert status["calendar"] == f"simulated calendar {store}"
    assert status["last_run"]["counts"]["unchanged"] == 3


def test_cron_from_another_directory_finds_the_same_calendar(
    migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two real processes, started in different directories, with only DATABASE_URL set."""
    make_tiny_planner(migrated_url)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PLANCTL_") and k not in ("DATABASE_URL", "XDG_DATA_HOME")
    }
    env.update(
        DATABASE_URL=migrated_url,
        XDG_DATA_HOME=str(tmp_path / "share"),
        PLANCTL_LOG_DIR=str(tmp_path / "logs"),
    )
    runs = []
    for where in ("a", "b"):
        (tmp_path / where).mkdir()
        runs.append(
            subprocess.run(
                [sys.executable, "-m", "planctl", "-q", "sync"],
                cwd=tmp_path / where,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
        )
    assert [r.returncode for r in runs] == [0, 0], runs[-1].stderr
    assert [r.stdout + r.stderr for r in runs] == ["", ""]  # -q: silent on success
    store = default_sync_store(migrated_url, env)
    assert store.exists() and not any(any((tmp_path / w).iterdir()) for w in ("a", "b"))
    world = World(migrated_url, store)
    assert sorted(world.events_by_session()) == [1, 2, 3]
    assert world.active_session_ids() == {1, 2, 3}
