"""One guard, both directions: a planner that lost or cancelled its sessions never
empties the calendar, and a calendar that lost its events never cancels the planner.

Simulated calendar and real CalDAV servers (Radicale, Xandikos), SQLite and PostgreSQL:
the run is refused before any change with one line naming the count, the side and the
override; a dry run, ``sync status`` and ``--json`` say so; the override lets it proceed;
an empty planner is refused even with it.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from planctl.sync.backends.caldav import CalDAVBackend
from planctl.sync.report import Kind
from planctl.sync.safety import UnsafeRunError

from . import sync_support
from .conftest import Cli
from .helpers import table_contents
from .sync_support import DavWorld, World, add_sessions, caldav_settings, make_tiny_planner

radicale, xandikos = sync_support.radicale, sync_support.xandikos
SYNCED = 15  # sessions 1-3 of the tiny planner and 10-21


def calendar_etags(world: World) -> dict[str, str | None]:
    """Every event of the calendar and its etag: any write moves one."""
    if isinstance(world, DavWorld):
        backend = CalDAVBackend(world.settings_, create_calendar=False)
        try:
            return {e.id: e.etag for e in backend.list()}
        finally:
            backend.close()
    with world.calendar() as calendar:
        return {e["id"]: e["etag"] for e in calendar.list_events(show_deleted=True)}


@pytest.fixture(params=["simulated", "radicale", "xandikos"])
def synced(request: pytest.FixtureRequest, migrated_url: str, tmp_path: Path) -> World:
    """Fifteen sessions synced to a simulated calendar or a real CalDAV server."""
    make_tiny_planner(migrated_url)
    add_sessions(migrated_url, SYNCED - 3)
    world: World
    if request.param == "simulated":
        world = World(migrated_url, tmp_path / "calendar.json")
    else:
        server = request.getfixturevalue(request.param)
        settings = caldav_settings(migrated_url, server, f"Guard {tmp_path.name}")
        world = DavWorld(migrated_url, tmp_path / "unused.json", settings)
    assert world.sync().count(Kind.CREATE_REMOTE) == SYNCED
    return world


@pytest.mark.parametrize(
    ("change", "count"),
    [
        ("DELETE FROM sesiones WHERE id >= 12", 10),  # a bad restore, a bug in the app
        ("UPDATE sesiones SET estado = 'cancelada' WHERE id >= 10 OR id = 1", 13),  # 90 %
    ],
    ids=["deleted", "cancelled"],
)
def test_a_planner_that_lost_its_sessions_never_empties_the_calendar(
    synced: World, change: str, count: int
) -> None:
    synced.execute(change)
    before, planner = calendar_etags(synced), table_contents(synced.url)
    message = f"would delete {count} of the {SYNCED} events planctl synced"
    with pytest.raises(UnsafeRunError, match=message) as refused:
        synced.sync()
    assert refused.value.override == "--allow-mass-delete"
    assert "--allow-mass-delete" in str(refused.value)
    assert calendar_etags(synced) == before and table_contents(synced.url) == planner
    plan = synced.sync(dry_run=True)
    assert plan.count(Kind.DELETE_REMOTE) == count
    assert plan.refusal is not None and message in plan.refusal
    assert plan.as_dict()["override"] == "--allow-mass-delete"
    with pytest.raises(UnsafeRunError):  # the planner side's override does not lift it
        synced.sync(allow_mass_cancel=True)
    done = synced.sync(allow_mass_delete=True)
    assert done.summary()["calendar_deleted"] == count


def test_a_few_planner_deletions_pass(synced: World) -> None:
    synced.execute("DELETE FROM sesiones WHERE id >= 17")  # 5: the floor of the rule
    assert synced.sync().summary()["calendar_deleted"] == 5


def test_an_empty_planner_is_refused_even_with_the_override(synced: World) -> None:
    synced.execute("DELETE FROM sesiones")
    before = calendar_etags(synced)
    for overrides in ({}, {"allow_mass_delete": True, "allow_mass_cancel": True}):
        with pytest.raises(UnsafeRunError, match="the planner has no sessions at all") as refused:
            synced.sync(**overrides)
        assert refused.value.override is None
    assert calendar_etags(synced) == before
    assert synced.sync(dry_run=True).refusal is not None


@pytest.mark.parametrize("synced", ["radicale", "xandikos"], indirect=True)  # CalDAV only
def test_a_refused_caldav_run_creates_no_calendar(synced: World) -> None:
    assert isinstance(synced, DavWorld)
    synced.execute("DELETE FROM sesiones WHERE id >= 12")
    nuevo = "Nuevo " + synced.store.parent.name
    synced.settings_ = replace(synced.settings_, caldav_calendar=nuevo)
    # another, missing calendar: the tracked events are gone from view, the run is refused
    with pytest.raises(UnsafeRunError, match="does not list"):
        synced.sync()
    backend = CalDAVBackend(synced.settings_, create_calendar=False)
    try:
        assert nuevo not in backend._calendars()
    finally:
        backend.close()


def test_cli_names_count_side_and_override_in_one_line(
    migrated_url: str, tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_tiny_planner(migrated_url)
    add_sessions(migrated_url, SYNCED - 3)
    monkeypatch.setenv("DATABASE_URL", migrated_url)
    monkeypatch.setenv("PLANCTL_SYNC_STORE", str(tmp_path / "calendar.json"))
    assert cli("-q", "sync").exit_code == 0
    synced = cli("sync", "status").stdout
    assert "(sync, ok: created 15)" in synced and "creados" not in synced  # English names
    World(migrated_url, tmp_path / "calendar.json").execute(
        "UPDATE sesiones SET estado = 'cancelada' WHERE id >= 10"
    )
    run = cli("-q", "sync")
    lines = run.stderr.strip().splitlines()
    assert run.exit_code == 1 and len(lines) == 1, run.stderr
    assert "would delete 12 of the 15 events" in lines[0] and "--allow-mass-delete" in lines[0]
    assert "PLANCTL_SYNC_STORE" not in lines[0]
    dry = json.loads(cli("sync", "--dry-run", "--json").stdout)
    assert "would delete 12" in dry["refused"] and dry["override"] == "--allow-mass-delete"
    status = cli("sync", "status")
    assert "The next run would be refused" in status.stdout
    assert "--allow-mass-delete to proceed" in status.stdout
    assert json.loads(cli("sync", "status", "--json").stdout)["refused"] == dry["refused"]
    assert cli("-q", "sync", "--allow-mass-delete").exit_code == 0
