"""The "phone": change a Google calendar's events as a person would (``planctl sync remote``).

:class:`Phone` needs five primitives of the events resource (list, get,
insert, patch, delete); the emulator's store (tests) and the REST client
(``sync remote`` on the simulated calendar and on real Google) provide them.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
from collections.abc import Iterator
from typing import Any

from planctl.calendar.zones import zone_info
from planctl.errors import NothingToDoError, UsageError
from planctl.sync.google.events import (
    STATUS_TO_GOOGLE,
    ListedEvent,
    Resource,
    listed,
    parse_when,
    session_property,
    when,
)

#: How many leading characters of an event id ``sync remote list`` shows (and ``find`` takes).
SHORT_ID = 8


class Phone:
    """Find, edit, delete and add events; subclasses provide the primitives."""

    timezone: str

    def where(self) -> str:
        """The calendar, for messages."""
        raise NotImplementedError

    def list_events(self, *, show_deleted: bool = True) -> list[Resource]:
        raise NotImplementedError

    def get_event(self, event_id: str) -> Resource | None:
        raise NotImplementedError

    def insert(self, body: Resource) -> Resource:
        raise NotImplementedError

    def patch(self, event_id: str, changes: Resource, *, if_match: str | None = None) -> Resource:
        raise NotImplementedError

    def delete(self, event_id: str, *, if_match: str | None = None) -> None:
        raise NotImplementedError

    # -- what a person does --------------------------------------------------

    def find(self, reference: str) -> Resource:
        """An event by id (or the first :data:`SHORT_ID` or more characters of one, as
        ``sync remote list`` shows it), by UID, or by session id (``12`` or ``sesion-12``)."""
        wanted = reference.strip()
        events = {str(e["id"]): e for e in self.list_events(show_deleted=True)}
        if wanted in events:
            return events[wanted]
        if len(wanted) >= SHORT_ID:
            matches = [key for key in events if key.startswith(wanted)]
            if len(matches) == 1:
                return events[matches[0]]
        number = wanted.removeprefix("sesion-").split("@")[0]
        for event in events.values():
            if event.get("status") == "cancelled":
                continue
            if event.get("iCalUID") == wanted:
                return event
            if number.isdigit() and session_property(event) == number:
                return event
        raise NothingToDoError(
            f"no event '{reference}' in {self.where()}", "planctl sync remote list shows the events"
        )

    def edit(
        self,
        reference: str,
        *,
        date: dt.date | None = None,
        start_time: dt.time | None = None,
        end_time: dt.time | None = None,
        location: str | None = None,
        summary: str | None = None,
        status: str | None = None,
    ) -> Resource:
        """Change an event as a phone would: unconditionally, only what is given.

        Times are wall-clock times in the calendar's time zone; a new *date*
        keeps the times. ``status="cancelled"`` deletes the event (Google's way).
        """
        if status is not None and status.lower() not in (*STATUS_TO_GOOGLE.values(), "cancelled"):
            raise UsageError(f"unknown status '{status}'", "use confirmed, tentative or cancelled")
        event = self.find(reference)
        if status is not None and status.lower() == "cancelled":
            self.delete(event["id"])
            gone = self.get_event(event["id"])
            return copy.deepcopy(gone) if gone is not None else {**event, "status": "cancelled"}
        zone = zone_info(self.timezone)
        start = parse_when(event["start"], self.timezone).astimezone(zone)
        end = parse_when(event["end"], self.timezone).astimezone(zone)
        day = date or start.date()
        new_start = dt.datetime.combine(day, start_time or start.time().replace(tzinfo=None), zone)
        with _within_calendar_dates():
            new_end = dt.datetime.combine(
                day + (end.date() - start.date()), end_time or end.time().replace(tzinfo=None), zone
            )
            if end_time is not None and new_end == new_start:
                raise UsageError(
                    f"the event would start and end at {new_start:%H:%M}",
                    "give an --end after --start",
                )
            if end_time is not None and new_end < new_start:  # 22:00–01:00: ends the next day
                new_end = dt.datetime.combine(
                    new_start.date() + dt.timedelta(days=1), end_time, zone
                )
            new_end.astimezone(dt.UTC)  # in UTC too
        if new_end <= new_start:
            raise UsageError(
                f"the event would end at {new_end:%H:%M}, before it starts at {new_start:%H:%M}",
                "give an --end too",
            )
        changes: Resource = {}
        if new_start != start:
            changes["start"] = when(new_start, self.timezone)
        if new_end != end:
            changes["end"] = when(new_end, self.timezone)
        if location is not None:
            changes["location"] = location
        if summary is not None:
            changes["summary"] = summary
        if status is not None:
            changes["status"] = status.lower()
        return self.patch(event["id"], changes)

    def remove(self, reference: str) -> str:
        """Delete an event as a phone would; its id."""
        event_id = str(self.find(reference)["id"])
        self.delete(event_id)
        return event_id

    def add(self, summary: str, date: dt.date, start_time: dt.time, end_time: dt.time) -> Resource:
        """An event of the user's own (planctl must leave it alone)."""
        if end_time == start_time:
            raise UsageError(
                f"the event starts and ends at {start_time:%H:%M}", "give an --end after --start"
            )
        zone = zone_info(self.timezone)
        with _within_calendar_dates():
            # an end before the start is the next day's, as a phone reads 22:00–01:00
            end_day = date if end_time > start_time else date + dt.timedelta(days=1)
            start = when(dt.datetime.combine(date, start_time, zone), self.timezone)
            end_at = dt.datetime.combine(end_day, end_time, zone)
            end_at.astimezone(dt.UTC)  # in UTC too
            end = when(end_at, self.timezone)
        return self.insert({"summary": summary, "start": start, "end": end})

    def listing(self, *, include_deleted: bool = False) -> list[ListedEvent]:
        """The events as a person reads them (``sync remote list``), ordered by start."""
        return [
            listed(e, self.timezone) for e in self.describe_events(include_deleted=include_deleted)
        ]

    def describe_events(self, *, include_deleted: bool = False) -> list[Resource]:
        """The events, ordered by start, for listing (tombstones last)."""
        events = self.list_events(show_deleted=include_deleted)

        def key(event: Resource) -> tuple[bool, str]:
            start = (event.get("start") or {}).get("dateTime") or ""
            return (event.get("status") == "cancelled", str(start))

        return sorted(events, key=key)


def short(event: dict[str, Any]) -> str:
    return str(event["id"])[:SHORT_ID]


@contextlib.contextmanager
def _within_calendar_dates() -> Iterator[None]:
    """An event past 9999-12-31 (its end the next day, or in UTC) is a usage error."""
    try:
        yield
    except OverflowError as error:
        raise UsageError(
            "the event would end after 9999-12-31, the last date a calendar holds",
            "give an earlier --date",
        ) from error
