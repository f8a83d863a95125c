"""Delta backups between two syncs never hide a change from the next sync.

A delta backup empties the change log; sync must not depend on it. A session
changed, then a full and a delta backup, then a sync: the calendar gets the
change. SQLite and PostgreSQL, real backup commands.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import Cli
from .sync_support import World, make_tiny_planner


def test_a_change_between_delta_backups_still_reaches_the_calendar(
    migrated_url: str, tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_tiny_planner(migrated_url)
    world = World(migrated_url, tmp_path / "calendar.json")
    monkeypatch.setenv("DATABASE_URL", migrated_url)
    monkeypatch.setenv("PLANCTL_SYNC_STORE", str(world.store))
    monkeypatch.setenv("PLANCTL_BACKUP_DIR", str(tmp_path / "backups"))
    assert cli("-q", "sync").exit_code == 0
    assert cli("-q", "backup").exit_code == 0
    world.execute("UPDATE sesiones SET notas = 'aula 3' WHERE id = 2")
    for _ in range(2):  # the delta takes the change and empties the log; the next has none
        run = cli("-q", "backup", "--incremental")
        assert run.exit_code in (0, 3), run.stderr
    before = world.event_of(2)["etag"]
    assert cli("-q", "sync").exit_code == 0
    event = world.event_of(2)
    assert event["etag"] != before and "Notas: aula 3" in event["description"]
    assert cli("-q", "sync").exit_code == 0 and world.event_of(2)["etag"] == event["etag"]
