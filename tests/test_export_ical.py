"""iCalendar export: every field read back by two independent parsers, on both engines.

The expected events are built here from the tables themselves (not through the
export's own view), then compared with what ``icalendar`` and ``ical`` parse
out of the bytes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import itertools
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import pytest
from ical.calendar_stream import IcsCalendarStream
from ical.timezone import IcsTimezoneInfo
from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection

from planctl import __version__
from planctl.calendar.events import session_to_event, session_uid
from planctl.calendar.sessions import SessionFilter, SessionView
from planctl.db.engine import connect
from planctl.db.schema import (
    ESTADOS_SESION,
    clientes,
    contrataciones,
    formaciones,
    sesiones,
    temas,
)
from planctl.errors import ConfigError, PlanctlError, UsageError
from planctl.export.ical import write_calendar

from .helpers import target_of

TZ = "Europe/Madrid"
MADRID = ZoneInfo(TZ)
STATUS = {
    "propuesta": "TENTATIVE",
    "programada": "CONFIRMED",
    "reprogramada": "CONFIRMED",
    "cancelada": "CANCELLED",
}
LINK = "https://meet.example.com/sala?id=1;x=2,3"

Event = dict[str, Any]  # one event's fields as this test compares them
AddSession = Callable[..., int]

DEFAULTS: dict[str, Any] = {
    "cliente": "Academia de Prueba, S.L.",
    "formacion": "Curso de prueba",
    "tema": "Tema de prueba",
    "expediente": None,  # generated
    "modalidad": "presencial",
    "direccion": "Calle Mayor, 1, Madrid",
    "enlace_vc": None,
    "persona": "Ana Pérez",
    "telefono": None,
    "email": None,
    "fecha": dt.date(2026, 9, 8),
    "inicio": dt.time(9),
    "fin": dt.time(13),
    "estado": "programada",
    "notas": None,
}
# Everything TEXT escaping must get right, and long multi-byte text to fold.
TRICKY: dict[str, Any] = {
    "cliente": 'Café "Olé"; Hostelería, S.L. \\ C:\\Nuevos\\nada',
    "formacion": "Excel: tablas, gráficos; macros \\ VBA\nnivel 2 — ñandú €",
    "tema": "Ofimática; hojas \\ cálculo ñ",
    "expediente": "EXP-2026; Ñ,1 \\ 2",
    "modalidad": "mixta",
    "direccion": "Calle de Alcalá, 12; 3º izq.\nMadrid",
    "enlace_vc": LINK,
    "persona": "Íñigo Núñez, hijo",
    "telefono": "+34 600 000 000",
    "email": "inigo@example.es",
    "notas": "Línea 1\nLínea 2, con coma; y punto y coma\n\\n no es salto; \\N tampoco\n"
    + "áéíóú ñ € 📅 " * 12
    + "fin.",
}
DST_CASES = [  # (day, UTC offset in hours at 10:00 Madrid time)
    (dt.date(2026, 3, 28), 1),
    (dt.date(2026, 3, 30), 2),
    (dt.date(2026, 10, 24), 2),
    (dt.date(2026, 10, 26), 1),
    (dt.date(2027, 3, 27), 1),
    (dt.date(2027, 3, 29), 2),
]
BASE_VIEW = SessionView(
    id=7,
    fecha=dt.date(2026, 3, 30),
    hora_inicio=dt.time(9, 30),
    hora_fin=dt.time(13),
    estado="programada",
    direccion="Calle Mayor, 1, Madrid",
    enlace_vc=None,
    notas="Traer portátil",
    created_at=dt.datetime(2026, 1, 10, 8, 0),
    updated_at=dt.datetime(2026, 1, 10, 8, 0),
    contratacion_id=3,
    expediente="EXP-2026-000003",
    modalidad="presencial",
    persona_responsable="Ana Pérez",
    telefono_responsable="+34 600 111 222",
    email_responsable="ana@example.es",
    precio_hora=None,
    cliente_id=2,
    cliente="Academia Cervantes",
    cliente_color=None,
    cliente_final=None,
    formacion="Excel básico",
    nivel="básico",
    tema="Ofimática",
)


# --- exporting and reading back -------------------------------------------------------------


def export(url: str, *, timezone: str = TZ, **filters: Any) -> tuple[int, bytes]:
    """Run write_calendar on *url*; returns (events written, bytes)."""
    out = io.BytesIO()
    with connect(target_of(url)) as connection:
        count = write_calendar(connection, out, timezone=timezone, filters=SessionFilter(**filters))
    return count, out.getvalue()


def wall_clock(moment: object) -> tuple[dt.datetime, dt.timedelta | None, str]:
    """A zoned time as (local time, UTC offset, zone name): all three must match."""
    assert isinstance(moment, dt.datetime)
    return moment.replace(tzinfo=None), moment.utcoffset(), str(moment.tzinfo)


def stamp(moment: object) -> tuple[dt.datetime, dt.timedelta | None] | None:
    """A UTC timestamp as (time, offset), so a non-UTC value cannot compare equal."""
    if moment is None:
        return None
    assert isinstance(moment, dt.datetime)
    return moment.replace(tzinfo=None), moment.utcoffset()


def utc(moment: dt.datetime) -> dt.datetime:
    """A database timestamp in UTC to the second (SQLite returns naive UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).replace(microsecond=0)


def text_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def read_with_icalendar(data: bytes) -> dict[str, Event]:
    """Events by UID, parsed by the icalendar package."""
    calendar = icalendar.Calendar.from_ical(data)
    return {str(event["UID"]): icalendar_fields(event) for event in calendar.walk("VEVENT")}


def icalendar_fields(event: Any) -> Event:
    return {
        "summary": str(event["SUMMARY"]),
        "location": text_or_none(event.get("LOCATION")),
        "description": str(event["DESCRIPTION"]),
        "url": text_or_none(event.get("URL")),
        "categories": [str(c) for c in event["CATEGORIES"].cats],
        "status": str(event["STATUS"]),
        "start": wall_clock(event.decoded("DTSTART")),
        "end": wall_clock(event.decoded("DTEND")),
        "dtstamp": stamp(event.decoded("DTSTAMP")),
        "last_modified": stamp(event.decoded("LAST-MODIFIED")),
        "created": stamp(event.decoded("CREATED")),
        "sequence": int(event["SEQUENCE"]),
    }


def read_with_ical(data: bytes) -> dict[str, Event]:
    """Events by UID, parsed by the independent ical package."""
    calendar = IcsCalendarStream.calendar_from_ics(data.decode("utf-8"))
    return {
        event.uid: {
            "summary": event.summary,
            "location": event.location,
            "description": event.description,
            "url": text_or_none(event.url),
            "categories": list(event.categories),
            "status": event.status.value if event.status else None,
            "start": wall_clock(event.dtstart),
            "end": wall_clock(event.dtend),
            "dtstamp": stamp(event.dtstamp),
            "last_modified": stamp(event.last_modified),
            "created": stamp(event.created),
            "sequence": event.sequence,
        }
        for event in calendar.events
    }


READERS = (read_with_icalendar, read_with_ical)


# --- what the database says -----------------------------------------------------------------


def expected_event(row: Any) -> Event:
    """The event a session row must become, written out from the mapping rules."""
    link = row.enlace_vc
    location = {
        "presencial": row.direccion,
        "online": f"Online: {link}",
        "mixta": f"{row.direccion} / Online: {link}",
    }[row.modalidad]
    contact = [row.persona_responsable, row.telefono_responsable, row.email_responsable]
    lines = [f"Expediente: {row.expediente}", f"Modalidad: {row.modalidad}"]
    if any(contact):
        lines.append("Contacto: " + ", ".join(part for part in contact if part))
    if row.notas:
        lines.append(f"Notas: {row.notas}")
    created, updated = utc(row.created_at), utc(row.updated_at)
    return {
        "summary": f"{row.formacion} — {row.empresa}",
        "location": location,
        "description": "\n".join(lines),
        "url": link,
        "categories": [row.tema],
        "status": STATUS[row.estado],
        "start": wall_clock(dt.datetime.combine(row.fecha, row.hora_inicio, tzinfo=MADRID)),
        "end": wall_clock(dt.datetime.combine(row.fecha, row.hora_fin, tzinfo=MADRID)),
        "dtstamp": stamp(updated),
        "last_modified": stamp(updated),
        "created": stamp(created),
        "sequence": int((updated - created).total_seconds()),
    }


def session_rows(url: str) -> list[Any]:
    """Every session joined with its contract, client, course and topic."""
    query = (
        select(
            sesiones.c.id,
            sesiones.c.fecha,
            sesiones.c.hora_inicio,
            sesiones.c.hora_fin,
            sesiones.c.estado,
            sesiones.c.notas,
            sesiones.c.created_at,
            sesiones.c.updated_at,
            func.coalesce(sesiones.c.direccion, contrataciones.c.direccion).label("direccion"),
            func.coalesce(sesiones.c.enlace_vc, contrataciones.c.enlace_vc).label("enlace_vc"),
            contrataciones.c.expediente,
            contrataciones.c.modalidad,
            contrataciones.c.persona_responsable,
            contrataciones.c.telefono_responsable,
            contrataciones.c.email_responsable,
            contrataciones.c.cliente_id,
            clientes.c.empresa,
            formaciones.c.nombre.label("formacion"),
            temas.c.nombre.label("tema"),
        )
        .join(contrataciones, sesiones.c.contratacion_id == contrataciones.c.id)
        .join(clientes, contrataciones.c.cliente_id == clientes.c.id)
        .join(formaciones, contrataciones.c.formacion_id == formaciones.c.id)
        .join(temas, formaciones.c.tema_id == temas.c.id)
        .order_by(sesiones.c.id)
    )
    with connect(target_of(url)) as connection:
        return list(connection.execute(query))


def database_events(url: str) -> dict[str, Event]:
    return {f"sesion-{row.id}@planctl": expected_event(row) for row in session_rows(url)}


def id_of(connection: Connection, model: Any, **values: Any) -> int:
    """The id of the row of *model* with *values*, inserted if missing."""
    found = connection.execute(select(model.c.id).filter_by(**values)).scalar()
    if found is not None:
        return int(found)
    inserted = insert(model).values(**values).returning(model.c.id)
    return int(connection.execute(inserted).scalar_one())


def insert_session(connection: Connection, **fields: Any) -> int:
    """One session with its own contract (client, course and topic found by name)."""
    f = {**DEFAULTS, **fields}
    tema_id = id_of(connection, temas, nombre=f["tema"])
    formacion_id = id_of(connection, formaciones, nombre=f["formacion"], tema_id=tema_id)
    cliente_id = id_of(connection, clientes, empresa=f["cliente"])
    number = connection.execute(select(func.count()).select_from(contrataciones)).scalar_one()
    contract = connection.execute(
        insert(contrataciones)
        .values(
            cliente_id=cliente_id,
            formacion_id=formacion_id,
            expediente=f["expediente"] or f"EXP-PRUEBA-{number + 1:04d}",
            modalidad=f["modalidad"],
            direccion=f["direccion"],
            enlace_vc=f["enlace_vc"],
            persona_responsable=f["persona"],
            telefono_responsable=f["telefono"],
            email_responsable=f["email"],
            estado="confirmado",
        )
        .returning(contrataciones.c.id)
    ).scalar_one()
    return int(
        connection.execute(
            insert(sesiones)
            .values(
                contratacion_id=contract,
                fecha=f["fecha"],
                hora_inicio=f["inicio"],
                hora_fin=f["fin"],
                estado=f["estado"],
                notas=f["notas"],
            )
            .returning(sesiones.c.id)
        ).scalar_one()
    )


@pytest.fixture
def add_session(migrated_url: str) -> AddSession:
    """``add_session(**fields)`` inserts one session (DEFAULTS otherwise); returns its id."""

    def add(**fields: Any) -> int:
        with connect(target_of(migrated_url)) as connection:
            return insert_session(connection, **fields)

    return add


# --- the demo data, field by field ----------------------------------------------------------


def test_every_event_matches_the_database(seeded_url: str) -> None:
    count, data = export(seeded_url)
    expected = database_events(seeded_url)
    assert count == len(expected) == 320
    assert {e["status"] for e in expected.values()} == {"TENTATIVE", "CONFIRMED", "CANCELLED"}
    for read in READERS:
        assert read(data) == expected, read.__name__
    starts = [e.decoded("DTSTART") for e in icalendar.Calendar.from_ical(data).walk("VEVENT")]
    assert starts == sorted(starts)  # streamed in date order


def test_calendar_properties_and_its_vtimezone(seeded_url: str) -> None:
    count, data = export(seeded_url)
    assert data.startswith(b"BEGIN:VCALENDAR\r\n") and data.endswith(b"\r\nEND:VCALENDAR\r\n")
    calendar = icalendar.Calendar.from_ical(data)
    assert {k: str(calendar[k]) for k in calendar} == {
        "PRODID": f"-//planctl//planctl {__version__}//ES",
        "VERSION": "2.0",
        "CALSCALE": "GREGORIAN",
        "X-WR-CALNAME": "Planificador — sesiones",
        "X-WR-TIMEZONE": TZ,
    }
    assert [tz.tz_name for tz in calendar.timezones] == [TZ]
    assert calendar.get_missing_tzids() == set()
    assert data.count(f"\r\nDTSTART;TZID={TZ}:".encode()) == count
    assert data.count(f"\r\nDTEND;TZID={TZ}:".encode()) == count
    other = IcsCalendarStream.calendar_from_ics(data.decode("utf-8"))
    assert (other.prodid, other.version, other.calscale, other.x_wr_timezone) == (
        f"-//planctl//planctl {__version__}//ES",
        "2.0",
        "GREGORIAN",
        TZ,
    )
    assert [tz.tz_id for tz in other.timezones] == [TZ]


def test_an_export_without_sessions_is_still_a_valid_calendar(seeded_url: str) -> None:
    count, data = export(seeded_url, since=dt.date(2031, 1, 1))
    assert count == 0
    calendar = icalendar.Calendar.from_ical(data)
    assert calendar.walk("VEVENT") == [] and len(calendar.timezones) == 1
    other = IcsCalendarStream.calendar_from_ics(data.decode("utf-8"))
    assert other.events == [] and len(other.timezones) == 1


# --- text -----------------------------------------------------------------------------------


def test_special_characters_survive_both_parsers(
    migrated_url: str, add_session: AddSession
) -> None:
    uid = f"sesion-{add_session(**TRICKY)}@planctl"
    _, data = export(migrated_url)
    contact = "Contacto: Íñigo Núñez, hijo, +34 600 000 000, inigo@example.es"
    expected = database_events(migrated_url)
    for read in READERS:
        events = read(data)
        assert events == expected, read.__name__
        event = events[uid]
        assert event["summary"] == f"{TRICKY['formacion']} — {TRICKY['cliente']}"
        assert event["location"] == f"{TRICKY['direccion']} / Online: {LINK}"
        assert event["description"] == (
            f"Expediente: {TRICKY['expediente']}\nModalidad: mixta\n{contact}\n"
            f"Notas: {TRICKY['notas']}"
        )
        assert event["categories"] == [TRICKY["tema"]]
        assert event["url"] == LINK


def test_a_comma_in_the_topic_stays_inside_one_category(
    migrated_url: str, add_session: AddSession
) -> None:
    add_session(tema="Prevención, seguridad; salud")
    _, data = export(migrated_url)
    assert "\r\nCATEGORIES:Prevención\\, seguridad\\; salud\r\n".encode() in data
    [event] = read_with_icalendar(data).values()
    assert event["categories"] == ["Prevención, seguridad; salud"]
    # Not read with ical: ical 14 splits CATEGORIES at every comma, escaped or not.


def test_lines_end_in_crlf_and_fold_at_75_octets_between_characters(
    seeded_url: str, add_session: AddSession
) -> None:
    add_session(**TRICKY)
    _, data = export(seeded_url)
    assert data.endswith(b"\r\n")
    lines = data[:-2].split(b"\r\n")
    assert not any(b"\r" in line or b"\n" in line for line in lines)  # no bare CR or LF
    assert max(len(line) for line in lines) <= 75
    for line in lines:
        line.decode("utf-8")  # raises if a fold cut a multi-byte character
    folds = [(a, b) for a, b in itertools.pairwise(lines) if b.startswith(b" ")]
    # some fold fell just before a multi-byte character that did not fit on the line
    assert any(len(a) < 74 and b[1] >= 0xC0 for a, b in folds)


@pytest.mark.parametrize(
    ("modalidad", "direccion", "enlace_vc", "location"),
    [
        ("presencial", "Calle Mayor, 1", None, "Calle Mayor, 1"),
        ("presencial", "Calle Mayor, 1", LINK, "Calle Mayor, 1"),
        ("presencial", None, LINK, f"Online: {LINK}"),
        ("online", None, LINK, f"Online: {LINK}"),
        ("online", "Calle Mayor, 1", LINK, f"Online: {LINK}"),
        ("online", None, None, "Online"),
        ("mixta", "Calle Mayor, 1", LINK, f"Calle Mayor, 1 / Online: {LINK}"),
        ("mixta", "Calle Mayor, 1", None, "Calle Mayor, 1"),
        ("mixta", None, LINK, f"Online: {LINK}"),
        (None, "Calle Mayor, 1", None, "Calle Mayor, 1"),
        (None, None, None, None),
    ],
)
def test_location_and_url_follow_the_modality(
    modalidad: str | None, direccion: str | None, enlace_vc: str | None, location: str | None
) -> None:
    view = dataclasses.replace(
        BASE_VIEW, modalidad=modalidad, direccion=direccion, enlace_vc=enlace_vc
    )
    event = icalendar.Event.from_ical(session_to_event(view, TZ).to_ical())
    assert text_or_none(event.get("LOCATION")) == location
    assert text_or_none(event.get("URL")) == enlace_vc


@pytest.mark.parametrize(
    ("persona", "telefono", "email", "contact_line"),
    [
        (
            "Ana Pérez",
            "+34 600",
            "ana@example.es",
            ["Contacto: Ana Pérez, +34 600, ana@example.es"],
        ),
        ("Ana Pérez", None, None, ["Contacto: Ana Pérez"]),
        (None, None, "ana@example.es", ["Contacto: ana@example.es"]),
        (None, None, None, []),
    ],
)
def test_description_lists_only_the_contact_details_that_exist(
    persona: str | None, telefono: str | None, email: str | None, contact_line: list[str]
) -> None:
    view = dataclasses.replace(
        BASE_VIEW,
        persona_responsable=persona,
        telefono_responsable=telefono,
        email_responsable=email,
    )
    event = icalendar.Event.from_ical(session_to_event(view, TZ).to_ical())
    assert str(event["DESCRIPTION"]).split("\n") == [
        "Expediente: EXP-2026-000003",
        "Modalidad: presencial",
        *contact_line,
        "Notas: Traer portátil",
    ]


def test_control_characters_are_dropped_and_tabs_kept() -> None:
    view = dataclasses.replace(BASE_VIEW, notas="antes\x07\x1b después\tdel tabulador")
    event = icalendar.Event.from_ical(session_to_event(view, TZ).to_ical())
    assert str(event["DESCRIPTION"]).endswith("Notas: antes después\tdel tabulador")


# --- time -----------------------------------------------------------------------------------


def test_offsets_on_both_sides_of_daylight_saving_changes(
    migrated_url: str, add_session: AddSession
) -> None:
    ids = {
        add_session(fecha=day, inicio=dt.time(10), fin=dt.time(12)): (day, dt.timedelta(hours=h))
        for day, h in DST_CASES
    }
    _, data = export(migrated_url)
    for read in READERS:
        events = read(data)
        for session_id, (day, offset) in ids.items():
            event = events[f"sesion-{session_id}@planctl"]
            assert event["start"] == (dt.datetime.combine(day, dt.time(10)), offset, TZ), day
            assert event["end"] == (dt.datetime.combine(day, dt.time(12)), offset, TZ), day
    # The VTIMEZONE alone, without the system's zone database, gives the same offsets.
    zones = [
        icalendar.Calendar.from_ical(data).timezones[0].to_tz(lookup_tzid=False),
        IcsTimezoneInfo.from_timezone(
            IcsCalendarStream.calendar_from_ics(data.decode("utf-8")).timezones[0]
        ),
    ]
    for zone in zones:
        for day, offset in ids.values():
            assert dt.datetime.combine(day, dt.time(10), tzinfo=zone).utcoffset() == offset, day


@pytest.mark.parametrize(
    ("updated_at", "expected"),
    [
        (dt.datetime(2026, 5, 1, 10, 0, 0, 123456), "20260501T100000Z"),  # SQLite: naive UTC
        (dt.datetime(2026, 5, 1, 12, 0, tzinfo=MADRID), "20260501T100000Z"),  # PostgreSQL
    ],
)
def test_stamps_are_utc_and_sequence_counts_seconds_since_creation(
    updated_at: dt.datetime, expected: str
) -> None:
    view = dataclasses.replace(
        BASE_VIEW, created_at=dt.datetime(2026, 5, 1, 9, 58, 20), updated_at=updated_at
    )
    event: Any = icalendar.Event.from_ical(session_to_event(view, TZ).to_ical())
    assert event.decoded("DTSTAMP") == event.decoded("LAST-MODIFIED")
    lines = session_to_event(view, TZ).to_ical().decode().split("\r\n")
    assert f"DTSTAMP:{expected}" in lines and f"LAST-MODIFIED:{expected}" in lines
    assert "CREATED:20260501T095820Z" in lines
    assert int(event["SEQUENCE"]) == 100


def test_an_edit_raises_the_sequence_and_stamps_of_that_event_only(seeded_url: str) -> None:
    _, before = export(seeded_url)
    with connect(target_of(seeded_url)) as connection:
        created = connection.execute(
            select(sesiones.c.created_at).where(sesiones.c.id == 1)
        ).scalar_one()
        connection.execute(
            update(sesiones)
            .where(sesiones.c.id == 1)
            .values(estado="cancelada", updated_at=created + dt.timedelta(seconds=90))
        )
    _, after = export(seeded_url)
    uid = "sesion-1@planctl"
    for read in READERS:
        old, new = read(before), read(after)
        assert old[uid]["sequence"] == 0
        assert new[uid]["sequence"] == 90 and new[uid]["status"] == "CANCELLED"
        edited = stamp(utc(created) + dt.timedelta(seconds=90))
        assert new[uid]["dtstamp"] == new[uid]["last_modified"] == edited
        assert new[uid]["created"] == old[uid]["created"]
        del old[uid], new[uid]
        assert new == old, read.__name__


# --- identity -------------------------------------------------------------------------------


def test_session_uid() -> None:
    assert session_uid(42) == "sesion-42@planctl"
    assert session_uid(42, "formacion.example.es") == "sesion-42@formacion.example.es"


def test_uids_and_bytes_are_stable(seeded_url: str) -> None:
    first, second = export(seeded_url), export(seeded_url)
    assert first == second
    _, data = first
    uids = {f"sesion-{row.id}@planctl" for row in session_rows(seeded_url)}
    for read in READERS:
        assert set(read(data)) == uids, read.__name__
    assert data.count(b"\r\nUID:") == len(uids)


# --- filters and statuses -------------------------------------------------------------------

FILTER_CASES: dict[str, tuple[dict[str, Any], Callable[[Any], bool]]] = {
    "since": ({"since": dt.date(2027, 1, 1)}, lambda r: r.fecha >= dt.date(2027, 1, 1)),
    "until": ({"until": dt.date(2026, 10, 31)}, lambda r: r.fecha <= dt.date(2026, 10, 31)),
    "since-until": (
        {"since": dt.date(2026, 11, 1), "until": dt.date(2026, 12, 31)},
        lambda r: dt.date(2026, 11, 1) <= r.fecha <= dt.date(2026, 12, 31),
    ),
    "client-id": ({"client": "3"}, lambda r: r.cliente_id == 3),
    "client-name": (
        {"client": "TRANSPORTES PEÑALARA, S.L."},
        lambda r: r.empresa == "Transportes Peñalara, S.L.",
    ),
    "statuses": (
        {"statuses": ["propuesta", "reprogramada"]},
        lambda r: r.estado in ("propuesta", "reprogramada"),
    ),
    "without-cancelled": ({"include_cancelled": False}, lambda r: r.estado != "cancelada"),
    "client-and-status": (
        {"client": "Academia Cervantes", "statuses": ["programada"]},
        lambda r: r.empresa == "Academia Cervantes" and r.estado == "programada",
    ),
}


@pytest.mark.parametrize(("filters", "keep"), list(FILTER_CASES.values()), ids=list(FILTER_CASES))
def test_filters_select_the_matching_sessions(
    seeded_url: str, filters: dict[str, Any], keep: Callable[[Any], bool]
) -> None:
    count, data = export(seeded_url, **filters)
    wanted = {f"sesion-{row.id}@planctl" for row in session_rows(seeded_url) if keep(row)}
    assert 0 < len(wanted) < 320
    assert count == len(wanted)
    for read in READERS:
        assert set(read(data)) == wanted, read.__name__


@pytest.mark.parametrize(
    ("arguments", "error", "message", "hint"),
    [
        (
            {"filters": SessionFilter(client="Transportes Penalara")},
            UsageError,
            "unknown client 'Transportes Penalara'",
            "did you mean 'Transportes Peñalara, S.L.'?",
        ),
        (
            {"filters": SessionFilter(statuses=["cancelado"])},
            UsageError,
            "unknown session status 'cancelado'",
            "use one of propuesta, programada, reprogramada, cancelada",
        ),
        (
            {"timezone": "Europe/Madird"},
            ConfigError,
            "unknown time zone 'Europe/Madird' (PLANCTL_TIMEZONE)",
            "did you mean 'Europe/Madrid'?",
        ),
    ],
    ids=["client", "status", "timezone"],
)
def test_bad_arguments_fail_before_anything_is_written(
    seeded_url: str,
    arguments: dict[str, Any],
    error: type[PlanctlError],
    message: str,
    hint: str,
) -> None:
    out = io.BytesIO()
    with connect(target_of(seeded_url)) as connection, pytest.raises(error) as raised:
        write_calendar(connection, out, **{"timezone": TZ, **arguments})
    assert (raised.value.message, raised.value.hint) == (message, hint)
    assert out.getvalue() == b""


@pytest.mark.parametrize("estado", ESTADOS_SESION)
def test_status_follows_the_session_estado(
    migrated_url: str, add_session: AddSession, estado: str
) -> None:
    add_session(estado=estado)
    _, data = export(migrated_url)
    for read in READERS:
        [event] = read(data).values()
        assert event["status"] == STATUS[estado], read.__name__


def test_direct_serialisation_is_byte_identical_to_icalendar(seeded_url: str) -> None:
    """The streamed VEVENTs are written directly (fast); they must be exactly what
    icalendar writes for session_to_event, for every demo session and for hostile text."""
    from planctl.calendar.events import event_bytes
    from planctl.calendar.sessions import iter_sessions

    with connect(target_of(seeded_url)) as connection:
        views = list(iter_sessions(connection))
    long = "Ñ" * 40 + "\\" * 3 + "x" * 37 + ";,\\\n" * 9 + "€" * 30
    views += [
        dataclasses.replace(
            BASE_VIEW,
            cliente=long,
            formacion="a" * 60 + "\\" + "b" * 20,
            tema="Tema, con; comas\\",
            notas="Línea 1\r\nLínea 2\rLínea 3\x07 fin\t",
            direccion=None,
            enlace_vc="https://meet.example/x?a=1&b=2",
            modalidad="mixta",
            changed_at=dt.datetime(2026, 2, 1, 9, 0, tzinfo=dt.UTC),
        ),
        dataclasses.replace(BASE_VIEW, created_at=None, updated_at=None, estado="cancelada"),
    ]
    assert len(views) > 300
    for view in views:
        for timezone in (TZ, "America/New_York"):
            assert event_bytes(view, timezone) == session_to_event(view, timezone).to_ical()
