"""Sessions as an RFC 5545 calendar: one VEVENT per session, streamed.

The calendar header and one VTIMEZONE are written first, then each event's
bytes as the rows arrive, then ``END:VCALENDAR``: memory stays flat however
many sessions there are. The output is deterministic (identical bytes while
the data does not change), so re-importing it updates events instead of
duplicating them. What an event holds (UID, stamps, SEQUENCE, the VTIMEZONE)
is the calendar model's, shared with sync: see :mod:`planctl.calendar.events`.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Iterable
from typing import Any, BinaryIO

from planctl.calendar.events import END_CALENDAR, EventWriter, calendar_header
from planctl.calendar.sessions import (
    SessionFilter,
    SessionView,
    date_conditions,
    driver_rows,
    iter_sessions,
)
from planctl.calendar.zones import zone_info
from planctl.text import plural

#: The first year a VTIMEZONE covers (time-zone data before it is local mean time).
FIRST_ZONE_YEAR = 1900


def covered_years(connection: Any, filters: SessionFilter) -> tuple[dt.date, dt.date]:
    """January 1st of the first session's year and of the year after the last one.

    Taken over all sessions between since/until (a superset of the exported
    ones), so the VTIMEZONE is known before the first event is streamed; with
    no sessions at all, this year.
    """
    conditions, params = date_conditions(filters)
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    sql = f"SELECT min(s.fecha), max(s.fecha) FROM sesiones AS s{where}"
    [(first, last)] = list(driver_rows(connection, sql, params))
    today = dt.date.today()
    first, last = _day(first) or today, _day(last) or today  # no event: any year's VTIMEZONE
    # Zone rules are checked a year either side, and the zone database starts in the
    # 19th century: a session dated year 1 or 9999 must not overflow the date type.
    first_year = min(max(first.year, FIRST_ZONE_YEAR), dt.MAXYEAR - 2)
    last_year = max(min(last.year + 1, dt.MAXYEAR - 1), first_year + 1)
    return dt.date(first_year, 1, 1), dt.date(last_year, 1, 1)


def _day(value: Any) -> dt.date | None:
    return dt.date.fromisoformat(value) if isinstance(value, str) else value


def write_events(
    out: BinaryIO, views: Iterable[SessionView], timezone: str, skipped: list[int] | None = None
) -> int:
    """Write one VEVENT per view; returns how many. The ids of sessions with a time the
    clocks skip (written in UTC, see :func:`~planctl.calendar.zones.session_instants`)
    are appended to *skipped*."""
    writer = EventWriter(timezone)
    clock = writer.clock
    count = 0
    for view in views:
        out.write(writer.event(view))
        if skipped is not None and clock.skips(view.fecha, view.hora_inicio, view.hora_fin):
            skipped.append(view.id)
        count += 1
    return count


def skipped_warning(ids: list[int], timezone: str) -> str:
    """One line naming the sessions placed in a skipped hour (at most ten ids shown)."""
    shown = ", ".join(str(i) for i in ids[:10]) + (
        f" and {len(ids) - 10} more" if len(ids) > 10 else ""
    )
    return (
        f"{plural(len(ids), 'session')} at a time that does not exist in {timezone} "
        f"(the clocks go forward): id{'s' if len(ids) > 1 else ''} {shown}; exported in UTC "
        "at the offset before the change, their planned length kept; "
        "fix their times in the planner"
    )


def write_calendar(
    connection: Any,
    out: BinaryIO,
    *,
    timezone: str,
    filters: SessionFilter = SessionFilter(),
    warn: Callable[[str], None] | None = None,
) -> int:
    """Stream the matching sessions to *out* as one VCALENDAR; returns the number of events.

    Bad arguments (time zone, client, status) fail before anything is written.
    *warn* gets one line naming the sessions at a time the clocks skip, if any.
    """
    zone_info(timezone)
    first, last = covered_years(connection, filters)
    sessions = iter_sessions(connection, filters)
    head = next(sessions, None)  # runs the query: an unknown client raises here
    out.write(calendar_header(timezone, first, last))
    skipped: list[int] = []
    views = itertools.chain([] if head is None else [head], sessions)
    count = write_events(out, views, timezone, skipped)
    out.write(END_CALENDAR)
    if skipped and warn is not None:
        warn(skipped_warning(skipped, timezone))
    return count
