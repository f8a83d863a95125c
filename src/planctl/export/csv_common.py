"""What every CSV export path shares: options, table and column checks, formula rules.

The lowest module of the CSV export: the engine paths (:mod:`.csv_sqlite`,
:mod:`.csv_postgres`) and the dispatcher (:mod:`.csv`) import it, it imports
none of them, and nothing heavy (no SQLAlchemy): the SQLite path runs on the
driver alone, so ``planctl export csv`` starts fast.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from planctl.db.names import TABLES
from planctl.errors import UnknownTableError, UsageError

#: The date column that --since/--until filter on, per table.
DATE_COLUMNS = {
    "sesiones": "fecha",
    "interacciones": "fecha",
    "contrataciones": "fecha_inicio_prevista",
}
#: Text starting with one of these gets a leading ' (OWASP CSV injection), the
#: full-width look-alikes that spreadsheets also evaluate included.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "＝", "＋", "－", "＠")
FORMULA_CODES = tuple(ord(c) for c in FORMULA_STARTS)
BATCH = 5000

Progress = Callable[[int], None]
Write = Callable[[bytes | bytearray], Any]
Warn = Callable[[str], None]


@dataclass(frozen=True)
class CsvOptions:
    columns: Sequence[str] | None = None
    delimiter: str = ","
    excel: bool = False
    raw: bool = False  # do not neutralise formula-like text
    since: dt.date | None = None
    until: dt.date | None = None

    def for_table(self, table: str) -> CsvOptions:
        """These options for one table of ``--all``: date filters only where there is a date."""
        if table in DATE_COLUMNS or not (self.since or self.until):
            return self
        return CsvOptions(delimiter=self.delimiter, excel=self.excel, raw=self.raw)


def check_table_name(name: str) -> str:
    """*name* if it is a table of the schema, else UnknownTableError with a suggestion."""
    if name in TABLES:
        return name
    words = [w for w in re.split(r"[^a-z_]+", name.lower()) if w]
    close = difflib.get_close_matches(name.strip().lower(), TABLES, n=1, cutoff=0.5)
    if not close and words:
        close = difflib.get_close_matches(words[0], TABLES, n=1, cutoff=0.5)
    if close:
        raise UnknownTableError(
            f"unknown table '{name}'", f"did you mean '{close[0]}'? (planctl db-info lists tables)"
        )
    raise UnknownTableError(f"unknown table '{name}'", "planctl db-info lists the tables")


def pick_columns(table: str, available: Sequence[str], wanted: Sequence[str] | None) -> list[str]:
    """The columns to export, in order; UsageError naming a close match for an unknown one."""
    if not wanted:
        return list(available)
    for name in wanted:
        if name not in available:
            close = difflib.get_close_matches(name, available, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"columns: {', '.join(available)}"
            raise UsageError(f"unknown column '{name}' in table '{table}'", hint)
    return list(wanted)


def date_column(table: str, options: CsvOptions) -> str | None:
    """The column --since/--until filter on (None without them); UsageError if none."""
    if not (options.since or options.until):
        return None
    column = DATE_COLUMNS.get(table)
    if column is None:
        raise UsageError(
            f"table '{table}' has no date to filter on",
            f"--since/--until work on {', '.join(sorted(DATE_COLUMNS))}",
        )
    return column


def check_delimiter(delimiter: str) -> None:
    """One printable character (or tab) that is not a quote or a line end."""
    if (
        len(delimiter) != 1
        or delimiter in "\"'\r\n"
        or not (delimiter.isprintable() or delimiter == "\t")
    ):
        raise UsageError(f"invalid delimiter {delimiter!r}", "use one character, e.g. ';' or '\\t'")
