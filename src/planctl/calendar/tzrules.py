"""VTIMEZONE blocks every iCalendar reader understands the same way.

A zone's current rule comes from the POSIX TZ string at the end of its TZif
file (``CET-1CEST,M3.5.0,M10.5.0/3``) and becomes one STANDARD and one
DAYLIGHT observance with a yearly ``RRULE`` (``BYMONTH=3;BYDAY=-1SU``), the
form calendar servers and clients themselves write. :func:`holds` checks the
rule against the zone database for every day of the exported years; where it
does not hold, :func:`onset_vtimezone` lists every UTC offset change, one
RDATE property line per onset (several dates on one RDATE line are read
differently by different parsers). icalendar, ical and vobject read both
forms alike (tests/test_export_ical_readers.py proves it).
"""

from __future__ import annotations

import datetime as dt
import re
import struct
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from icalendar import Timezone, TimezoneDaylight, TimezoneStandard

from planctl.calendar.zones import zone_info

DAYS = ("SU", "MO", "TU", "WE", "TH", "FR", "SA")  # POSIX weekday 0 = Sunday
_NAME = r"(?:<[^>]+>|[A-Za-z]{3,})"
_OFFSET = r"[+-]?\d{1,3}(?::\d{2}(?::\d{2})?)?"
_RULE = r"M(\d{1,2})\.(\d)\.(\d)(?:/([+-]?\d{1,3}(?::\d{2}(?::\d{2})?)?))?"
_POSIX = re.compile(
    rf"(?P<std>{_NAME})(?P<stdoff>{_OFFSET})"
    rf"(?:(?P<dst>{_NAME})(?P<dstoff>{_OFFSET})?,(?P<start>{_RULE}),(?P<end>{_RULE}))?"
)


@dataclass(frozen=True)
class Transition:
    """A yearly change: month, nth weekday (5 = last), weekday (0 = Sunday), local time."""

    month: int
    week: int
    weekday: int
    at: dt.timedelta

    def local(self, year: int) -> dt.datetime:
        """The wall-clock moment (before the change) of this transition in *year*."""
        python_weekday = (self.weekday - 1) % 7  # Monday = 0
        if self.week == 5:
            following = dt.date(year + (self.month == 12), self.month % 12 + 1, 1)
            day = following - dt.timedelta(days=1)
            day -= dt.timedelta(days=(day.weekday() - python_weekday) % 7)
        else:
            day = dt.date(year, self.month, 1)
            day += dt.timedelta(days=(python_weekday - day.weekday()) % 7 + 7 * (self.week - 1))
        return dt.datetime.combine(day, dt.time()) + self.at

    @property
    def byday(self) -> str:
        return f"{-1 if self.week == 5 else self.week}{DAYS[self.weekday]}"


@dataclass(frozen=True)
class Rule:
    std_name: str
    std_offset: dt.timedelta  # east of UTC (iCalendar's sign, not POSIX's)
    dst_name: str | None = None
    dst_offset: dt.timedelta | None = None
    dst_start: Transition | None = None  # in standard time
    dst_end: Transition | None = None  # in daylight time

    def offset_at(self, moment: dt.datetime) -> dt.timedelta:
        """The UTC offset this rule gives at the aware *moment*."""
        if self.dst_start is None or self.dst_end is None or self.dst_offset is None:
            return self.std_offset
        naive = moment.astimezone(dt.UTC).replace(tzinfo=None)
        begins = self.dst_start.local(naive.year) - self.std_offset
        ends = self.dst_end.local(naive.year) - self.dst_offset
        inside = begins <= naive < ends if begins < ends else not ends <= naive < begins
        return self.dst_offset if inside else self.std_offset


def _duration(text: str) -> dt.timedelta:
    sign = -1 if text.startswith("-") else 1
    parts = [int(p) for p in text.lstrip("+-").split(":")] + [0, 0]
    return sign * dt.timedelta(hours=parts[0], minutes=parts[1], seconds=parts[2])


def _transition(match: re.Match[str], first: int) -> Transition:
    month, week, weekday, at = match.group(first, first + 1, first + 2, first + 3)
    return Transition(int(month), int(week), int(weekday), _duration(at or "2"))


def parse_posix(text: str) -> Rule | None:
    """The POSIX TZ string *text* as a Rule; None for forms iCalendar RRULEs cannot state."""
    match = _POSIX.fullmatch(text.strip())
    if match is None:
        return None
    std_offset = -_duration(match["stdoff"])
    if match["dst"] is None:
        return Rule(match["std"].strip("<>"), std_offset)
    dst_offset = (
        -_duration(match["dstoff"]) if match["dstoff"] else std_offset + dt.timedelta(hours=1)
    )
    starts = re.fullmatch(_RULE, match["start"])
    ends = re.fullmatch(_RULE, match["end"])
    assert starts is not None and ends is not None
    start, end = _transition(starts, 1), _transition(ends, 1)
    if not all(dt.timedelta(0) <= t.at < dt.timedelta(days=1) for t in (start, end)):
        return None  # a change at 24:00 or later moves the day: BYDAY cannot say that
    return Rule(
        match["std"].strip("<>"), std_offset, match["dst"].strip("<>"), dst_offset, start, end
    )


def posix_rule(key: str) -> Rule | None:
    """The current rule of the IANA zone *key*, from its TZif footer; None if unreadable."""
    data = _tzif_bytes(key)
    if data is None or not data.startswith(b"TZif") or data[4:5] < b"2":
        return None
    footer = data.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    try:
        return parse_posix(footer.decode("ascii"))
    except UnicodeDecodeError:
        return None


def _tzif_bytes(key: str) -> bytes | None:
    """The zone file zoneinfo itself would load (system TZPATH first, then tzdata)."""
    for base in zoneinfo.TZPATH:
        path = Path(base, key)
        if path.is_file():
            return path.read_bytes()
    try:
        return resources.files("tzdata.zoneinfo").joinpath(*key.split("/")).read_bytes()
    except (ModuleNotFoundError, FileNotFoundError, OSError):
        return None


def holds(rule: Rule, zone: zoneinfo.ZoneInfo, first_year: int, last_year: int) -> bool:
    """Whether *rule* gives *zone*'s UTC offset for every hour of those years' transitions.

    Checked daily at 00:30 UTC, and hourly around every transition the rule predicts.
    """
    # Past the zone file's last listed change, zoneinfo itself applies this very rule:
    # checking those years again would only cost time (years up to 9999 are exportable).
    explicit = explicit_transitions(str(zone.key))
    if explicit is not None:
        last_listed = explicit[-1].year if explicit else first_year
        last_year = max(first_year, min(last_year, last_listed + 1))

    def checks() -> Iterator[dt.datetime]:
        moment = dt.datetime(first_year, 1, 1, 0, 30, tzinfo=dt.UTC)
        end = dt.datetime(last_year + 1, 1, 1, tzinfo=dt.UTC)
        while moment < end:
            yield moment
            moment += dt.timedelta(days=1)
        for instant in rule_transitions(rule, first_year, last_year):
            yield from (instant + dt.timedelta(hours=h) for h in range(-3, 4))

    return all(m.astimezone(zone).utcoffset() == rule.offset_at(m) for m in checks())


def rule_transitions(rule: Rule, first_year: int, last_year: int) -> Iterator[dt.datetime]:
    """The UTC instants at which *rule* changes the offset in those years."""
    if rule.dst_start is None or rule.dst_end is None or rule.dst_offset is None:
        return
    for year in range(first_year, last_year + 1):
        for change, before in ((rule.dst_start, rule.std_offset), (rule.dst_end, rule.dst_offset)):
            try:
                yield (change.local(year) - before).replace(tzinfo=dt.UTC)
            except (OverflowError, ValueError):  # past 9999-12-31: no calendar holds it
                return


def explicit_transitions(key: str) -> list[dt.datetime] | None:
    """The UTC instants of the changes listed in *key*'s TZif file (version 2 or later:
    64-bit times); None when the file cannot be read. Later changes follow its POSIX
    footer (:func:`posix_rule`)."""
    data = _tzif_bytes(key)
    if data is None or not data.startswith(b"TZif") or data[4:5] < b"2" or len(data) < 44:
        return None
    try:
        counts = struct.unpack(">6l", data[20:44])
        isut, isstd, leap, times, types, chars = counts
        second = 44 + times * 5 + types * 6 + chars + leap * 8 + isstd + isut
        if data[second : second + 4] != b"TZif":
            return None
        times = struct.unpack(">6l", data[second + 20 : second + 44])[3]
        stamps = struct.unpack(f">{times}q", data[second + 44 : second + 44 + times * 8])
    except struct.error:
        return None
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    lowest, highest = dt.datetime.min.replace(tzinfo=dt.UTC), dt.datetime.max.replace(tzinfo=dt.UTC)
    listed = []
    for stamp in stamps:
        try:
            listed.append(epoch + dt.timedelta(seconds=stamp))
        except OverflowError:  # the "big bang" sentinel of some files
            listed.append(lowest if stamp < 0 else highest)
    return listed


def rrule_vtimezone(key: str, rule: Rule, year: int) -> Timezone:
    """STANDARD and DAYLIGHT observances with yearly RRULEs, their DTSTART in *year*."""
    vtimezone = Timezone()
    vtimezone.add("tzid", key)
    if rule.dst_start is None or rule.dst_end is None or rule.dst_offset is None:
        standard = TimezoneStandard()
        standard.add("dtstart", dt.datetime(year, 1, 1))
        standard.add("tzoffsetfrom", rule.std_offset)
        standard.add("tzoffsetto", rule.std_offset)
        standard.add("tzname", rule.std_name)
        vtimezone.add_component(standard)
        return vtimezone
    observances = (
        (TimezoneDaylight(), rule.dst_start, rule.std_offset, rule.dst_offset, rule.dst_name),
        (TimezoneStandard(), rule.dst_end, rule.dst_offset, rule.std_offset, rule.std_name),
    )
    for observance, change, before, after, name in observances:
        observance.add("dtstart", change.local(year))
        observance.add("rrule", {"freq": "yearly", "bymonth": change.month, "byday": change.byday})
        observance.add("tzoffsetfrom", before)
        observance.add("tzoffsetto", after)
        observance.add("tzname", name)
        vtimezone.add_component(observance)
    return vtimezone


def onset_vtimezone(key: str, zone: zoneinfo.ZoneInfo, first: dt.date, last: dt.date) -> Timezone:
    """Every UTC offset change from a year before *first* to after *last*, listed.

    Changes with the same offsets and name share one observance; each onset is
    its own RDATE line (the DTSTART repeated among them: ical reads only the
    RDATEs of an observance that has some, vobject misreads several on one line).
    """
    moment = dt.datetime(first.year - 1, 1, 1, tzinfo=dt.UTC)
    end = dt.datetime(last.year + 1, 1, 1, tzinfo=dt.UTC)
    offset = moment.astimezone(zone).utcoffset()
    assert offset is not None
    onsets: dict[tuple[bool, dt.timedelta, dt.timedelta, str], list[dt.datetime]] = {}

    def record(instant: dt.datetime, before: dt.timedelta, after: dt.timedelta) -> None:
        local = instant.astimezone(zone)
        kind = (bool(local.dst()), before, after, local.tzname() or "")
        onsets.setdefault(kind, []).append((instant + before).replace(tzinfo=None))

    record(moment, offset, offset)
    for instant in _changes(key, zone, moment, end):
        new = instant.astimezone(zone).utcoffset()
        assert new is not None
        if new != offset:
            record(instant, offset, new)
            offset = new
    vtimezone = Timezone()
    vtimezone.add("tzid", key)
    for (daylight, before, after, name), starts in onsets.items():
        observance = TimezoneDaylight() if daylight else TimezoneStandard()
        observance.add("dtstart", starts[0])
        for start in starts:
            observance.add("rdate", start)
        observance.add("tzoffsetfrom", before)
        observance.add("tzoffsetto", after)
        observance.add("tzname", name)
        vtimezone.add_component(observance)
    return vtimezone


def _changes(
    key: str, zone: zoneinfo.ZoneInfo, moment: dt.datetime, end: dt.datetime
) -> Iterator[dt.datetime]:
    """Every instant in [*moment*, *end*) where *zone*'s offset may change, in order: the
    zone file's listed changes, then its footer rule's yearly ones (exact instants, so
    ten thousand years cost milliseconds). Without a readable file: every hour."""
    listed = explicit_transitions(key)
    rule = posix_rule(key)
    if listed is None or (rule is None and _has_footer(key)):
        step = dt.timedelta(hours=1)
        while moment < end:
            moment += step
            yield moment
        return
    after = listed[-1] if listed else moment
    predicted = (
        rule_transitions(rule, max(moment.year, after.year), end.year) if rule is not None else ()
    )
    candidates = sorted({*listed, *(t for t in predicted if t > after)})
    yield from (t for t in candidates if moment < t < end)


def _has_footer(key: str) -> bool:
    """Whether *key*'s file has a POSIX footer that :func:`parse_posix` cannot state (e.g.
    a change at 24:00 or later): then only the hourly scan knows the later changes."""
    data = _tzif_bytes(key) or b""
    footer = data.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    return bool(footer.strip()) and not footer.startswith(b"TZif")


def time_zone(timezone: str, first: dt.date, last: dt.date) -> Timezone:
    """The VTIMEZONE of *timezone*, right for every moment from *first* to *last*.

    The zone's current rule as yearly RRULEs when it holds over the whole range,
    otherwise one observance per UTC offset change (see :func:`onset_vtimezone`).
    """
    zone = zone_info(timezone)
    rule = posix_rule(timezone)
    start_year = first.year - 1  # an onset before the first event, for every reader
    if rule is not None and holds(rule, zone, start_year, last.year):
        return rrule_vtimezone(timezone, rule, start_year)
    return onset_vtimezone(timezone, zone, first, last)
