"""The simulated calendar behaves like Google Calendar's events API, and its file is crash-safe."""

from __future__ import annotations

import datetime as dt
import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from planctl.errors import LockedError, NothingToDoError, SyncError
from planctl.sync.backend import StaleEtagError
from planctl.sync.backends import simulated
from planctl.sync.backends.simulated import SimulatedCalendar

DAY = dt.date(2026, 11, 23)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "calendar.json"


def test_server_assigns_ids_etags_and_updated(store: Path) -> None:
    calendar = SimulatedCalendar(store)
    first = calendar.add("Uno", DAY, dt.time(9), dt.time(10))
    second = calendar.add("Dos", DAY, dt.time(11), dt.time(12))
    assert first["id"] != second["id"] and first["etag"] != second["etag"]
    edited = calendar.patch(first["id"], {"summary": "Uno bis"})
    assert edited["etag"] != first["etag"]
    assert edited["updated"] >= first["updated"]
    assert (edited["sequence"], edited["created"]) == (1, first["created"])
    calendar.close()


def test_conditional_writes_fail_on_a_stale_etag(store: Path) -> None:
    calendar = SimulatedCalendar(store)
    event = calendar.add("Uno", DAY, dt.time(9), dt.time(10))
    calendar.patch(event["id"], {"location": "Aula 1"})  # someone else's write
    with pytest.raises(StaleEtagError):
        calendar.update(event["id"], {"summary": "x"}, if_match=event["etag"])
    with pytest.raises(StaleEtagError):
        calendar.delete(event["id"], if_match=event["etag"])
    kept = calendar.get_event(event["id"])
    assert kept is not None and kept["location"] == "Aula 1"
    calendar.close()


def test_deleted_events_stay_as_cancelled_tombstones(store: Path) -> None:
    calendar = SimulatedCalendar(store)
    event = calendar.add("Uno", DAY, dt.time(9), dt.time(10))
    calendar.remove(event["id"])
    tombstone = calendar.get_event(event["id"])
    assert tombstone is not None and tombstone["status"] == "cancelled"
    assert tombstone["etag"] != event["etag"]
    assert calendar.list_events(show_deleted=False) == []
    with pytest.raises(KeyError):  # a patch of a deleted event: 410 Gone
        calendar.patch(event["id"], {"summary": "x"})
    calendar.delete(event["id"])  # deleting again is fine
    restored = calendar.update(
        event["id"], {"summary": "Uno", "start": event["start"], "end": event["end"]}
    )  # Google's "undelete"
    assert restored["status"] == "confirmed" and restored["id"] == event["id"]
    assert [e["id"] for e in calendar.list_events(show_deleted=False)] == [event["id"]]
    with pytest.raises(NothingToDoError):
        calendar.find(event["id"] + "x")
    calendar.close()


def test_store_survives_reopening_and_is_private(store: Path) -> None:
    calendar = SimulatedCalendar(store)
    event = calendar.add("Ñandú, reunión", DAY, dt.time(9), dt.time(10))
    calendar.close()
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    assert not store.with_name(store.name + ".journal").exists()
    again = SimulatedCalendar(store)
    assert again.get_event(event["id"]) == event
    again.close()


def test_a_killed_writer_loses_nothing_it_acknowledged(store: Path) -> None:
    code = (
        "import datetime as dt, os, sys\n"
        "from planctl.sync.backends.simulated import SimulatedCalendar\n"
        f"c = SimulatedCalendar(__import__('pathlib').Path({str(store)!r}))\n"
        "for i in range(3):\n"
        "    e = c.add(f'e{i}', dt.date(2026, 11, 23), dt.time(9), dt.time(10))\n"
        "    print(e['id'], flush=True)\n"
        "c.store.db.execute('BEGIN IMMEDIATE')\n"
        "c.store.db.execute('DELETE FROM events')  # a write cut in the middle\n"
        "os._exit(9)  # no close, no checkpoint: like kill -9\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 9, done.stderr
    acknowledged = done.stdout.split()
    calendar = SimulatedCalendar(store)
    assert sorted(e["id"] for e in calendar.list_events()) == sorted(acknowledged)
    new = calendar.add("after", DAY, dt.time(11), dt.time(12))
    calendar.close()
    again = SimulatedCalendar(store)
    assert set(again.events) == {*acknowledged, new["id"]}
    again.close()


def _write_json_store(store: Path) -> Path:
    """A store of planctl before the emulator: a JSON snapshot and a journal (torn last line)."""
    event = {
        "kind": "calendar#event",
        "id": "a1b2c3d4e5",
        "etag": '"7"',
        "status": "confirmed",
        "summary": "Uno",
        "iCalUID": "sesion-1@planctl",
        "start": {"dateTime": "2026-11-23T09:00:00+01:00", "timeZone": "Europe/Madrid"},
        "end": {"dateTime": "2026-11-23T10:00:00+01:00", "timeZone": "Europe/Madrid"},
        "extendedProperties": {"private": {"planctlSessionId": "1"}},
    }
    snapshot = {
        "format": "planctl-simulated-calendar",
        "version": 1,
        "time_zone": "Europe/Madrid",
        "next_etag": 8,
        "events": {event["id"]: event},
    }
    store.write_text(json.dumps(snapshot))
    journal = store.with_name(store.name + ".journal")
    later = {**event, "id": "f0f0f0f0f0", "etag": '"8"', "summary": "Dos"}
    journal.write_text(
        json.dumps({"event": later, "next_etag": 9}) + "\n" + '{"event": {"id": "half'
    )
    return journal


def test_a_json_store_of_older_planctl_is_migrated_keeping_ids_and_etags(store: Path) -> None:
    journal = _write_json_store(store)
    read_only = SimulatedCalendar(store, migrate=False)  # a dry run reads it in memory
    assert len(read_only.list_events()) == 2
    read_only.close()
    assert journal.exists() and not store.with_name(store.name + ".json-v1").exists()
    calendar = SimulatedCalendar(store)
    assert {e["id"]: e["etag"] for e in calendar.list_events()} == {
        "a1b2c3d4e5": '"7"',
        "f0f0f0f0f0": '"8"',
    }
    assert calendar.add("tres", DAY, dt.time(11), dt.time(12))["etag"] == '"9"'
    calendar.close()
    assert not journal.exists() and store.with_name(store.name + ".json-v1").exists()


# -- the default store under its former (Spanish) name -------------------------------------------


def _named_after(path: Path) -> set[str]:
    """The suffixes of the files named after *path* ("" is *path* itself)."""
    return {p.name[len(path.name) :] for p in path.parent.iterdir() if p.name.startswith(path.name)}


@pytest.fixture
def names(tmp_path: Path) -> tuple[Path, Path]:
    """(former, new) default names of one database's store."""
    return (
        tmp_path / "planner.db.calendario_simulado.json",
        tmp_path / "planner.db.planctl-calendar.sqlite",
    )


def test_a_move_cut_short_is_finished_by_the_next_open(names: tuple[Path, Path]) -> None:
    former, new = names
    calendar = SimulatedCalendar(former)
    calendar.add("Uno", DAY, dt.time(9), dt.time(10))
    calendar.close()
    former.with_name(former.name + ".mirror").write_bytes(b"cache")
    # killed after moving the companions, before the store: the store keeps its old name
    (former.parent / (former.name + ".mirror")).rename(new.with_name(new.name + ".mirror"))
    assert _named_after(former) == {""} and _named_after(new) == {".mirror"}
    calendar = SimulatedCalendar(new, former=former)
    assert calendar.path == new and [e["summary"] for e in calendar.list_events()] == ["Uno"]
    calendar.close()
    assert _named_after(former) == set() and _named_after(new) == {"", ".mirror"}


def test_a_store_at_the_new_name_wins_and_the_former_is_left_alone(
    names: tuple[Path, Path],
) -> None:
    former, new = names
    for path, summary in ((former, "old"), (new, "new")):
        calendar = SimulatedCalendar(path)
        calendar.add(summary, DAY, dt.time(9), dt.time(10))
        calendar.close()
    calendar = SimulatedCalendar(new, former=former)
    assert [e["summary"] for e in calendar.list_events()] == ["new"]
    calendar.close()
    assert former.exists()


def test_a_json_store_under_the_former_name_is_moved_then_migrated(
    names: tuple[Path, Path],
) -> None:
    former, new = names
    _write_json_store(former)
    calendar = SimulatedCalendar(new, former=former)
    assert {e["summary"] for e in calendar.list_events()} == {"Uno", "Dos"}
    calendar.close()
    assert _named_after(former) == set() and _named_after(new) == {"", ".json-v1"}
    assert simulated.is_store_file(new)


def test_one_process_at_a_time(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(simulated, "LOCK_WAIT_SECONDS", 0.2)
    holder = SimulatedCalendar(store)
    with pytest.raises(LockedError, match="in use"):
        SimulatedCalendar(store)
    holder.close()
    SimulatedCalendar(store).close()


def test_a_file_that_is_not_a_calendar_is_refused(store: Path) -> None:
    store.write_text("[1, 2, 3]")
    with pytest.raises(SyncError, match="not a readable simulated calendar"):
        SimulatedCalendar(store)
    with pytest.raises(SyncError, match="does not exist"):
        SimulatedCalendar(store.parent / "missing" / "calendar.json")


def test_phone_edits_keep_the_times_not_given(store: Path) -> None:
    calendar = SimulatedCalendar(store, timezone="Europe/Madrid")
    event = calendar.add("Uno", DAY, dt.time(9), dt.time(10, 30))
    moved = calendar.edit(event["id"], date=dt.date(2026, 12, 1))
    assert moved["start"]["dateTime"] == "2026-12-01T09:00:00+01:00"
    assert moved["end"]["dateTime"] == "2026-12-01T10:30:00+01:00"
    later = calendar.edit(event["id"], end_time=dt.time(11))
    assert later["start"] == moved["start"] and later["end"]["dateTime"].endswith("11:00:00+01:00")
    calendar.close()
