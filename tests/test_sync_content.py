"""What sync compares: content hashes that ignore server rewrites, and events → session fields."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from decimal import Decimal
from typing import Any

import icalendar
import pytest

from planctl.calendar.events import END_CALENDAR, calendar_header
from planctl.calendar.sessions import SessionView
from planctl.sync.backend import EventPayload
from planctl.sync.backends.simulated import content_from_resource, resource_from_payload
from planctl.sync.content import (
    EventContent,
    UnrepresentableEvent,
    content_from_vevent,
    session_changes,
    session_event,
    session_id_from_uid,
)

TZ = "Europe/Madrid"


def view(**changes: Any) -> SessionView:
    base = SessionView(
        id=7,
        fecha=dt.date(2026, 3, 29),  # the day summer time starts in Madrid
        hora_inicio=dt.time(9),
        hora_fin=dt.time(13, 30),
        estado="programada",
        direccion="Calle Mayor 1; 2ª planta, Madrid",
        enlace_vc=None,
        notas="Traer portátil,\ncargador",
        created_at=dt.datetime(2026, 1, 1, 10, 0),
        updated_at=dt.datetime(2026, 1, 2, 10, 0),
        contratacion_id=1,
        expediente="EXP-1",
        modalidad="presencial",
        persona_responsable="Ana",
        telefono_responsable=None,
        email_responsable=None,
        precio_hora=Decimal("60.00"),
        cliente_id=1,
        cliente="Ñandú, S.A.",
        cliente_color=None,
        cliente_final=None,
        formacion="Excel",
        nivel=None,
        tema="Ofimática",
    )
    return replace(base, **changes)


def _served(event: icalendar.Event, *, year: int = 2026) -> icalendar.Event:
    """The event as a server hands it back: inside a VCALENDAR with a VTIMEZONE, re-parsed."""
    data = calendar_header(TZ, dt.date(year, 1, 1), dt.date(year + 1, 1, 1))
    data += event.to_ical() + END_CALENDAR
    parsed = icalendar.Calendar.from_ical(data)
    found = next(iter(parsed.walk("VEVENT")))
    assert isinstance(found, icalendar.Event)
    return found


def test_a_session_and_its_served_event_hash_alike() -> None:
    event, content = session_event(view(), TZ)
    assert content_from_vevent(_served(event), TZ).digest() == content.digest()


def test_hash_ignores_what_servers_and_phones_rewrite() -> None:
    event, content = session_event(view(), TZ)
    served = _served(event)
    served["DTSTAMP"] = icalendar.vDDDTypes(dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
    served["SEQUENCE"] = 42
    served["LAST-MODIFIED"] = icalendar.vDDDTypes(dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
    served.add("X-APPLE-TRAVEL-ADVISORY-BEHAVIOR", "AUTOMATIC")
    served.add_component(icalendar.Alarm({"ACTION": "DISPLAY", "TRIGGER": "-PT15M"}))
    # the same instants, written in UTC instead of TZID=Europe/Madrid (no VTIMEZONE needed)
    served["DTSTART"] = icalendar.vDDDTypes(content.start.astimezone(dt.UTC))
    served["DTEND"] = icalendar.vDDDTypes(content.end.astimezone(dt.UTC))
    reparsed = icalendar.Event.from_ical(served.to_ical())
    assert isinstance(reparsed, icalendar.Event)
    assert content_from_vevent(reparsed, TZ).digest() == content.digest()


@pytest.mark.parametrize(
    ("prop", "value"),
    [
        ("DTSTART", dt.datetime(2026, 3, 29, 10, 0)),
        ("LOCATION", "Aula 2"),
        ("STATUS", "TENTATIVE"),
        ("SUMMARY", "Otra cosa"),
    ],
)
def test_hash_sees_real_changes(prop: str, value: Any) -> None:
    event, content = session_event(view(), TZ)
    served = _served(event)
    del served[prop]
    served.add(prop, value)
    assert content_from_vevent(served, TZ).digest() != content.digest()


def test_simulated_resources_round_trip_to_the_same_hash() -> None:
    event, content = session_event(view(enlace_vc="https://meet.example.com/a"), TZ)
    payload = EventPayload(7, "sesion-7@planctl", content, event, TZ)
    back = content_from_resource(resource_from_payload(payload), TZ)
    assert back == content and back.digest() == content.digest()


def test_uids() -> None:
    assert session_id_from_uid("sesion-12@planctl") == 12
    assert session_id_from_uid("sesion-12@elsewhere") is None
    assert session_id_from_uid("abc") is None and session_id_from_uid(None) is None


def _content(**changes: Any) -> EventContent:
    _, content = session_event(view(), TZ)
    return replace(content, **changes)


def _at(hour: int, minute: int = 0, day: int = 29) -> dt.datetime:
    from zoneinfo import ZoneInfo

    return dt.datetime(2026, 3, day, hour, minute, tzinfo=ZoneInfo(TZ))


def test_moved_event_changes_date_times_and_reschedules() -> None:
    changes = session_changes(view(), _content(start=_at(11, day=30), end=_at(14, day=30)), TZ)
    assert changes == {
        "fecha": dt.date(2026, 3, 30),
        "hora_inicio": dt.time(11),
        "hora_fin": dt.time(14),
        "estado": "reprogramada",
    }


def test_times_arrive_in_the_planner_time_zone() -> None:
    start = dt.datetime(2026, 3, 29, 8, 0, tzinfo=dt.UTC)  # 10:00 in Madrid (summer time)
    changes = session_changes(view(), _content(start=start, end=_at(13, 30)), TZ)
    assert changes["hora_inicio"] == dt.time(10)


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("Aula 3", {"direccion": "Aula 3"}),
        ("Online: https://meet.example.com/z", {"enlace_vc": "https://meet.example.com/z"}),
        (
            "Calle Sol 2 / Online: https://meet.example.com/z",
            {"direccion": "Calle Sol 2", "enlace_vc": "https://meet.example.com/z"},
        ),
        (None, {"direccion": None}),
    ],
)
def test_place_comes_back_as_address_or_link(location: str | None, expected: dict) -> None:
    assert session_changes(view(), _content(location=location), TZ) == expected


@pytest.mark.parametrize(
    ("status", "current", "expected"),
    [
        ("TENTATIVE", "programada", "propuesta"),
        ("CONFIRMED", "propuesta", "programada"),
        ("CONFIRMED", "reprogramada", "reprogramada"),
        ("CONFIRMED", "cancelada", "programada"),
        ("CANCELLED", "programada", "cancelada"),
    ],
)
def test_status_comes_back(status: str, current: str, expected: str) -> None:
    changes = session_changes(view(estado=current), _content(status=status), TZ)
    assert changes.get("estado", current) == expected


def test_unchanged_event_changes_nothing() -> None:
    assert session_changes(view(), _content(), TZ) == {}


@pytest.mark.parametrize(
    ("start", "end"),
    [(_at(22), _at(2, day=30)), (_at(12), _at(11)), (_at(12), _at(12))],
)
def test_events_a_session_cannot_hold(start: dt.datetime, end: dt.datetime) -> None:
    with pytest.raises(UnrepresentableEvent):
        session_changes(view(), _content(start=start, end=end), TZ)


def test_second_of_two_wall_times_is_refused_not_shifted() -> None:
    # 2026-10-25 in Madrid: 02:30 happens twice; 00:30 UTC is the first, 01:30 UTC the second
    first = dt.datetime(2026, 10, 25, 0, 30, tzinfo=dt.UTC)
    second = dt.datetime(2026, 10, 25, 1, 30, tzinfo=dt.UTC)
    hours = dt.timedelta(hours=2)
    ok = session_changes(view(), _content(start=first, end=first + hours), TZ)
    assert (ok["fecha"], ok["hora_inicio"]) == (dt.date(2026, 10, 25), dt.time(2, 30))
    with pytest.raises(UnrepresentableEvent, match="second time that hour occurs"):
        session_changes(view(), _content(start=second, end=second + hours), TZ)


def test_missing_and_existing_local_times() -> None:
    from planctl.sync.content import missing_local_time

    assert missing_local_time(dt.date(2026, 3, 29), dt.time(2, 30), TZ)  # skipped
    assert not missing_local_time(dt.date(2026, 3, 29), dt.time(3, 30), TZ)
    assert not missing_local_time(dt.date(2026, 10, 25), dt.time(2, 30), TZ)  # twice, exists
