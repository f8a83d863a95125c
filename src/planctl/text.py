"""How numbers and moments read in messages, tables and log lines meant for a person."""

from __future__ import annotations

import datetime as dt


def plural(number: int, noun: str, nouns: str | None = None) -> str:
    """``1 row``, ``0 rows``, ``12,345 rows``: thousands separators and the plural right
    (*nouns* where adding an ``s`` is wrong: ``plural(n, "entry", "entries")``)."""
    return f"{number:,} {noun if number == 1 else nouns or noun + 's'}"


def local_moment(moment: dt.datetime, timezone: str, *, seconds: bool = False) -> str:
    """*moment* in *timezone* with its UTC offset: ``2026-11-25 21:03 +0100``.

    A naive *moment* is UTC (what SQLite hands back and what planctl stores).
    """
    from zoneinfo import ZoneInfo  # not at import time: every command's start-up pays it

    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    shown = moment.astimezone(ZoneInfo(timezone))
    clock = shown.strftime("%H:%M:%S %z" if seconds else "%H:%M %z")
    return f"{shown.date().isoformat()} {clock}"  # %Y would write year 1 as "1"
