"""Delta backups and restores never hide a change from the next sync.

Sync keeps its own position in the change log (``planctl_change_readers``);
delta backups mark the rows they took instead of deleting them, so a change
made between two syncs is still in the log after any number of deltas, and
the next sync reads only it. A restore forgets every position: the next sync
reads every session. SQLite and PostgreSQL, real backup commands.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from planctl.db import changelog
from planctl.db.engine import connect

from .conftest import Cli
from .helpers import target_of
from .sync_support import World, make_tiny_planner


def _sync_json(cli: Cli) -> dict[str, int]:
    run = cli("sync", "--json")
    assert run.exit_code == 0, run.stderr
    summary: dict[str, int] = json.loads(run.stdout)["summary"]
    return summary


def _position(url: str) -> int | None:
    with connect(target_of(url)) as connection:
        found = changelog.read_position(connection, "sync:simulated")
    return None if found is None else found[0]


def _logged_after(url: str, position: int, table: str, row_id: int) -> bool:
    with connect(target_of(url)) as connection:
        row = connection.execute(
            text(
                f"SELECT 1 FROM {changelog.LOG_TABLE} "
                "WHERE id > :p AND table_name = :t AND row_id = :r"
            ),
            {"p": position, "t": table, "r": row_id},
        ).first()
    return row is not None


@pytest.fixture
def world(migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Cli) -> World:
    make_tiny_planner(migrated_url)
    world = World(migrated_url, tmp_path / "calendar.json")
    monkeypatch.setenv("DATABASE_URL", migrated_url)
    monkeypatch.setenv("PLANCTL_SYNC_STORE", str(world.store))
    monkeypatch.setenv("PLANCTL_BACKUP_DIR", str(tmp_path / "backups"))
    return world


def test_a_change_between_delta_backups_still_reaches_the_calendar(world: World, cli: Cli) -> None:
    first = _sync_json(cli)
    sessions = first["calendar_created"]
    position = _position(world.url)
    assert position is not None  # a clean full run stores sync's position
    assert cli("-q", "backup").exit_code == 0
    world.execute("UPDATE sesiones SET notas = 'aula 3' WHERE id = 2")
    for _ in range(2):  # the delta takes the change; the next finds nothing new for it
        run = cli("-q", "backup", "--incremental")
        assert run.exit_code in (0, 3), run.stderr
    # the deltas took the change but left it in the log for sync, past sync's position
    assert _logged_after(world.url, position, "sesiones", 2)
    before = world.event_of(2)["etag"]
    summary = _sync_json(cli)
    assert summary["calendar_updated"] == 1 and summary["unchanged"] == sessions - 1
    event = world.event_of(2)
    assert event["etag"] != before and "Notas: aula 3" in event["description"]
    assert (moved := _position(world.url)) is not None and moved > position
    # a no-op: nothing written, every session counted, and the deltas can prune the log
    again = _sync_json(cli)
    assert again["unchanged"] == sessions and world.event_of(2)["etag"] == event["etag"]
    assert cli("-q", "backup", "--incremental").exit_code in (0, 3)
    assert not _logged_after(world.url, 0, "sesiones", 2)


def test_a_restore_makes_the_next_sync_read_everything_and_converge(world: World, cli: Cli) -> None:
    assert cli("-q", "sync").exit_code == 0
    # changed after the last sync and backed up, then restored from that very backup:
    # the restore empties the log, so only a full read can still see the change
    world.execute("UPDATE sesiones SET notas = 'aula 7' WHERE id = 3")
    assert cli("-q", "backup").exit_code == 0
    run = cli("-q", "backup", "restore", "latest", "--yes", "--no-safety-backup")
    assert run.exit_code == 0, run.stderr
    assert _position(world.url) is None  # the restore forgot sync's position
    assert not _logged_after(world.url, 0, "sesiones", 3)
    summary = _sync_json(cli)
    assert summary["calendar_updated"] == 1
    assert "Notas: aula 7" in world.event_of(3)["description"]
    assert _position(world.url) is not None
    etags = {s: world.event_of(s)["etag"] for s in world.active_session_ids()}
    again = _sync_json(cli)
    assert again["calendar_updated"] == again["calendar_created"] == 0
    assert {s: world.event_of(s)["etag"] for s in world.active_session_ids()} == etags


def test_a_session_table_without_its_triggers_is_read_in_full(world: World, cli: Cli) -> None:
    assert cli("-q", "sync").exit_code == 0
    with connect(target_of(world.url)) as connection:  # as a SQLite table rebuild would leave it
        changelog.drop_triggers(connection, ["sesiones"])
    world.execute("UPDATE sesiones SET notas = 'sin registro' WHERE id = 1")
    summary = _sync_json(cli)
    assert summary["calendar_updated"] == 1
    assert "Notas: sin registro" in world.event_of(1)["description"]
