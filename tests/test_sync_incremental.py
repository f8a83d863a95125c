"""A run after a clean one reads only what changed, on both sides (issue 20, point 4).

The planner's side through sync's position in the change log, the calendar's
through ``Backend.list_changes`` (the google/simulated mirror's change numbers
since the clean run that confirmed them). Asserted on what was read (the
plan's sessions and state rows) and on the outcome on both sides.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from planctl.db.engine import make_engine
from planctl.sync.backends.simulated import InjectedFault, SimulatedBackend, SimulatedCalendar
from planctl.sync.engine import Kind, SyncOptions
from planctl.sync.plan import Plan, make_plan

from .helpers import target_of
from .sync_support import TZ, World, add_sessions, make_tiny_planner

EXTRA = 40  # sessions beyond the tiny planner's, so "everything" and "what changed" differ


@pytest.fixture
def synced(migrated_url: str, tmp_path: Path) -> World:
    make_tiny_planner(migrated_url)
    add_sessions(migrated_url, EXTRA)
    world = World(migrated_url, tmp_path / "calendar.json")
    assert world.sync().count(Kind.CREATE_REMOTE) == 3 + EXTRA
    assert world.sync().remote_writes == 0  # a clean run: the position and the listing key
    return world


def plan_of(world: World) -> Plan:
    """What the next run would read and decide (a dry run's plan)."""
    calendar = SimulatedCalendar(world.store, timezone=TZ)
    engine = make_engine(target_of(world.url))
    try:
        with engine.connect() as connection:
            return make_plan(connection, SimulatedBackend(calendar), SyncOptions(timezone=TZ))
    finally:
        engine.dispose()
        calendar.close()


def test_a_no_op_reads_no_session_and_no_state_row(synced: World) -> None:
    plan = plan_of(synced)
    assert plan.ids == [] and plan.states == {} and plan.remote == {}
    assert plan.unread == plan.tracked == 3 + EXTRA


def test_a_phone_edit_is_the_only_event_read_and_reaches_the_planner(synced: World) -> None:
    with synced.calendar() as calendar:
        calendar.edit("12", start_time=dt.time(16), end_time=dt.time(18))
    plan = plan_of(synced)
    assert plan.ids == [12] and set(plan.states) == {12}
    report = synced.sync()
    assert {a.session_id: a.kind for a in report.actions} == {12: Kind.UPDATE_LOCAL}
    session = synced.session(12)
    assert (session.hora_inicio, session.hora_fin) == (dt.time(16), dt.time(18))
    # the run's own write to the planner is logged after its position: read once more
    assert plan_of(synced).ids == [12]
    again = synced.sync()
    assert again.remote_writes == 0 and again.summary()["planner_updated"] == 0
    assert plan_of(synced).ids == []


def test_a_planner_edit_is_read_with_its_event_from_the_state_row(synced: World) -> None:
    synced.execute("UPDATE sesiones SET hora_fin = '12:00' WHERE id = 11")
    plan = plan_of(synced)
    assert plan.ids == [11] and set(plan.states) == {11}
    assert plan.remote[11].id == synced.event_of(11)["id"]
    report = synced.sync()
    assert {a.session_id: a.kind for a in report.actions} == {11: Kind.UPDATE_REMOTE}
    assert synced.event_of(11)["end"]["dateTime"] == "2026-12-02T12:00:00+01:00"


def test_a_phone_deletion_of_many_is_still_refused(synced: World) -> None:
    from planctl.sync.safety import UnsafeRunError

    with synced.calendar() as calendar:
        for session_id in range(10, 10 + EXTRA // 2):
            calendar.edit(str(session_id), status="cancelled")
    assert len(plan_of(synced).ids) == EXTRA // 2
    with pytest.raises(UnsafeRunError, match="cancel 20 of the 43 synced sessions"):
        synced.sync()
    assert synced.session(10).estado == "programada"


def test_a_killed_run_is_listed_again_and_never_duplicated(synced: World) -> None:
    synced.execute("UPDATE sesiones SET notas = 'x' WHERE id >= 10")
    with pytest.raises(InjectedFault):
        synced.sync(crash_after=7)
    report = synced.sync()
    assert report.count(Kind.CREATE_REMOTE) == 0
    assert all(len(events) == 1 for events in synced.events_by_session().values())
    assert synced.sync().remote_writes == 0 and plan_of(synced).ids == []


# -- a change to what a session's event shows besides its own row (point 4) ----------


@pytest.fixture
def two_clients(synced: World) -> World:
    """A second client with its own course, topic and contract, and 5 synced sessions."""
    from sqlalchemy import insert

    from planctl.db.engine import connect
    from planctl.db.schema import (
    clientes,
    clientes_finales,
    contrataciones,
    formaciones,
    sesiones,
    temas,
)

    with connect(target_of(synced.url)) as connection:
        connection.execute(insert(clientes), [{"id": 2, "empresa": "Otra, S.L.", "cif": "B2"}])
        connection.execute(insert(clientes_finales), [{"id": 1, "empresa": "Planta Norte"}])
        connection.execute(insert(temas), [{"id": 2, "nombre": "Datos"}])
        connection.execute(insert(formaciones), [{"id": 2, "tema_id": 2, "nombre": "SQL"}])
        connection.execute(
            insert(contrataciones),
            [{"id": 2, "cliente_id": 2, "cliente_final_id": 1, "formacion_id": 2,
              "expediente": "EXP-2", "modalidad": "online"}],
        )  # fmt: skip
        connection.execute(
            insert(sesiones),
            [
                {"id": 200 + n, "contratacion_id": 2, "fecha": dt.date(2027, 1, 4 + n),
                 "hora_inicio": dt.time(16), "hora_fin": dt.time(18), "estado": "programada"}
                for n in range(5)
            ],
        )  # fmt: skip
    assert synced.sync().count(Kind.CREATE_REMOTE) == 5
    assert plan_of(synced).ids == []
    return synced


SECOND = [200, 201, 202, 203, 204]


@pytest.mark.parametrize(
    ("change", "shown"),
    [
        ("UPDATE clientes SET empresa = 'Otra Formación, S.L.' WHERE id = 2", True),
        ("UPDATE clientes_finales SET empresa = 'Planta Sur' WHERE id = 1", False),
        ("UPDATE formaciones SET nombre = 'SQL para analistas' WHERE id = 2", True),
        ("UPDATE temas SET nombre = 'Datos y BI' WHERE id = 2", True),
        ("UPDATE contrataciones SET enlace_vc = 'https://meet.example.com/sql' WHERE id = 2", True),
        ("UPDATE contrataciones SET prioridad = 'alta' WHERE id = 2", False),
    ],
    ids=["client", "end client", "course", "topic", "contract link", "contract priority"],
)
def test_a_related_change_reads_and_rewrites_only_the_sessions_that_show_it(
    two_clients: World, change: str, shown: bool
) -> None:
    before = {sid: two_clients.event_of(sid)["etag"] for sid in (1, 2, 3, 10, *SECOND)}
    two_clients.execute(change)
    plan = plan_of(two_clients)
    assert plan.why_full is None and plan.ids == SECOND  # not the 48 other sessions
    report = two_clients.sync()
    kinds = {a.session_id: a.kind for a in report.actions}
    assert set(kinds) == set(SECOND) if shown else set(kinds) <= set(SECOND)
    # each event shows the change, or (a field no event shows) stays as it was
    after = {sid: two_clients.event_of(sid)["etag"] for sid in before}
    assert all(after[sid] == before[sid] for sid in (1, 2, 3, 10))
    expected = Kind.UPDATE_REMOTE if shown else Kind.RECORD  # a new fingerprint at most
    assert all(kind is expected for kind in kinds.values()), kinds
    assert all((after[sid] != before[sid]) is shown for sid in SECOND)
    assert two_clients.sync().remote_writes == 0


def test_a_renamed_client_reaches_the_event_title(two_clients: World) -> None:
    two_clients.execute("UPDATE clientes SET empresa = 'Otra Formación, S.L.' WHERE id = 2")
    two_clients.sync()
    assert two_clients.event_of(201)["summary"] == "SQL — Otra Formación, S.L."
    assert two_clients.event_of(1)["summary"] == "Excel avanzado — Ñandú, S.A."


# -- applied batch by batch: the report counts every action and keeps a bounded few ---------


def test_a_large_first_sync_keeps_a_bounded_report_and_lists_every_action(
    migrated_url: str, tmp_path: Path
) -> None:
    import json

    from planctl.sync.report import KEEP_ACTIONS

    make_tiny_planner(migrated_url)
    add_sessions(migrated_url, KEEP_ACTIONS + 200)
    world = World(migrated_url, tmp_path / "calendar.json")
    report = world.sync()
    created = 3 + KEEP_ACTIONS + 200
    assert report.summary()["calendar_created"] == report.remote_writes == created
    assert len(report.actions) == KEEP_ACTIONS and not report.complete
    listed = json.loads("".join(report.json_chunks()))["actions"]
    assert [a["session"] for a in listed] == sorted(world.active_session_ids())
    assert {a["action"] for a in listed} == {"create_remote"}
    assert len(world.live_events()) == created and set(world.states()) == {
        a["session"] for a in listed
    }
    report.close()
