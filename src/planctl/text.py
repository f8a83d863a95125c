"""How numbers and moments read in messages, tables and log lines meant for a person.

Counts, hours and money are written as the planner's locale (es_ES) writes
them, in the CLI and in the PDF report alike: ``12.345``, ``1.234,50``,
``3.072,76 €`` (the decimal comma, the thousands point; no locale database is
consulted, so the output is the same on every machine).
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")


def format_count(value: int) -> str:
    """A count with Spanish thousands: 12345 -> ``12.345``."""
    return f"{value:,}".replace(",", ".")


def format_decimal(value: Decimal) -> str:
    """Two decimals, half-up, Spanish separators: 1234.5 -> ``1.234,50``."""
    text = f"{value.quantize(CENT, ROUND_HALF_UP):,.2f}"
    return text.replace(",", " ").replace(".", ",").replace(" ", ".")


def format_euros(value: Decimal) -> str:
    """Money as the PDF and the CLI show it: ``3.072,76 €``."""
    return f"{format_decimal(value)} €"


def plural(number: int, noun: str, nouns: str | None = None) -> str:
    """``1 row``, ``0 rows``, ``12.345 rows``: Spanish thousands (:func:`format_count`) and
    the plural right (*nouns* where adding an ``s`` is wrong: ``plural(n, "entry", "entries")``)."""
    return f"{format_count(number)} {noun if number == 1 else nouns or noun + 's'}"


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
