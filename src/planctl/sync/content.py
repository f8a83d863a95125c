"""What sync compares: the content of an event, its hash, and sessions ↔ events.

Local and remote content are reduced to the same :class:`EventContent` (times
as instants, text, status, link, categories) before hashing, so the hash of a
session and of the event written from it are equal, and nothing a server or a
phone rewrites on its own (DTSTAMP, PRODID, SEQUENCE, LAST-MODIFIED, VTIMEZONE,
the TZID spelling, X- properties, alarms) makes an event look changed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from icalendar import Event

from planctl.calendar.events import location, session_to_event
from planctl.calendar.sessions import SessionView
from planctl.calendar.zones import missing_local_time as missing_local_time  # the model's rule
from planctl.calendar.zones import second_of_two, zone_info

UID_PATTERN = re.compile(r"^sesion-(\d+)@planctl$")
ONLINE = "Online"


@dataclass(frozen=True)
class EventContent:
    """The part of an event that sync keeps equal on both sides."""

    start: dt.datetime  # time-zone aware
    end: dt.datetime
    summary: str
    location: str | None = None
    description: str | None = None
    status: str = "CONFIRMED"  # TENTATIVE, CONFIRMED or CANCELLED (iCalendar's names)
    url: str | None = None
    categories: tuple[str, ...] = ()
    # A repetition rule (RRULE/RDATE; Google's "recurrence") that a phone added:
    # a session is one slot, so it is a difference the planner cannot keep.
    recurring: bool = False

    def digest(self) -> str:
        """sha256 of the canonical form: instants in UTC, normalised text."""
        canonical = [
            _utc(self.start),
            _utc(self.end),
            self.summary,
            self.location,
            self.description,
            self.status,
            self.url,
            list(self.categories),
        ]
        if self.recurring:  # appended only when set: existing hashes stay valid
            canonical.append("recurring")
        data = json.dumps(canonical, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(data.encode("utf-8")).hexdigest()

    @property
    def cancelled(self) -> bool:
        return self.status == "CANCELLED"


def _utc(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def clean_text(value: Any) -> str | None:
    """Text as sync compares it: line ends unified, outer blanks dropped, empty is None."""
    if value is None:
        return None
    text = str(value).replace("\r\n", "\n").replace("\r", "\n").strip()
    return text or None


def session_id_from_uid(uid: str | None) -> int | None:
    """The session id in a planctl UID (``sesion-<id>@planctl``), else None."""
    match = UID_PATTERN.match(uid or "")
    return int(match.group(1)) if match else None


def _moment(value: Any, timezone: str) -> dt.datetime:
    """DTSTART/DTEND as an aware datetime: dates start at midnight, floating times are local."""
    zone = zone_info(timezone)
    if isinstance(value, dt.datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=zone)
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time(0), tzinfo=zone)
    raise ValueError(f"not a date or time: {value!r}")


def _categories(event: Event) -> tuple[str, ...]:
    found = event.get("categories")
    if found is None:
        return ()
    values = found if isinstance(found, list) else [found]
    names: list[str] = []
    for value in values:
        names.extend(str(c) for c in getattr(value, "cats", [value]))
    return tuple(n for n in (clean_text(n) for n in names) if n)


def content_from_vevent(event: Event, timezone: str) -> EventContent:
    """The synced content of a VEVENT (ours or edited elsewhere)."""
    start = _moment(event.decoded("dtstart"), timezone)
    if "dtend" in event:
        end = _moment(event.decoded("dtend"), timezone)
    elif "duration" in event:
        end = start + event.decoded("duration")
    else:
        end = start
    return EventContent(
        start=start,
        end=end,
        summary=clean_text(event.get("summary")) or "",
        location=clean_text(event.get("location")),
        description=clean_text(event.get("description")),
        status=(clean_text(event.get("status")) or "CONFIRMED").upper(),
        url=clean_text(event.get("url")),
        categories=_categories(event),
        recurring=any(name in event for name in ("rrule", "rdate")),
    )


def session_event(view: SessionView, timezone: str) -> tuple[Event, EventContent]:
    """The export's VEVENT for a session, and its synced content."""
    event = session_to_event(view, timezone)
    return event, content_from_vevent(event, timezone)


class UnrepresentableEvent(ValueError):
    """A remote event that cannot become a session (all-day, overnight, ends before it starts)."""


def session_changes(view: SessionView, content: EventContent, timezone: str) -> dict[str, Any]:
    """The ``sesiones`` columns to change so *view* shows what the remote *content* shows.

    Date, times, place (address or video link) and status come back; the
    summary, description and categories are derived from the contract and are
    not. A moved ``programada`` session becomes ``reprogramada``.
    """
    zone = zone_info(timezone)
    start, end = content.start.astimezone(zone), content.end.astimezone(zone)
    for moment in (start, end):
        if second_of_two(moment):
            raise UnrepresentableEvent(
                f"the event {'starts' if moment is start else 'ends'} at "
                f"{moment:%Y-%m-%d %H:%M} {moment:%Z}, the second time that hour occurs as "
                f"the clocks go back in {timezone}; the planner keeps wall-clock times and "
                "would store the first"
            )
    if end <= start or end.date() != start.date():
        raise UnrepresentableEvent(
            f"event from {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} "
            "is not one slot within a day"
        )
    changes: dict[str, Any] = {}
    new_times = (start.date(), start.time().replace(tzinfo=None), end.time().replace(tzinfo=None))
    moved = new_times != (view.fecha, view.hora_inicio, view.hora_fin)
    if moved:
        changes.update(fecha=new_times[0], hora_inicio=new_times[1], hora_fin=new_times[2])
    if content.location != clean_text(location(view)):
        changes.update(_place(content.location))
    estado = _estado(content.status, view.estado, moved)
    if estado != view.estado:
        changes["estado"] = estado
    return changes


def _place(text: str | None) -> dict[str, Any]:
    """Address and/or video link from a LOCATION written by planctl or typed on a phone."""
    if text is None:
        return {"direccion": None}
    address, _, link = text.partition(f" / {ONLINE}: ")
    if link:
        return {"direccion": address.strip() or None, "enlace_vc": link.strip() or None}
    if text.startswith(f"{ONLINE}: "):
        return {"enlace_vc": text.removeprefix(f"{ONLINE}: ").strip() or None}
    if text == ONLINE:
        return {}
    return {"direccion": text}


def _estado(status: str, current: str, moved: bool) -> str:
    if status == "CANCELLED":
        return "cancelada"
    if status == "TENTATIVE":
        return "propuesta"
    if current in ("propuesta", "cancelada"):
        return "programada"
    if moved and current == "programada":
        return "reprogramada"
    return current
