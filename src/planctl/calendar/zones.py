"""Time-zone helpers of the calendar model: IANA zones and UTC instants.

Standard library only, so the CLI and the sync backends can use them without
loading icalendar or SQLAlchemy.
"""

from __future__ import annotations

import datetime as dt
import difflib
import zoneinfo

from planctl.errors import ConfigError


def zone_info(timezone: str) -> zoneinfo.ZoneInfo:
    """The IANA time zone *timezone*; ConfigError with a close name if unknown."""
    try:
        return zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as error:
        close = difflib.get_close_matches(timezone, sorted(zoneinfo.available_timezones()), n=1)
        hint = f"did you mean '{close[0]}'?" if close else "use an IANA name like Europe/Madrid"
        raise ConfigError(f"unknown time zone '{timezone}' (PLANCTL_TIMEZONE)", hint) from error


def as_utc(moment: dt.datetime | None) -> dt.datetime | None:
    """*moment* in UTC to the second; a naive value (SQLite) is already UTC."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).replace(microsecond=0)


def missing_local_time(day: dt.date, time: dt.time, timezone: str) -> bool:
    """Whether *day* at *time* does not exist in *timezone* (skipped as the clocks go forward)."""
    zone = zone_info(timezone)
    wall = dt.datetime.combine(day, time)
    back = wall.replace(tzinfo=zone).astimezone(dt.UTC).astimezone(zone)
    return back.replace(tzinfo=None) != wall


def repeated_local_time(day: dt.date, time: dt.time, timezone: str) -> bool:
    """Whether *day* at *time* happens twice in *timezone* (the clocks go back over it)."""
    zone = zone_info(timezone)
    wall = dt.datetime.combine(day, time, tzinfo=zone)
    return wall.utcoffset() != wall.replace(fold=1).utcoffset() and not missing_local_time(
        day, time, timezone
    )


def second_of_two(moment: dt.datetime) -> bool:
    """Whether a local *moment* is the later of two that share its wall-clock time (DST fold)."""
    if moment.fold != 1:
        return False
    return moment.replace(fold=0).utcoffset() != moment.utcoffset()


def session_instants(
    day: dt.date, start: dt.time, end: dt.time, timezone: str
) -> tuple[dt.datetime, dt.datetime] | None:
    """The UTC start and end of a session whose wall-clock times are not plain, else None.

    The one rule for such sessions, in export and sync alike:

    - a time the clocks skip (02:30 on a spring-forward night) is read with the
      UTC offset in force before the gap, as RFC 5545 (3.3.5) and zoneinfo's
      ``fold=0`` read it, and so is the other end of that session: 02:30-03:15 in
      Madrid on 2027-03-28 is 01:30Z-02:15Z (03:30-04:15 CEST), the 45 planned
      minutes, and the end never comes before the start;
    - a time the clocks repeat is its first occurrence (RFC 5545 again).

    Written as explicit UTC, every reader sees the same instant, whatever it
    makes of a wall-clock time its VTIMEZONE does not map one to one.
    """
    zone = zone_info(timezone)
    walls = (dt.datetime.combine(day, start), dt.datetime.combine(day, end))
    skipped = [w for w in walls if missing_local_time(w.date(), w.time(), timezone)]
    if skipped:
        offset = skipped[0].replace(tzinfo=zone).utcoffset()
        assert offset is not None
        first, last = ((w - offset).replace(tzinfo=dt.UTC) for w in walls)
        return first, last
    if any(repeated_local_time(w.date(), w.time(), timezone) for w in walls):
        first, last = (w.replace(tzinfo=zone).astimezone(dt.UTC) for w in walls)
        return first, last
    return None


class WallClock:
    """:func:`session_instants` for many sessions of one zone: a day the clocks do not
    change on (nearly all of them) is recognised once, and its sessions skip the rule."""

    def __init__(self, timezone: str) -> None:
        self.timezone = timezone
        self.zone = zone_info(timezone)
        self._plain: dict[dt.date, bool] = {}

    def instants(
        self, day: dt.date, start: dt.time, end: dt.time
    ) -> tuple[dt.datetime, dt.datetime] | None:
        plain = self._plain.get(day)
        if plain is None:
            plain = self._plain[day] = self._is_plain(day)
        return None if plain else session_instants(day, start, end, self.timezone)

    def skips(self, day: dt.date, start: dt.time, end: dt.time) -> bool:
        """Whether the session's start or end is a time the clocks skip."""
        if self._plain.get(day):
            return False
        return any(missing_local_time(day, t, self.timezone) for t in (start, end))

    def _is_plain(self, day: dt.date) -> bool:
        """One UTC offset from this midnight to the next, neither of them skipped or repeated."""
        try:
            following = day + dt.timedelta(days=1)
        except OverflowError:
            return False
        offsets = {
            dt.datetime.combine(d, dt.time(), tzinfo=self.zone).replace(fold=f).utcoffset()
            for d in (day, following)
            for f in (0, 1)
        }
        return len(offsets) == 1
