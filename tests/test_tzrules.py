"""The VTIMEZONE's offset changes: listed from the zone file and its rule, checked
against an hour-by-hour walk through zoneinfo itself (the oracle)."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from planctl.calendar.tzrules import explicit_transitions, onset_vtimezone, time_zone

ZONES = [
    "Europe/Madrid",
    "America/New_York",
    "Australia/Lord_Howe",  # half-hour daylight saving
    "Asia/Tehran",  # changes at local midnight: half past the UTC hour
    "Africa/Casablanca",  # suspended for Ramadan: many listed changes
    "America/Santiago",  # southern hemisphere
    "Asia/Kolkata",  # no change since 1945
    "UTC",
]


def hourly_changes(zone: ZoneInfo, first: int, last: int) -> list[tuple[dt.datetime, dt.timedelta]]:
    """Every offset change, found by asking zoneinfo each hour (slow, obviously right)."""
    moment = dt.datetime(first, 1, 1, tzinfo=dt.UTC)
    offset = moment.astimezone(zone).utcoffset()
    changes: list[tuple[dt.datetime, dt.timedelta]] = []
    while moment.year <= last:
        moment += dt.timedelta(hours=1)
        new = moment.astimezone(zone).utcoffset()
        if new is not None and new != offset:
            changes.append((moment, new))
            offset = new
    return changes


def onsets(vtimezone: Any) -> list[tuple[dt.datetime, dt.timedelta]]:
    """(UTC instant, new offset) of every RDATE in the VTIMEZONE, in order."""
    found = []
    for observance in vtimezone.subcomponents:
        after = observance["tzoffsetto"].td
        before = observance["tzoffsetfrom"].td
        rdates = observance.get("rdate", [])
        for rdate in rdates if isinstance(rdates, list) else [rdates]:
            for period in rdate.dts:
                found.append(((period.dt - before).replace(tzinfo=dt.UTC), after))
    return sorted(found)[1:]  # the first is the range's starting offset, not a change


@pytest.mark.parametrize("key", ZONES)
def test_every_offset_change_is_listed_at_its_exact_instant(key: str) -> None:
    zone = ZoneInfo(key)
    listed = onsets(onset_vtimezone(key, zone, dt.date(2011, 1, 1), dt.date(2035, 1, 1)))
    oracle = hourly_changes(zone, 2010, 2035)
    assert len(listed) == len(oracle)
    for (instant, offset), (hour, expected) in zip(listed, oracle, strict=True):
        assert offset == expected
        assert dt.timedelta(0) <= hour - instant < dt.timedelta(hours=1)  # the walk is hourly
        assert instant.astimezone(zone).utcoffset() == offset  # exact: the change itself
        assert (instant - dt.timedelta(seconds=1)).astimezone(zone).utcoffset() != offset


def test_the_zone_file_lists_its_changes() -> None:
    listed = explicit_transitions("Europe/Madrid")
    assert listed is not None
    assert dt.datetime(2021, 3, 28, 1, tzinfo=dt.UTC) in listed or listed[-1].year < 2021


def test_ten_thousand_years_take_about_a_second_not_minutes() -> None:
    """Sessions dated year 1 and 9999 once made `export ical` walk every hour between
    (95 s of CPU); the changes are now read from the zone file and its rule."""
    started = time.process_time()
    vtimezone = time_zone("Europe/Madrid", dt.date(1800, 1, 1), dt.date(9998, 1, 1))
    assert time.process_time() - started < 20  # generous: loaded CI machines
    assert len(onsets(vtimezone)) > 2 * 7000  # two changes a year under the current rule
