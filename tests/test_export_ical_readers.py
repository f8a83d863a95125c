"""Three independent iCalendar readers see every exported event at the same UTC instant.

icalendar, ical and vobject each build the zone from the file's own VTIMEZONE
(not from the system's zone database), across several daylight-saving changes,
for zones whose current rule holds (RRULE form) and for ones whose rules
changed in the exported years (one observance per change). And an event's
DTSTAMP and SEQUENCE move when anything it shows is renamed.
"""

from __future__ import annotations

import datetime as dt
import io
import zoneinfo
from pathlib import Path
from typing import Any

import icalendar
import pytest
import vobject
from ical.calendar_stream import IcsCalendarStream
from ical.timezone import IcsTimezoneInfo
from sqlalchemy import select, update

from planctl.db import migrate
from planctl.db.engine import connect
from planctl.db.schema import clientes, contrataciones, formaciones, sesiones
from planctl.export.ical import write_calendar

from .helpers import target_of
from .test_export_ical import insert_session

ZONES = [
    "Europe/Madrid",  # the default: last Sundays of March and October
    "America/New_York",  # second Sunday of March, first of November
    "Australia/Sydney",  # southern hemisphere: DST across the new year
    "Africa/Casablanca",  # Ramadan changes: no yearly rule, one observance per change
    "America/Santiago",  # a POSIX rule RRULE cannot state: the same fallback
]
TIMES = (dt.time(0, 30), dt.time(10), dt.time(23, 30))


def days_around_changes(zone: zoneinfo.ZoneInfo, first: dt.date, last: dt.date) -> list[dt.date]:
    """The day before, of and after every UTC offset change from *first* to *last*."""
    days: set[dt.date] = set()
    day = first
    while day < last:
        today = dt.datetime.combine(day, dt.time(12), tzinfo=zone).utcoffset()
        following = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(12), tzinfo=zone)
        if following.utcoffset() != today:
            days.update(day + dt.timedelta(days=d) for d in (-1, 0, 1, 2))
        day += dt.timedelta(days=1)
    return sorted(days)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    migrate.upgrade(target_of(url))
    return url


def export(url: str, timezone: str) -> bytes:
    out = io.BytesIO()
    with connect(target_of(url)) as connection:
        write_calendar(connection, out, timezone=timezone)
    return out.getvalue()


Instants = dict[str, tuple[dt.datetime, dt.datetime]]


def _instant(value: dt.datetime, zone: dt.tzinfo) -> dt.datetime:
    """A DTSTART/DTEND as an instant: UTC as written, else its wall time in *zone*."""
    if value.tzname() == "UTC":  # written with Z (a time the clocks skip or repeat)
        return value.astimezone(dt.UTC)
    return value.replace(tzinfo=None).replace(tzinfo=zone).astimezone(dt.UTC)


def with_icalendar(data: bytes) -> Instants:
    calendar = icalendar.Calendar.from_ical(data)
    zone = calendar.timezones[0].to_tz(lookup_tzid=False)  # the VTIMEZONE alone
    return {
        str(event["UID"]): (
            _instant(event.decoded("DTSTART"), zone),
            _instant(event.decoded("DTEND"), zone),
        )
        for event in calendar.walk("VEVENT")
    }


def with_ical(data: bytes) -> Instants:
    calendar = IcsCalendarStream.calendar_from_ics(data.decode("utf-8"))
    zone = IcsTimezoneInfo.from_timezone(calendar.timezones[0])
    out = {}
    for event in calendar.events:
        assert isinstance(event.dtstart, dt.datetime)  # timed sessions, never all-day
        assert isinstance(event.dtend, dt.datetime)
        out[str(event.uid)] = (_instant(event.dtstart, zone), _instant(event.dtend, zone))
    return out


def with_vobject(data: bytes) -> Instants:
    calendar: Any = vobject.readOne(data.decode("utf-8"))
    zone = calendar.vtimezone.gettzinfo()  # vobject's own reading of the VTIMEZONE
    out = {}
    for event in calendar.vevent_list:
        start, end = event.dtstart.value, event.dtend.value
        assert start.tzinfo is not None and end.tzinfo is not None
        out[event.uid.value] = (_instant(start, zone), _instant(end, zone))
        # And what vobject hands over unprompted for DTSTART;TZID=… agrees.
        assert start.astimezone(dt.UTC) == out[event.uid.value][0], event.uid.value
    return out


@pytest.mark.parametrize("timezone", ZONES)
def test_three_readers_agree_on_every_instant(sqlite_url: str, timezone: str) -> None:
    zone = zoneinfo.ZoneInfo(timezone)
    days = days_around_changes(zone, dt.date(2025, 1, 1), dt.date(2027, 12, 31))
    assert len(days) >= 3 * 4 or timezone == "Africa/Casablanca"
    expected = {}
    with connect(target_of(sqlite_url)) as connection:
        for day in days:
            for start in TIMES:
                end = (dt.datetime.combine(day, start) + dt.timedelta(minutes=20)).time()
                if end < start:
                    continue
                session = insert_session(connection, fecha=day, inicio=start, fin=end)
                wall = dt.datetime.combine(day, start, tzinfo=zone)
                if wall.astimezone(dt.UTC).astimezone(zone).replace(tzinfo=None) != wall.replace(
                    tzinfo=None
                ):
                    continue  # a wall time that does not exist that day: readers may differ
                expected[f"sesion-{session}@planctl"] = wall.astimezone(dt.UTC)
    data = export(sqlite_url, timezone)
    changes = {dt.datetime.combine(d, dt.time(12), tzinfo=zone).utcoffset() for d in days}
    assert len(changes) >= 2 and len(expected) >= 30
    for reader in (with_icalendar, with_ical, with_vobject):
        seen = {uid: start for uid, (start, _) in reader(data).items()}
        wrong = {
            uid: (seen.get(uid), when) for uid, when in expected.items() if seen.get(uid) != when
        }
        assert not wrong, (reader.__name__, sorted(wrong.items())[:3])


def test_madrid_vtimezone_is_two_yearly_rules(sqlite_url: str) -> None:
    with connect(target_of(sqlite_url)) as connection:
        insert_session(connection, fecha=dt.date(2026, 6, 1))
    data = export(sqlite_url, "Europe/Madrid").decode()
    block = data[data.index("BEGIN:VTIMEZONE") : data.index("END:VTIMEZONE")]
    assert "RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3" in block
    assert "RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10" in block
    assert "RDATE" not in block and block.count("DTSTART") == 2


@pytest.mark.parametrize(
    ("model", "column", "value"),
    [(clientes, "empresa", "Academia Renombrada"), (formaciones, "nombre", "Excel renombrado")],
)
def test_renaming_a_client_or_course_changes_dtstamp_and_sequence(
    sqlite_url: str, model: Any, column: str, value: str
) -> None:
    with connect(target_of(sqlite_url)) as connection:
        first = insert_session(connection, fecha=dt.date(2026, 6, 1))
        other = insert_session(
            connection, fecha=dt.date(2026, 6, 2), cliente="Otra", formacion="Otra"
        )
        created = connection.execute(
            select(sesiones.c.created_at).where(sesiones.c.id == first)
        ).scalar_one()
    before = icalendar.Calendar.from_ical(export(sqlite_url, "Europe/Madrid"))
    with connect(target_of(sqlite_url)) as connection:
        link = contrataciones.c.cliente_id if model is clientes else contrataciones.c.formacion_id
        row_id = connection.execute(
            select(link)
            .join(sesiones, sesiones.c.contratacion_id == contrataciones.c.id)
            .where(sesiones.c.id == first)
        ).scalar_one()
        connection.execute(
            update(model)
            .where(model.c.id == row_id)
            .values({column: value, "updated_at": created + dt.timedelta(seconds=75)})
        )
    after = icalendar.Calendar.from_ical(export(sqlite_url, "Europe/Madrid"))

    def by_uid(calendar: Any) -> dict[str, Any]:
        return {str(e["UID"]): e for e in calendar.walk("VEVENT")}

    old, new = by_uid(before), by_uid(after)
    uid, untouched = f"sesion-{first}@planctl", f"sesion-{other}@planctl"
    assert value in str(new[uid]["SUMMARY"])
    assert int(old[uid]["SEQUENCE"]) == 0 and int(new[uid]["SEQUENCE"]) == 75
    assert new[uid].decoded("DTSTAMP") == old[uid].decoded("DTSTAMP") + dt.timedelta(seconds=75)
    assert new[uid].decoded("LAST-MODIFIED") == new[uid].decoded("DTSTAMP")
    assert new[untouched].to_ical() == old[untouched].to_ical()


def offset_changes(
    zone: zoneinfo.ZoneInfo, first: dt.date, last: dt.date
) -> list[tuple[dt.datetime, dt.timedelta, dt.timedelta]]:
    """Every UTC offset change from *first* to *last*: (the wall time it happens at, by the
    clock before it; the offset before; the offset after)."""
    changes = []
    moment = dt.datetime.combine(first, dt.time(), tzinfo=dt.UTC)
    end = dt.datetime.combine(last, dt.time(), tzinfo=dt.UTC)
    offset = moment.astimezone(zone).utcoffset()
    while moment < end:
        moment += dt.timedelta(minutes=30)
        new = moment.astimezone(zone).utcoffset()
        assert offset is not None and new is not None
        if new != offset:
            changes.append(((moment + offset).replace(tzinfo=None), offset, new))
            offset = new
    return changes


def edge_sessions(
    change: dt.datetime, before: dt.timedelta, after: dt.timedelta
) -> list[tuple[dt.datetime, dt.datetime]]:
    """Wall-clock (start, end) pairs with a start or an end inside the skipped or repeated
    span of one change, or both."""
    span = abs(after - before)
    low, high = (change, change + span) if after > before else (change - span, change)
    middle = low + span / 2
    quarter = span / 4
    return [
        (middle, high + dt.timedelta(minutes=15)),  # starts inside, ends after
        (low - dt.timedelta(minutes=30), middle),  # starts before, ends inside
        (low + quarter, high - quarter),  # inside from start to end
    ]


@pytest.mark.parametrize("timezone", ZONES)
def test_sessions_in_skipped_and_repeated_hours_have_one_instant_in_every_reader(
    sqlite_url: str, timezone: str
) -> None:
    """A time the clocks skip is read with the offset before the gap, start and end alike;
    a repeated one is its first occurrence; DTEND never before DTSTART; every reader agrees."""
    zone = zoneinfo.ZoneInfo(timezone)
    expected: dict[str, tuple[dt.datetime, dt.datetime]] = {}
    kinds = {"skipped": 0, "repeated": 0}
    with connect(target_of(sqlite_url)) as connection:
        for change, before, after in offset_changes(zone, dt.date(2025, 1, 1), dt.date(2028, 1, 1)):
            kind = "skipped" if after > before else "repeated"
            for start, end in edge_sessions(change, before, after):
                if start.date() != end.date() or end <= start:
                    continue  # one slot within a day, as the planner keeps them
                session = insert_session(
                    connection, fecha=start.date(), inicio=start.time(), fin=end.time()
                )
                if kind == "skipped":  # both ends with the offset before the gap
                    instants = ((start - before), (end - before))
                    expected[f"sesion-{session}@planctl"] = tuple(  # type: ignore[assignment]
                        m.replace(tzinfo=dt.UTC) for m in instants
                    )
                else:  # the first occurrence (fold=0): RFC 5545
                    expected[f"sesion-{session}@planctl"] = (
                        start.replace(tzinfo=zone).astimezone(dt.UTC),
                        end.replace(tzinfo=zone).astimezone(dt.UTC),
                    )
                kinds[kind] += 1
    assert kinds["skipped"] >= 4 and kinds["repeated"] >= 4, kinds
    warnings: list[str] = []
    out = io.BytesIO()
    with connect(target_of(sqlite_url)) as connection:
        write_calendar(connection, out, timezone=timezone, warn=warnings.append)
    data = out.getvalue()
    for reader in (with_icalendar, with_ical, with_vobject):
        seen = reader(data)
        wrong = {
            uid: (seen.get(uid), want) for uid, want in expected.items() if seen.get(uid) != want
        }
        assert not wrong, (reader.__name__, sorted(wrong.items())[:3])
        assert all(end >= start for start, end in seen.values())
    assert len(warnings) == 1 and "does not exist in " + timezone in warnings[0]
    assert f"{kinds['skipped']} sessions at a time" in warnings[0]
