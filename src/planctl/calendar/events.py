"""A session as an RFC 5545 event, and the calendar around events.

The iCalendar export streams these events (:mod:`planctl.export.ical`); sync
writes them to calendars and compares against them (:mod:`planctl.sync`).

- ``UID`` is ``sesion-<id>@planctl``: stable for the life of the session.
- ``DTSTAMP`` and ``LAST-MODIFIED`` are the latest ``updated_at`` of the
  session and of every row the event shows (contract, client, final client,
  course, topic) in UTC (``CREATED`` the session's ``created_at``), never the
  export time: two exports of unchanged data are identical, and renaming a
  client or a course changes them. SQLite returns these naive, in UTC.
- ``SEQUENCE`` is the whole seconds from ``created_at`` to that latest
  ``updated_at``: 0 for a session never edited, and larger after every edit
  of anything it shows (``updated_at`` only moves forward), so clients accept
  the newer version of an event. Two edits within one second share a value.
- ``DTSTART``/``DTEND`` are the wall-clock times with ``TZID=<timezone>``;
  :func:`calendar_header` carries the zone's VTIMEZONE
  (:func:`planctl.calendar.tzrules.time_zone`). A session with a time the
  clocks skip or repeat is written in UTC instead, at the instants of
  :func:`planctl.calendar.zones.session_instants` (the rule sync uses too).
- :func:`event_bytes` writes the VEVENT of :func:`session_to_event` directly,
  byte for byte, for streaming.
"""

from __future__ import annotations

import datetime as dt
import re

from icalendar import Calendar, Event, vCategory, vText

from planctl import __version__
from planctl.calendar.sessions import SessionView
from planctl.calendar.tzrules import time_zone
from planctl.calendar.zones import WallClock, as_utc, zone_info

PRODID = f"-//planctl//planctl {__version__}//ES"
CALENDAR_NAME = "Planificador — sesiones"
END_CALENDAR = b"END:VCALENDAR\r\n"
STATUS = {
    "propuesta": "TENTATIVE",
    "programada": "CONFIRMED",
    "reprogramada": "CONFIRMED",
    "cancelada": "CANCELLED",
}
MAX_SEQUENCE = 2**31 - 1  # SEQUENCE is an INTEGER: a signed 32-bit value
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# TEXT may not hold control characters other than HTAB (RFC 5545 3.3.11).
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def escape_text(value: str) -> str:
    """RFC 5545 TEXT escaping: backslash, semicolon, comma and line breaks."""
    escaped = (
        value.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
        .replace("\r", "\\n")
    )
    return CONTROL_CHARACTERS.sub("", escaped)


class Text(vText):
    """A TEXT value escaped exactly.

    icalendar 7 turns a literal backslash followed by ``N`` (``C:\\Nuevos``)
    into a line break before escaping; this keeps the text as it is.
    """

    def to_ical(self) -> bytes:
        return escape_text(str(self)).encode("utf-8")


class Categories(vCategory):
    """CATEGORIES whose values are escaped by :class:`Text`."""

    def to_ical(self) -> bytes:
        return b",".join(Text(str(c)).to_ical() for c in self.cats)


def session_uid(session_id: int, domain: str = "planctl") -> str:
    """The event UID of a session: stable, so re-imports update instead of duplicating."""
    return f"sesion-{session_id}@{domain}"


def location(view: SessionView) -> str | None:
    """The address, the video link as "Online: <link>", or both for a mixed session."""
    online = f"Online: {view.enlace_vc}" if view.enlace_vc else "Online"
    if view.modalidad == "online" or (not view.direccion and view.enlace_vc):
        return online
    if view.modalidad == "mixta" and view.direccion and view.enlace_vc:
        return f"{view.direccion} / {online}"
    return view.direccion


def description(view: SessionView) -> str:
    """Contract number, modality, contact person and notes, one per line."""
    lines = [f"Expediente: {view.expediente}"]
    if view.modalidad:
        lines.append(f"Modalidad: {view.modalidad}")
    contact = [
        part
        for part in (view.persona_responsable, view.telefono_responsable, view.email_responsable)
        if part
    ]
    if contact:
        lines.append(f"Contacto: {', '.join(contact)}")
    if view.notas:
        lines.append(f"Notas: {view.notas}")
    return "\n".join(lines)


def last_change(view: SessionView) -> dt.datetime | None:
    """When anything the event shows last changed, in UTC to the second."""
    return as_utc(view.changed_at or view.updated_at)


def sequence(view: SessionView) -> int:
    """Whole seconds from creation to the last edit: grows with every change."""
    created, updated = as_utc(view.created_at), last_change(view)
    if created is None or updated is None:
        return 0
    return max(0, min(MAX_SEQUENCE, int((updated - created).total_seconds())))


def session_to_event(view: SessionView, timezone: str) -> Event:
    """One VEVENT for *view*, its times in the IANA zone *timezone* (in UTC for a time
    the clocks skip or repeat: :func:`planctl.calendar.zones.session_instants`)."""
    zone = zone_info(timezone)
    created, updated = as_utc(view.created_at), last_change(view)
    event = Event()
    event.add("uid", session_uid(view.id))
    event.add("dtstamp", updated or created or EPOCH)
    instants = WallClock(timezone).instants(view.fecha, view.hora_inicio, view.hora_fin)
    if instants is not None:
        event.add("dtstart", instants[0])
        event.add("dtend", instants[1])
    else:
        event.add("dtstart", dt.datetime.combine(view.fecha, view.hora_inicio, tzinfo=zone))
        event.add("dtend", dt.datetime.combine(view.fecha, view.hora_fin, tzinfo=zone))
    event.add("summary", Text(f"{view.formacion} — {view.cliente}"))
    place = location(view)
    if place:
        event.add("location", Text(place))
    event.add("description", Text(description(view)))
    if view.enlace_vc:
        event.add("url", view.enlace_vc)
    event.add("categories", Categories([view.tema]))
    event.add("status", STATUS[view.estado])
    event.add("sequence", sequence(view))
    if created is not None:
        event.add("created", created)
    if updated is not None:
        event.add("last-modified", updated)
    return event


def calendar_header(timezone: str, first: dt.date, last: dt.date) -> bytes:
    """Everything before the first VEVENT: calendar properties and the VTIMEZONE."""
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", CALENDAR_NAME)
    calendar.add("x-wr-timezone", timezone)
    calendar.add_component(time_zone(timezone, first, last))
    data: bytes = calendar.to_ical()
    assert data.endswith(END_CALENDAR)
    return data[: -len(END_CALENDAR)]


def fold(line: str) -> bytes:
    """*line* in UTF-8, folded as icalendar folds: at most 74 octets before each CRLF +
    space, never inside a UTF-8 character, never right after an escaping backslash."""
    data = line.encode()
    if len(data) < 75:
        return data
    parts = []
    start = 0
    while len(data) - start > 74:
        cut = start + 74
        while data[cut] & 0xC0 == 0x80:  # a UTF-8 continuation byte: back to the char start
            cut -= 1
        if data[cut - 1] in b"\\^" and cut - 1 > start:
            cut -= 1  # keep an escape with what it escapes
        parts.append(data[start:cut])
        start = cut
    parts.append(data[start:])
    return b"\r\n ".join(parts)


def _ical_time(moment: dt.datetime) -> str:
    """``YYYYMMDDTHHMMSS``, the year always four digits (strftime's %Y writes year 1 as
    "1" on glibc, which no calendar reads)."""
    m = moment
    return f"{m.year:04d}{m.month:02d}{m.day:02d}T{m.hour:02d}{m.minute:02d}{m.second:02d}"


def _utc_stamp(moment: dt.datetime) -> str:
    return _ical_time(moment) + "Z"


class EventWriter:
    """:func:`event_bytes` for many events of one zone: the same bytes, with what repeats
    from event to event (days, times, stamps, the zone's plain days) worked out once."""

    def __init__(self, timezone: str) -> None:
        self.timezone = timezone
        self.clock = WallClock(timezone)
        self._quoted = any(c in timezone for c in ':;,"')  # a TZID icalendar would quote
        self._days: dict[dt.date, str] = {}
        self._times: dict[dt.time, str] = {}
        self._stamps: dict[dt.datetime | None, tuple[dt.datetime | None, str]] = {}

    def _wall(self, day: dt.date, time: dt.time) -> str:
        date_text = self._days.get(day)
        if date_text is None:
            date_text = self._days[day] = f"{day.year:04d}{day.month:02d}{day.day:02d}T"
        time_text = self._times.get(time)
        if time_text is None:
            time_text = self._times[time] = f"{time.hour:02d}{time.minute:02d}{time.second:02d}"
        return date_text + time_text

    def _stamp(self, moment: dt.datetime | None) -> tuple[dt.datetime | None, str]:
        """*moment* in UTC to the second, and as ``YYYYMMDDTHHMMSSZ``."""
        found = self._stamps.get(moment)
        if found is None:
            utc = as_utc(moment)
            found = self._stamps[moment] = (utc, "" if utc is None else _utc_stamp(utc))
        return found

    def event(self, view: SessionView) -> bytes:
        """The VEVENT of *view*, as :func:`session_to_event` would serialise it."""
        if self._quoted:
            return session_to_event(view, self.timezone).to_ical()
        created, created_text = self._stamp(view.created_at)
        updated, updated_text = self._stamp(view.changed_at or view.updated_at)
        instants = self.clock.instants(view.fecha, view.hora_inicio, view.hora_fin)
        if instants is None:
            tzid = self.timezone
            starts = f"DTSTART;TZID={tzid}:{self._wall(view.fecha, view.hora_inicio)}"
            ends = f"DTEND;TZID={tzid}:{self._wall(view.fecha, view.hora_fin)}"
        else:
            starts = f"DTSTART:{_utc_stamp(instants[0])}"
            ends = f"DTEND:{_utc_stamp(instants[1])}"
        if created is None or updated is None:
            number = 0
        else:
            number = max(0, min(MAX_SEQUENCE, int((updated - created).total_seconds())))
        lines = [
            "BEGIN:VEVENT",
            "SUMMARY:" + escape_text(f"{view.formacion} — {view.cliente}"),
            starts,
            ends,
            "DTSTAMP:" + (updated_text or created_text or _utc_stamp(EPOCH)),
            f"UID:sesion-{view.id}@planctl",
            f"SEQUENCE:{number}",
            "CATEGORIES:" + escape_text(view.tema),
        ]
        if created is not None:
            lines.append("CREATED:" + created_text)
        lines.append("DESCRIPTION:" + escape_text(description(view)))
        if updated is not None:
            lines.append("LAST-MODIFIED:" + updated_text)
        place = location(view)
        if place:
            lines.append("LOCATION:" + escape_text(place))
        lines.append("STATUS:" + STATUS[view.estado])
        if view.enlace_vc:
            lines.append("URL:" + CONTROL_CHARACTERS.sub("", view.enlace_vc).replace("\n", ""))
        lines.append("END:VEVENT\r\n")
        for index, line in enumerate(lines):
            if len(line) > 18 and not (len(line) < 75 and line.isascii()):  # maybe 75 octets
                lines[index] = fold(line).decode()
        return "\r\n".join(lines).encode()


def event_bytes(view: SessionView, timezone: str) -> bytes:
    """The VEVENT of :func:`session_to_event`, serialised directly: the same bytes
    (a test compares them), without building icalendar objects, which costs about
    a millisecond an event. Many events: :class:`EventWriter`."""
    return EventWriter(timezone).event(view)
