"""The two-way sync engine against the simulated calendar, on SQLite and PostgreSQL.

One test per row of the decision table (docs/sync.md#the-decision-table), conflicts under each
policy, stale etags, tombstones, dry runs, idempotency and interrupted runs.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import func, select

from planctl.db.engine import connect
from planctl.db.schema import metadata
from planctl.errors import DatabaseError
from planctl.sync.backends.simulated import InjectedFault, SimulatedBackend
from planctl.sync.engine import COMMIT_EVERY, MAX_RETRIES, Kind, SyncOptions, SyncReport, run_sync

from .helpers import table_contents, target_of
from .sync_support import TZ, World, make_tiny_planner


@pytest.fixture
def world(migrated_url: str, tmp_path: Path) -> World:
    make_tiny_planner(migrated_url)
    return World(migrated_url, tmp_path / "calendar.json")


@pytest.fixture
def synced(world: World) -> World:
    """The tiny planner after a first sync: sessions 1-3 on the calendar."""
    report = world.sync()
    assert report.count(Kind.CREATE_REMOTE) == 3
    return world


def _kinds(report: SyncReport) -> dict[int, Kind]:
    return {a.session_id: a.kind for a in report.actions}


# -- first run, idempotency -----------------------------------------------------


def test_first_run_creates_one_event_per_active_session(world: World) -> None:
    report = world.sync()
    assert _kinds(report) == {1: Kind.CREATE_REMOTE, 2: Kind.CREATE_REMOTE, 3: Kind.CREATE_REMOTE}
    assert report.remote_writes == 3
    by_session = world.events_by_session()
    assert sorted(by_session) == [1, 2, 3]  # the cancelled session 4 is not on the calendar
    event = world.event_of(2)
    assert event["iCalUID"] == "sesion-2@planctl"
    assert event["summary"] == "Excel avanzado — Ñandú, S.A."
    assert event["location"] == "Calle Mayor 1, Madrid"
    assert event["start"] == {"dateTime": "2026-11-24T09:00:00+01:00", "timeZone": "Europe/Madrid"}
    assert event["status"] == "confirmed"
    assert event["etag"] and event["updated"] and len(event["id"]) == 32  # server-assigned
    assert set(world.states()) == {1, 2, 3}


def test_second_run_changes_nothing_on_either_side(seeded_url: str, tmp_path: Path) -> None:
    world = World(seeded_url, tmp_path / "calendar.json")
    first = world.sync()
    assert first.count(Kind.CREATE_REMOTE) == len(world.active_session_ids()) > 250
    planner, calendar, states = table_contents(seeded_url), world.store_bytes(), world.states()
    second = world.sync()
    assert second.remote_writes == 0
    assert not second.actions  # incremental: nothing changed, nothing read or decided
    assert second.summary()["unchanged"] == len(states)
    assert table_contents(seeded_url) == planner
    assert world.store_bytes() == calendar
    assert world.states() == states


# -- the decision table, one row at a time ----------------------------------------


def test_changed_in_planner_updates_the_event(synced: World) -> None:
    etag = synced.event_of(1)["etag"]
    synced.execute("UPDATE sesiones SET hora_fin = '14:00', direccion = 'Aula 3' WHERE id = 1")
    report = synced.sync()
    assert _kinds(report)[1] is Kind.UPDATE_REMOTE and report.remote_writes == 1
    event = synced.event_of(1)
    assert event["end"]["dateTime"] == "2026-11-23T14:00:00+01:00"
    assert event["location"] == "Aula 3"
    assert event["etag"] != etag and event["sequence"] == 1
    assert synced.sync().remote_writes == 0


def test_moved_on_calendar_moves_the_session(synced: World) -> None:
    with synced.calendar() as calendar:
        calendar.edit(
            "2", date=dt.date(2026, 12, 1), start_time=dt.time(10), end_time=dt.time(12, 30)
        )
        calendar.edit("3", location="Online: https://meet.example.com/x")
    before = synced.session(2)
    report = synced.sync()
    assert _kinds(report)[2] is Kind.UPDATE_LOCAL
    # a presencial session keeps the contract's address: the link is kept, the
    # event is put back to what the planner exports, and the run says so
    assert report.remote_writes == 1
    [noted] = report.noted
    assert noted.session_id == 3 and "location" in noted.note and "cannot be kept" in noted.note
    assert synced.event_of(3)["location"] == "Calle Mayor 1, Madrid"
    assert report.summary()["calendar_updated"] == 1
    assert report.summary()["planner_updated"] == 2
    after = synced.session(2)
    assert (after.fecha, after.hora_inicio, after.hora_fin) == (
        dt.date(2026, 12, 1),
        dt.time(10),
        dt.time(12, 30),
    )
    assert after.estado == "reprogramada"  # a moved programada session
    assert after.updated_at >= before.updated_at
    assert synced.session(3).enlace_vc == "https://meet.example.com/x"
    assert synced.sync().remote_writes == 0
    assert {a.kind for a in synced.sync().actions} <= {Kind.UNCHANGED}


def test_status_and_place_come_back_from_the_calendar(synced: World) -> None:
    with synced.calendar() as calendar:
        calendar.edit("1", status="tentative", location="Sala B")
    synced.sync()
    row = synced.session(1)
    assert (row.estado, row.direccion) == ("propuesta", "Sala B")


def test_a_title_edit_on_the_phone_is_recorded_not_copied(synced: World) -> None:
    before = table_contents(synced.url)
    with synced.calendar() as calendar:
        calendar.edit("1", summary="Excel (traer portátil)")
    report = synced.sync()
    assert _kinds(report)[1] is Kind.UPDATE_LOCAL  # nothing the planner keeps changed
    assert table_contents(synced.url) == before
    again = synced.sync()
    assert again.remote_writes == 0 and _kinds(again).get(1, Kind.UNCHANGED) is Kind.UNCHANGED


def test_etag_moved_without_a_change_is_only_recorded(synced: World) -> None:
    with synced.calendar() as calendar:
        calendar.patch(calendar.find("1")["id"], {})  # a phone that saves without changes
    before = table_contents(synced.url)
    report = synced.sync()
    assert _kinds(report)[1] is Kind.RECORD and report.remote_writes == 0
    assert table_contents(synced.url) == before
    assert synced.states()[1][1] == synced.event_of(1)["etag"]


def test_session_deleted_in_planner_deletes_the_event(synced: World) -> None:
    synced.execute("DELETE FROM sesiones WHERE id = 3")
    report = synced.sync()
    assert _kinds(report)[3] is Kind.DELETE_REMOTE
    assert 3 not in synced.events_by_session() and 3 not in synced.states()
    with synced.calendar() as calendar:  # Google keeps a cancelled tombstone
        tombstones = [e for e in calendar.list_events() if e["status"] == "cancelled"]
    assert [t["iCalUID"] for t in tombstones] == ["sesion-3@planctl"]
    assert 3 not in _kinds(synced.sync())  # the tombstone is nothing to act on


def test_session_cancelled_in_planner_deletes_the_event(synced: World) -> None:
    synced.execute("UPDATE sesiones SET estado = 'cancelada' WHERE id = 1")
    assert _kinds(synced.sync())[1] is Kind.DELETE_REMOTE
    assert 1 not in synced.events_by_session()
    assert synced.session(1).estado == "cancelada"


def test_event_deleted_on_calendar_cancels_the_session_never_deletes_it(synced: World) -> None:
    with synced.calendar() as calendar:
        calendar.remove("2")
    report = synced.sync()
    assert _kinds(report)[2] is Kind.CANCEL_LOCAL and report.remote_writes == 0
    row = synced.session(2)
    assert row is not None and row.estado == "cancelada"
    assert synced.states()[2][2:] == ("cancelled", "cancelled")  # still tracked: it exists
    again = synced.sync()  # a cancelled session is not put back on the calendar
    assert again.remote_writes == 0 and _kinds(again).get(2, Kind.UNCHANGED) is Kind.UNCHANGED


def test_re_enabling_a_session_cancelled_on_the_phone_restores_its_event(synced: World) -> None:
    event_id = synced.states()[2][0]
    with synced.calendar() as calendar:
        calendar.edit("2", status="cancelled")
    synced.sync()
    assert synced.session(2).estado == "cancelada"
    synced.execute("UPDATE sesiones SET estado = 'programada' WHERE id = 2")
    report = synced.sync()
    assert _kinds(report)[2] is Kind.UPDATE_REMOTE and not report.errors
    assert report.summary()["calendar_updated"] == 1
    event = synced.event_of(2)
    assert event["id"] == event_id and event["status"] == "confirmed"
    again = synced.sync()
    assert again.remote_writes == 0 and _kinds(again).get(2, Kind.UNCHANGED) is Kind.UNCHANGED


def test_un_cancelling_on_the_phone_restores_the_session(synced: World) -> None:
    synced.execute("UPDATE sesiones SET estado = 'cancelada' WHERE id = 3")
    synced.sync()
    assert 3 not in synced.events_by_session() and 3 in synced.states()
    event_id, model = synced.states()[3][0], synced.event_of(3 - 1)
    with synced.calendar() as calendar:  # the phone restores the deleted event
        assert calendar.events[event_id]["status"] == "cancelled"
        restored = {k: v for k, v in model.items() if k not in ("id", "etag", "iCalUID")}
        restored["extendedProperties"] = {"private": {"planctlSessionId": "3"}}
        restored["start"] = {"dateTime": "2026-11-25T16:00:00+01:00", "timeZone": TZ}
        restored["end"] = {"dateTime": "2026-11-25T18:00:00+01:00", "timeZone": TZ}
        calendar.update(event_id, restored)
    report = synced.sync()
    assert _kinds(report)[3] is Kind.UPDATE_LOCAL
    assert synced.session(3).estado == "programada"
    assert report.summary()["planner_updated"] == 1


@pytest.mark.parametrize(
    ("policy", "estado", "event_status"),
    [("local", "programada", "confirmed"), ("remote", "cancelada", None)],
)
def test_cancelled_on_the_phone_and_changed_in_planner_follows_the_policy(
    synced: World, policy: str, estado: str, event_status: str | None
) -> None:
    with synced.calendar() as calendar:
        calendar.edit("1", status="cancelled")
    synced.execute("UPDATE sesiones SET notas = 'otra aula' WHERE id = 1")
    synced.sync(policy=policy)
    assert synced.session(1).estado == estado
    events = synced.events_by_session().get(1, [])
    assert [e["status"] for e in events] == ([event_status] if event_status else [])


def test_event_cancelled_status_counts_as_deleted(synced: World) -> None:
    with synced.calendar() as calendar:
        calendar.edit("2", status="cancelled")
    synced.sync()
    assert synced.session(2).estado == "cancelada"


def test_gone_on_both_sides_forgets_the_state(synced: World) -> None:
    with synced.calendar() as calendar:
        calendar.remove("3")
    synced.execute("DELETE FROM sesiones WHERE id = 3")
    report = synced.sync()
    assert _kinds(report)[3] is Kind.FORGET and report.remote_writes == 0
    assert 3 not in synced.states()


def test_new_session_is_created_later(synced: World) -> None:
    synced.execute(
        "INSERT INTO sesiones (id, contratacion_id, fecha, hora_inicio, hora_fin, estado) "
        "VALUES (50, 1, '2026-12-10', '09:00', '10:00', 'propuesta')"
    )
    report = synced.sync()
    assert _kinds(report)[50] is Kind.CREATE_REMOTE and report.remote_writes == 1
    assert synced.event_of(50)["status"] == "tentative"


def test_events_not_created_by_planctl_are_left_alone(synced: World) -> None:
    with synced.calendar() as calendar:
        own = calendar.add("Dentista", dt.date(2026, 11, 23), dt.time(18), dt.time(19))
    report = synced.sync()
    assert [e.id for e in report.foreign] == [own["id"]]
    assert report.remote_writes == 0
    assert synced.live_events()[own["id"]]["etag"] == own["etag"]


def test_lost_state_adopts_existing_events_without_duplicates(synced: World) -> None:
    synced.execute("DELETE FROM planctl_sync_states")
    report = synced.sync()
    assert {a.kind for a in report.actions} == {Kind.RECORD} and report.remote_writes == 0
    assert all(len(v) == 1 for v in synced.events_by_session().values())
    assert set(synced.states()) == {1, 2, 3}


# -- conflicts ---------------------------------------------------------------------


def _edit_both_sides(world: World) -> None:
    world.execute("UPDATE sesiones SET hora_inicio = '08:00' WHERE id = 1")
    with world.calendar() as calendar:
        calendar.edit("1", start_time=dt.time(10))


def test_conflict_policy_local_keeps_the_planner(synced: World) -> None:
    _edit_both_sides(synced)
    report = synced.sync(policy="local")
    assert _kinds(report)[1] is Kind.UPDATE_REMOTE
    assert synced.event_of(1)["start"]["dateTime"] == "2026-11-23T08:00:00+01:00"
    assert synced.session(1).hora_inicio == dt.time(8)


def test_conflict_policy_remote_keeps_the_calendar(synced: World) -> None:
    _edit_both_sides(synced)
    report = synced.sync(policy="remote")
    assert _kinds(report)[1] is Kind.UPDATE_LOCAL and report.remote_writes == 0
    assert synced.session(1).hora_inicio == dt.time(10)


def test_conflict_policy_fail_changes_nothing_for_that_session(synced: World) -> None:
    _edit_both_sides(synced)
    synced.execute("UPDATE sesiones SET hora_fin = '17:00' WHERE id = 3")  # an ordinary change
    planner_row, event, state = synced.session(1), synced.event_of(1), synced.states()[1]
    report = synced.sync(policy="fail")
    assert [a.session_id for a in report.conflicts] == [1]
    assert _kinds(report)[3] is Kind.UPDATE_REMOTE  # other sessions still sync
    assert synced.session(1) == planner_row
    assert synced.event_of(1) == event
    assert synced.states()[1] == state
    assert [a.session_id for a in synced.sync(policy="fail").conflicts] == [1]  # still there


def test_same_change_on_both_sides_is_not_a_conflict(synced: World) -> None:
    synced.execute("UPDATE sesiones SET hora_inicio = '10:00' WHERE id = 1")
    with synced.calendar() as calendar:
        calendar.edit("1", start_time=dt.time(10))
    report = synced.sync(policy="fail")
    assert _kinds(report)[1] is Kind.RECORD and not report.conflicts


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("local", Kind.UPDATE_REMOTE), ("remote", Kind.CANCEL_LOCAL), ("fail", Kind.CONFLICT)],
)
def test_deleted_on_calendar_but_changed_in_planner(
    synced: World, policy: str, expected: Kind
) -> None:
    with synced.calendar() as calendar:
        calendar.remove("1")
    synced.execute("UPDATE sesiones SET notas = 'nuevo material' WHERE id = 1")
    report = synced.sync(policy=policy)
    assert _kinds(report)[1] is expected
    row = synced.session(1)
    if policy == "local":  # the deleted event (a tombstone) is restored, not duplicated
        assert row.estado == "programada" and len(synced.events_by_session()[1]) == 1
        assert synced.event_of(1)["id"] == synced.states()[1][0]
    elif policy == "remote":
        assert row.estado == "cancelada" and 1 not in synced.events_by_session()
    else:
        assert row.estado == "programada" and 1 not in synced.events_by_session()


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("local", Kind.DELETE_REMOTE), ("remote", Kind.FORGET), ("fail", Kind.CONFLICT)],
)
def test_deleted_in_planner_but_changed_on_calendar(
    synced: World, policy: str, expected: Kind
) -> None:
    with synced.calendar() as calendar:
        calendar.edit("3", location="Aula magna")
    synced.execute("DELETE FROM sesiones WHERE id = 3")
    report = synced.sync(policy=policy)
    assert _kinds(report)[3] is expected
    on_calendar = 3 in synced.events_by_session()
    assert on_calendar == (policy != "local")
    assert (3 in synced.states()) == (policy == "fail")


def test_cancelled_in_planner_but_changed_on_calendar_remote_wins_restores(synced: World) -> None:
    synced.execute("UPDATE sesiones SET estado = 'cancelada' WHERE id = 2")
    with synced.calendar() as calendar:
        calendar.edit("2", start_time=dt.time(11), end_time=dt.time(14))
    report = synced.sync(policy="remote")
    assert _kinds(report)[2] is Kind.UPDATE_LOCAL
    row = synced.session(2)
    assert (row.estado, row.hora_inicio, row.hora_fin) == ("programada", dt.time(11), dt.time(14))
    assert synced.sync().remote_writes == 0


# -- stale etags ---------------------------------------------------------------------


def test_stale_etag_is_retried_after_reading_the_event_again(synced: World) -> None:
    synced.execute("UPDATE sesiones SET hora_fin = '13:30' WHERE id = 1")
    with synced.calendar() as calendar:
        # the phone saves just before planctl's conditional update reaches the server
        calendar.before_write = lambda _op, _id: calendar.edit("1", location="Sala del móvil")
        report = run_sync(
            target_of(synced.url), SimulatedBackend(calendar), SyncOptions(timezone=TZ)
        )
        writes = calendar.writes
    assert _kinds(report)[1] is Kind.UPDATE_REMOTE  # re-read: both changed, policy local
    assert writes == 2  # the phone's edit and planctl's update, nothing else
    event = synced.event_of(1)
    assert event["end"]["dateTime"] == "2026-11-23T13:30:00+01:00"
    assert event["location"] == "Calle Mayor 1, Madrid"  # the planner won the conflict
    assert synced.sync().remote_writes == 0


def test_stale_etag_under_policy_fail_becomes_a_conflict(synced: World) -> None:
    synced.execute("UPDATE sesiones SET hora_fin = '13:30' WHERE id = 1")
    with synced.calendar() as calendar:
        calendar.before_write = lambda _op, _id: calendar.edit("1", location="Sala X")
        report = run_sync(
            target_of(synced.url),
            SimulatedBackend(calendar),
            SyncOptions(timezone=TZ, policy="fail"),
        )
    assert [a.session_id for a in report.conflicts] == [1]
    assert synced.event_of(1)["location"] == "Sala X"


def test_an_event_that_keeps_changing_is_an_error_not_a_loop(synced: World) -> None:
    synced.execute("UPDATE sesiones SET hora_fin = '13:30' WHERE id = 1")
    edits = []
    with synced.calendar() as calendar:

        def keep_editing(_op: str, _id: str | None) -> None:
            edits.append(1)
            calendar.edit("1", summary=f"edit {len(edits)}")
            calendar.before_write = keep_editing  # re-arm: every write races the phone

        calendar.before_write = keep_editing
        report = run_sync(
            target_of(synced.url), SimulatedBackend(calendar), SyncOptions(timezone=TZ)
        )
        calendar.before_write = None
    assert [a.session_id for a in report.errors] == [1]
    assert "kept changing" in report.errors[0].detail
    assert len(edits) == MAX_RETRIES + 1


# -- push, pull, ranges, dry runs ---------------------------------------------------------


def test_push_and_pull_go_one_way_only(synced: World) -> None:
    synced.execute("UPDATE sesiones SET hora_fin = '13:30' WHERE id = 1")
    with synced.calendar() as calendar:
        calendar.edit("2", start_time=dt.time(8))
    pushed = synced.sync(mode="push")
    assert _kinds(pushed)[1] is Kind.UPDATE_REMOTE
    assert _kinds(pushed)[2] is Kind.PENDING
    assert synced.session(2).hora_inicio == dt.time(9)
    pulled = synced.sync(mode="pull")
    assert _kinds(pulled)[2] is Kind.UPDATE_LOCAL and pulled.remote_writes == 0
    assert synced.session(2).hora_inicio == dt.time(8)
    assert synced.sync().remote_writes == 0


def test_since_until_limit_the_sessions_looked_at(synced: World) -> None:
    synced.execute("UPDATE sesiones SET notas = 'llevar proyector' WHERE id IN (1, 3)")
    report = synced.sync(since=dt.date(2026, 11, 24), until=dt.date(2026, 11, 30))
    assert _kinds(report) == {3: Kind.UPDATE_REMOTE} and report.summary()["unchanged"] == 1
    assert _kinds(synced.sync())[1] is Kind.UPDATE_REMOTE


def test_dry_run_writes_nothing_on_either_side(synced: World) -> None:
    synced.execute("UPDATE sesiones SET hora_fin = '13:30' WHERE id = 1")
    synced.execute("DELETE FROM sesiones WHERE id = 3")
    with synced.calendar() as calendar:
        calendar.edit("2", start_time=dt.time(8))
    planner, calendar_bytes = table_contents(synced.url), synced.store_bytes()
    states, runs = synced.states(), _runs(synced.url)
    report = synced.sync(dry_run=True)
    assert _kinds(report) == {
        1: Kind.UPDATE_REMOTE,
        2: Kind.UPDATE_LOCAL,
        3: Kind.DELETE_REMOTE,
    }
    assert report.remote_writes == 0
    assert table_contents(synced.url) == planner
    assert synced.store_bytes() == calendar_bytes
    assert not synced.store.with_name(synced.store.name + ".journal").exists()
    assert synced.states() == states and _runs(synced.url) == runs


def test_dry_run_on_a_fresh_calendar_creates_no_file(world: World) -> None:
    report = world.sync(dry_run=True)
    assert report.count(Kind.CREATE_REMOTE) == 3
    assert not world.store.exists()
    assert [p.name for p in world.store.parent.iterdir() if "calendar" in p.name] == []


def _runs(url: str) -> list[tuple[object, ...]]:
    table = metadata.tables["planctl_sync_runs"]
    with connect(target_of(url)) as connection:
        return [tuple(r) for r in connection.execute(select(table).order_by(table.c.id))]


def test_each_run_is_logged_in_the_run_table(synced: World) -> None:
    synced.sync()
    runs = _runs(synced.url)
    assert len(runs) == 2
    table = metadata.tables["planctl_sync_runs"]
    with connect(target_of(synced.url)) as connection:
        last = connection.execute(select(table).order_by(table.c.id.desc())).first()
    assert last is not None
    assert (last.mode, last.result, last.unchanged, last.created) == ("sync", "ok", 3, 0)


# -- interrupted runs -------------------------------------------------------------------------


@pytest.mark.parametrize("crash_after", [1, 57, 150])
def test_an_interrupted_first_run_converges_without_duplicates(
    seeded_url: str, tmp_path: Path, crash_after: int
) -> None:
    world = World(seeded_url, tmp_path / "calendar.json")
    with pytest.raises(InjectedFault):
        world.sync(crash_after=crash_after)
    assert len(world.live_events()) == crash_after  # the server kept what it acknowledged
    second = world.sync()
    active = world.active_session_ids()
    assert second.remote_writes == len(active) - crash_after  # nothing written twice
    # state rows are committed in batches: the uncommitted tail is adopted, not re-created
    assert second.count(Kind.RECORD) == crash_after % COMMIT_EVERY
    by_session = world.events_by_session()
    assert set(by_session) == active
    assert all(len(events) == 1 for events in by_session.values())
    third = world.sync()
    assert third.remote_writes == 0 and {a.kind for a in third.actions} <= {Kind.UNCHANGED}


def test_an_interrupted_update_run_converges(synced: World) -> None:
    synced.execute("UPDATE sesiones SET notas = 'aula nueva' WHERE id IN (1, 2, 3)")
    with pytest.raises(InjectedFault):
        synced.sync(crash_after=2)
    report = synced.sync()
    assert report.remote_writes == 1  # the one update the first run did not get to
    assert report.count(Kind.RECORD) == 2
    assert all("Notas: aula nueva" in synced.event_of(sid)["description"] for sid in (1, 2, 3))
    with connect(target_of(synced.url)) as connection:
        table = metadata.tables["planctl_sync_runs"]
        results = connection.execute(select(table.c.result).order_by(table.c.id)).scalars()
        assert list(results) == ["ok", "interrupted", "ok"]  # the failed run never finished


# -- preconditions -------------------------------------------------------------------------------


def test_unrepresentable_remote_change_is_an_error_and_leaves_the_session(synced: World) -> None:
    with synced.calendar() as calendar:
        calendar.edit("1", start_time=dt.time(22), end_time=dt.time(2))  # overnight
    before = synced.session(1)
    report = synced.sync()
    assert [a.session_id for a in report.errors] == [1]
    assert "not one slot within a day" in report.errors[0].detail
    assert synced.session(1) == before


def test_database_without_sync_tables_says_to_upgrade(db_url: str, tmp_path: Path) -> None:
    from planctl.db import migrate

    migrate.upgrade(target_of(db_url), "4150a15fd00a")
    world = World(db_url, tmp_path / "calendar.json")
    with pytest.raises(DatabaseError, match="db-upgrade"):
        world.sync()


def test_state_rows_are_one_per_session_and_backend(synced: World) -> None:
    table = metadata.tables["planctl_sync_states"]
    with connect(target_of(synced.url)) as connection:
        rows = connection.execute(
            select(table.c.backend, func.count()).group_by(table.c.backend)
        ).all()
    assert rows == [("simulated", 3)]


def test_a_second_event_claiming_a_session_is_listed_not_touched(synced: World) -> None:
    with synced.calendar() as calendar:
        copy = calendar.insert(
            {
                "summary": "copia",
                "start": {"dateTime": "2026-11-23T09:00:00+01:00"},
                "end": {"dateTime": "2026-11-23T10:00:00+01:00"},
                "extendedProperties": {"private": {"planctlSessionId": "1"}},
            }
        )
    report = synced.sync()
    assert [e.id for e in report.duplicates] == [copy["id"]]
    assert report.remote_writes == 0 and _kinds(report).get(1, Kind.UNCHANGED) is Kind.UNCHANGED


# -- no silent divergence: what the planner cannot hold is refused or put back, and said ---


def test_a_move_to_the_second_of_two_wall_times_is_an_error_not_an_hour_off(
    synced: World,
) -> None:
    with synced.calendar() as calendar:  # 02:30 CET, after the clocks went back at 03:00 CEST
        event = calendar.find("1")
        second = {"dateTime": "2026-10-25T02:30:00+01:00", "timeZone": TZ}
        end = {"dateTime": "2026-10-25T04:00:00+01:00", "timeZone": TZ}
        calendar.patch(event["id"], {"start": second, "end": end})
    before = table_contents(synced.url)
    report = synced.sync()
    [error] = report.errors
    assert error.session_id == 1 and "second time that hour occurs" in error.detail
    assert table_contents(synced.url) == before
    assert synced.sync().errors  # reported on every run until someone decides


def test_a_session_at_a_skipped_local_time_is_not_pushed_an_hour_off(synced: World) -> None:
    synced.execute(
        "INSERT INTO sesiones (id, contratacion_id, fecha, hora_inicio, hora_fin, estado) "
        "VALUES (60, 1, '2026-03-29', '02:30', '04:00', 'programada')"
    )
    report = synced.sync()
    [error] = report.errors
    assert error.session_id == 60 and "does not exist in Europe/Madrid" in error.detail
    assert 60 not in synced.events_by_session()


def test_a_place_cleared_on_the_phone_is_put_back_and_reported(synced: World) -> None:
    synced.execute("UPDATE sesiones SET direccion = 'Aula 4, Toledo' WHERE id = 2")
    synced.sync()
    with synced.calendar() as calendar:
        event = calendar.find("2")
        calendar.patch(event["id"], {"location": None})
    report = synced.sync()
    action = {a.session_id: a for a in report.actions}[2]
    assert action.kind is Kind.UPDATE_LOCAL and "location" in action.note
    # the planner falls back to the contract's address; the calendar shows it too now
    assert synced.session(2).direccion is None
    assert synced.event_of(2)["location"] == "Calle Mayor 1, Madrid"
    assert report.summary()["planner_updated"] == 1 and report.summary()["calendar_updated"] == 1
    again = synced.sync()
    assert again.remote_writes == 0 and _kinds(again).get(2, Kind.UNCHANGED) is Kind.UNCHANGED


def test_a_title_only_edit_is_not_counted_as_a_planner_update(synced: World) -> None:
    with synced.calendar() as calendar:
        calendar.edit("1", summary="Excel (traer portátil)")
    report = synced.sync(mode="pull")
    summary = report.summary()
    assert summary["planner_updated"] == 0 and summary["calendar_updated"] == 0
    push = synced.sync(mode="push")  # the title the planner exports goes back
    assert push.summary()["calendar_updated"] == 1
    assert synced.event_of(1)["summary"] == "Excel avanzado — Ñandú, S.A."


# -- fingerprints: a no-op run builds no event, and misses no change -----------------------


def test_older_state_rows_are_upgraded_without_a_write(synced: World) -> None:
    # state rows written before fingerprints held the content hash on both sides
    synced.execute("UPDATE planctl_sync_states SET local_hash = remote_hash")
    report = synced.sync()
    assert {a.kind for a in report.actions} == {Kind.RECORD} and report.remote_writes == 0
    assert all(row[2].startswith("~") for row in synced.states().values())
    again = synced.sync()
    assert {a.kind for a in again.actions} <= {Kind.UNCHANGED}


def test_a_touched_row_is_no_change_and_a_contract_change_is_one(synced: World) -> None:
    synced.execute("UPDATE sesiones SET updated_at = CURRENT_TIMESTAMP, notas = notas")
    touched = synced.sync()
    # The export's DTSTAMP follows updated_at, so the event's inputs moved: the engine may
    # record the new fingerprint, but nothing is written to the calendar.
    assert {a.kind for a in touched.actions} <= {Kind.UNCHANGED, Kind.RECORD}
    assert touched.remote_writes == 0
    # the client's name is in every event's title: a change that no session row shows
    synced.execute("UPDATE clientes SET empresa = 'Ñandú Formación, S.L.' WHERE id = 1")
    renamed = synced.sync()
    assert _kinds(renamed) == {s: Kind.UPDATE_REMOTE for s in (1, 2, 3)}
    assert synced.event_of(2)["summary"] == "Excel avanzado — Ñandú Formación, S.L."


def test_a_repetition_added_on_the_phone_is_removed_and_reported(synced: World) -> None:
    with synced.calendar() as calendar:
        event = calendar.find("3")
        calendar.patch(event["id"], {"recurrence": ["RRULE:FREQ=WEEKLY;COUNT=4"]})
    report = synced.sync()
    action = _kinds(report)[3], {a.session_id: a for a in report.actions}[3]
    assert action[0] is Kind.UPDATE_LOCAL and "recurring" in action[1].note
    assert "recurrence" not in synced.event_of(3)
    assert synced.sync().remote_writes == 0
