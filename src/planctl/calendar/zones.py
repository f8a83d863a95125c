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
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        close = difflib.get_close_matches(timezone, sorted(zoneinfo.available_timezones()), n=1)
        hint = f"did you mean '{close[0]}'?" if close else "use an IANA name like Europe/Madrid"
        raise ConfigError(f"unknown time zone '{timezone}' (PLANCTL_TIMEZONE)", hint) from None


def as_utc(moment: dt.datetime | None) -> dt.datetime | None:
    """*moment* in UTC to the second; a naive value (SQLite) is already UTC."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).replace(microsecond=0)
