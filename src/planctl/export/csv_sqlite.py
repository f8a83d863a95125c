"""SQLite path of the CSV export: SQLite renders every line, Python only moves bytes.

One statement renders each row as a finished CSV line (RFC 4180: CRLF, quotes
only where needed, ``csv.QUOTE_MINIMAL``'s rule), built here as SQL text from
the table's declared column types (``PRAGMA table_info``): no ORM, no
SQLAlchemy, so the command starts fast. One process, one read.

SQLite is dynamically typed and the planner app writes the database too, so
each cell first checks what is really stored (``typeof``) and the shape of a
date, time or timestamp; only a value of the expected form takes the cheap
rendering (``60.00``, ``true``, ``2026-11-22 10:15:00+00:00``). Anything else
(text with commas, quotes or line breaks in a DATE or NUMERIC column, a BLOB,
a number in a text column) is written as its text (a BLOB as hex), neutralised
if it is formula-like text, and quoted when needed: every line keeps the
header's column count.
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
import sqlite3
import time
from collections.abc import Iterator, Sequence

from planctl.errors import DatabaseError
from planctl.export.csv_common import (
    BATCH,
    FORMULA_CODES,
    CsvOptions,
    Progress,
    Warn,
    Write,
    check_delimiter,
    check_table_name,
    date_column,
    pick_columns,
)

#: An export reading longer than this on a rollback-journal database warns (once).
LONG_READ = 1.0
BOM = "\ufeff".encode()
_DATE = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]"
_TIME = "[0-9][0-9]:[0-9][0-9]:[0-9][0-9]"
_MICROS = ".[0-9][0-9][0-9][0-9][0-9][0-9]"
_NUMERIC = re.compile(r"(?:NUMERIC|DECIMAL)\s*\(\s*\d+\s*,\s*(\d+)\s*\)")
#: Characters the cheap renderings can contain (a delimiter among them needs quoting).
_SAFE_CHARS = {
    "integer": "-0123456789",
    "numeric": "-.0123456789",
    "boolean": "truefals",
    "date": "-0123456789",
    "time": ":.0123456789",
    "datetime": "-+:. 0123456789",
}
ROLLBACK_WARNING = (
    "the database uses SQLite's rollback journal: the planner app's writes wait until "
    "this export ends (switch once with: sqlite3 {path} 'PRAGMA journal_mode=WAL')"
)


@contextlib.contextmanager
def read_errors(table: str) -> Iterator[None]:
    """Driver errors while reading: one clear DatabaseError line."""
    try:
        yield
    except sqlite3.Error as error:
        raise DatabaseError(
            f"reading table '{table}' failed: {error}",
            "check the database file (planctl db-info) and retry",
        ) from error


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def column_kinds(connection: sqlite3.Connection, table: str) -> dict[str, tuple[str, int, bool]]:
    """Column name -> (kind, numeric scale, NOT NULL), in table order, from the declared types."""
    rows = connection.execute(f"PRAGMA table_info({_ident(table)})").fetchall()
    if not rows:
        raise DatabaseError(
            f"table '{table}' does not exist in the database", "run planctl db-upgrade"
        )
    return {
        name: (*_kind(declared or ""), bool(notnull)) for _, name, declared, notnull, *_ in rows
    }


def _kind(declared: str) -> tuple[str, int]:
    text = declared.upper()
    if text.startswith("BOOL"):
        return "boolean", 0
    if text.startswith(("DATETIME", "TIMESTAMP")):
        return "datetime", 0
    if text == "DATE":
        return "date", 0
    if text.startswith("TIME"):
        return "time", 0
    match = _NUMERIC.match(text)
    if match and int(match.group(1)):
        return "numeric", int(match.group(1))
    if "INT" in text:
        return "integer", 0
    if any(word in text for word in ("CHAR", "CLOB", "TEXT")):
        return "text", 0
    return "other", 0


def _quoted_if(value: str, condition: str) -> str:
    quoted = f"'\"' || replace({value}, '\"', '\"\"') || '\"'"
    return f"CASE WHEN {condition} THEN {quoted} ELSE {value} END"


def _specials(value: str, delimiter: str) -> str:
    chars = ["'\"'", _literal(delimiter), "'\n'", "'\r'"]  # raw LF and CR: no char() calls
    return " OR ".join(f"instr({value}, {c}) > 0" for c in chars)


def _text_cell(c: str, delimiter: str, raw: bool) -> str:
    """A TEXT value: neutralised if formula-like, quoted if it holds a special character."""
    shown = c
    if not raw:
        codes = ", ".join(str(code) for code in FORMULA_CODES)
        first = f"unicode({c})"
        # Most text fails the cheap range test before the IN list is looked at.
        risky = f"({first} <= 64 OR {first} >= 65291) AND {first} IN ({codes})"
        shown = f"(CASE WHEN {risky} THEN '''' || {c} ELSE {c} END)"
    return _quoted_if(shown, _specials(c, delimiter))


def _other_cell(c: str, delimiter: str, raw: bool) -> str:
    """Whatever is stored, as text: TEXT as above, a BLOB as hex, a number as SQLite prints it."""
    number = f"CASE typeof({c}) WHEN 'blob' THEN hex({c}) ELSE CAST({c} AS TEXT) END"
    return (
        f"CASE WHEN typeof({c}) = 'text' THEN {_text_cell(c, delimiter, raw)} "
        f"ELSE {_quoted_if(f'({number})', f'instr({number}, {_literal(delimiter)}) > 0')} END"
    )


def _expected(kind: str, scale: int, c: str) -> tuple[str, str] | None:
    """(test that *c* holds the expected form, its cheap rendering) for a typed column."""
    text = f"typeof({c}) = 'text'"
    if kind == "integer":
        return f"typeof({c}) = 'integer'", c
    if kind == "numeric":
        return f"typeof({c}) IN ('integer', 'real')", f"printf('%.{scale}f', {c})"
    if kind == "boolean":
        return (
            f"typeof({c}) = 'integer' AND {c} IN (0, 1)",
            f"CASE {c} WHEN 1 THEN 'true' ELSE 'false' END",
        )
    if kind == "date":
        return f"{text} AND {c} GLOB '{_DATE}'", c
    if kind == "time":
        # SQLAlchemy writes times with microseconds: that shape first.
        shapes = f"({c} GLOB '{_TIME}{_MICROS}' OR {c} GLOB '{_TIME}')"
        return (
            f"{text} AND {shapes}",
            f"CASE WHEN substr({c}, 9) = '.000000' THEN substr({c}, 1, 8) ELSE {c} END",
        )
    if kind == "datetime":
        moment = f"{_DATE} {_TIME}"
        shapes = f"({c} GLOB '{moment}' OR {c} GLOB '{moment}{_MICROS}')"
        trimmed = f"CASE WHEN substr({c}, 20) = '.000000' THEN substr({c}, 1, 19) ELSE {c} END"
        return f"{text} AND {shapes}", f"({trimmed}) || '+00:00'"
    return None


def cell_sql(name: str, kind: str, scale: int, notnull: bool, delimiter: str, raw: bool) -> str:
    """SQL rendering one column of a row exactly as ``csv.writer`` would write the cell."""
    c = _ident(name)
    if kind == "rowid":
        return (
            c
            if delimiter not in _SAFE_CHARS["integer"]
            else _quoted_if(c, f"instr({c}, {_literal(delimiter)}) > 0")
        )
    branches = [] if notnull else [f"WHEN {c} IS NULL THEN ''"]
    expected = _expected(kind, scale, c)
    if expected is not None:
        test, cheap = expected
        if delimiter in _SAFE_CHARS[kind]:
            cheap = _quoted_if(f"({cheap})", f"instr({cheap}, {_literal(delimiter)}) > 0")
        branches.append(f"WHEN {test} THEN {cheap}")
        branches.append(f"ELSE {_other_cell(c, delimiter, raw)}")
    elif kind == "text":
        branches.append(f"WHEN typeof({c}) = 'text' THEN {_text_cell(c, delimiter, raw)}")
        branches.append(f"ELSE {_other_cell(c, delimiter, raw)}")
    else:
        branches.append(f"ELSE {_other_cell(c, delimiter, raw)}")
    return f"(CASE {' '.join(branches)} END)"


def lines_sql(
    table: str,
    kinds: dict[str, tuple[str, int, bool]],
    columns: Sequence[str],
    options: CsvOptions,
) -> tuple[str, list[str]]:
    """The SELECT of one finished line (bytes, CRLF-terminated) per row, and its parameters."""
    cells = [cell_sql(name, *kinds[name], options.delimiter, options.raw) for name in columns]
    line = f" || {_literal(options.delimiter)} || ".join(cells)
    if len(columns) == 1:  # a lone empty cell must show as "" (else the row would vanish)
        line = f"CASE WHEN {line} = '' THEN '\"\"' ELSE {line} END"
    sql = f"SELECT CAST({line} || '\r\n' AS BLOB) FROM {_ident(table)}"
    params: list[str] = []
    where = date_column(table, options)
    if where is not None:
        tests = []
        if options.since:
            tests.append(f"{_ident(where)} >= ?")
            params.append(options.since.isoformat())
        if options.until:
            tests.append(f"{_ident(where)} <= ?")
            params.append(options.until.isoformat())
        sql += " WHERE " + " AND ".join(tests)
    return sql + " ORDER BY rowid", params


def header_line(columns: Sequence[str], options: CsvOptions) -> bytes:
    out = io.StringIO(newline="")
    csv.writer(out, delimiter=options.delimiter, lineterminator="\r\n").writerow(columns)
    return out.getvalue().encode()


def journal_mode(connection: sqlite3.Connection) -> str:
    return str(connection.execute("PRAGMA journal_mode").fetchone()[0]).lower()


def write_table(
    connection: sqlite3.Connection,
    table: str,
    write: Write,
    options: CsvOptions = CsvOptions(),
    *,
    progress: Progress | None = None,
    warn: Warn | None = None,
) -> int:
    """Write *table* as CSV (header first) through *write*; returns the data rows.

    *warn* is called once if the read lasts longer than :data:`LONG_READ` on a
    database in rollback-journal mode (where it holds up the app's writes).
    """
    check_delimiter(options.delimiter)
    check_table_name(table)
    with read_errors(table):
        kinds = column_kinds(connection, table)
        columns = pick_columns(table, list(kinds), options.columns)
        sql, params = lines_sql(table, kinds, columns, options)
        watch = warn is not None and journal_mode(connection) != "wal"
        if options.excel:
            write(BOM)
        write(header_line(columns, options))
        cursor = connection.cursor()
        cursor.execute(sql, params)
        started = time.monotonic()
        count = 0
        while rows := cursor.fetchmany(BATCH):
            write(b"".join([row[0] for row in rows]))
            count += len(rows)
            if progress:
                progress(len(rows))
            if watch and time.monotonic() - started > LONG_READ:
                assert warn is not None
                warn(ROLLBACK_WARNING.format(path=_database_name(connection)))
                watch = False
        return count


def _database_name(connection: sqlite3.Connection) -> str:
    for _, name, path in connection.execute("PRAGMA database_list"):
        if name == "main":
            return str(path) or ":memory:"
    return "DATABASE"
