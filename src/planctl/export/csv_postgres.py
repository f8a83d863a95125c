"""PostgreSQL path of the CSV export: the server renders every cell, ``COPY`` every line.

Each cell is formatted by the server in the SELECT, under fixed text-output
settings (UTC timestamps, ISO dates): ISO dates and times, numbers at their
declared scale, ``true``/``false``, text neutralised against formula
injection. ``COPY (SELECT …) TO STDOUT`` then renders whole lines; COPY ends
rows in LF where ``csv`` writes CRLF, so each row (one CopyData message) gets
its CR here, and a bare CR inside a value is quoted by both. A lone column or
a non-ASCII delimiter (COPY takes one byte) goes through ``csv.writer``
instead, from the very same SELECT: the bytes are the same (a test proves it).

PostgreSQL is statically typed, so no hostile-typing checks are needed here.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Numeric,
    Select,
    String,
    Table,
    Text,
    Time,
    case,
    func,
    literal,
    select,
)
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from planctl.db.bulk import raw_cursor
from planctl.db.schema import metadata
from planctl.export.csv_common import (
    BATCH,
    FORMULA_CODES,
    CsvOptions,
    Progress,
    Write,
    check_table_name,
    date_column,
    pick_columns,
)

#: Server settings that shape PostgreSQL's text output (see :func:`cell_expression`).
SETTINGS = (
    "SET LOCAL TimeZone = 'UTC'",
    "SET LOCAL DateStyle = 'ISO, YMD'",
    "SET LOCAL IntervalStyle = 'iso_8601'",
    "SET LOCAL client_encoding = 'UTF8'",
)


def cell_expression(column: Column[Any], raw: bool) -> ColumnElement[Any]:
    """SQL that renders *column* exactly as the CSV shows it (text, or an integer)."""
    kind = column.type
    if isinstance(kind, DateTime):
        # Python's isoformat: all six digits of a fraction ('.152230'), none when it is
        # zero; PostgreSQL's text form trims trailing zeros ('.15223').
        # One to_char (the server's costliest step here: three took 40% of the export's
        # server time) and a replace: '.000000' can only be the fraction.
        utc = func.timezone("UTC", column)
        stamp = func.to_char(utc, "YYYY-MM-DD HH24:MI:SS.US")
        return func.replace(stamp, ".000000", "") + literal("+00:00")
    if isinstance(kind, (Boolean, Date, Time, Numeric)):
        return func.cast(column, Text)  # true/false, ISO date/time, numeric at its scale
    if isinstance(kind, (String, Text)):
        text = func.nullif(column, "")  # COPY would quote '' as "" where csv writes nothing
        if raw:
            return text
        # ascii() is the first character's code point in a UTF-8 database.
        risky = func.ascii(column).in_(list(FORMULA_CODES))
        return case((risky, literal("'") + column), else_=text)
    return column


def build_select(table: Table, columns: Sequence[Column[Any]], options: CsvOptions) -> Select[Any]:
    query = select(*[cell_expression(c, options.raw).label(c.name) for c in columns])
    query = query.select_from(table)
    where = date_column(table.name, options)
    if where is not None:
        if options.since:
            query = query.where(table.c[where] >= options.since)
        if options.until:
            query = query.where(table.c[where] <= options.until)
    return query.order_by(*table.primary_key.columns)


def literal_sql(connection: Connection, query: Select[Any]) -> str:
    """The SELECT as SQL text; its only literals are dates and constants planctl chose."""
    return str(query.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True}))


def write_table(
    connection: Connection,
    table_name: str,
    write: Write,
    options: CsvOptions = CsvOptions(),
    *,
    progress: Progress | None = None,
    fast_path: bool = True,
) -> int:
    """Write one table as CSV (header first) through *write*; returns the data rows."""
    table = metadata.tables[check_table_name(table_name)]
    names = pick_columns(table.name, list(table.c.keys()), options.columns)
    columns = [table.c[name] for name in names]
    query = build_select(table, columns, options)
    for setting in SETTINGS:
        connection.exec_driver_sql(setting)
    if options.excel:
        write("\ufeff".encode())
    if fast_path and len(columns) > 1 and options.delimiter.isascii():
        return copy_out(connection, query, options.delimiter, write, progress=progress)
    return write_rows(connection, query, names, options.delimiter, write, progress=progress)


def copy_out(
    connection: Connection,
    query: Select[Any],
    delimiter: str,
    write: Write,
    *,
    progress: Progress | None,
) -> int:
    """COPY *query*'s rows, header first, to *write*; returns the data rows."""
    compiled = literal_sql(connection, query)
    quoted = delimiter.replace("'", "''")
    statement = f"COPY ({compiled}) TO STDOUT WITH (FORMAT csv, HEADER true, DELIMITER '{quoted}')"
    buffer = bytearray()
    rows = -1  # the first message is the header line
    reported = 0
    with raw_cursor(connection, statement) as cursor, cursor.copy(statement) as copy:
        read = copy.read
        while row := read():
            buffer += row[:-1]
            buffer += b"\r\n"
            rows += 1
            if len(buffer) >= 1 << 20:
                write(buffer)
                buffer.clear()
                if progress:
                    progress(rows - reported)
                    reported = rows
        write(buffer)
    rows = max(rows, 0)
    if progress and rows > reported:
        progress(rows - reported)
    return rows


def write_rows(
    connection: Connection,
    query: Select[Any],
    names: Sequence[str],
    delimiter: str,
    write: Write,
    *,
    progress: Progress | None,
) -> int:
    """The generic path: rows from a server-side cursor through ``csv.writer``."""
    text = io.StringIO(newline="")
    writer = csv.writer(text, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(names)
    result = connection.execute(
        query, execution_options={"stream_results": True, "yield_per": BATCH}
    )
    count = 0
    for rows in result.partitions(BATCH):
        writer.writerows(rows)
        write(text.getvalue().encode())
        text.seek(0)
        text.truncate()
        count += len(rows)
        if progress:
            progress(len(rows))
    write(text.getvalue().encode())  # the header of an empty result
    return count
