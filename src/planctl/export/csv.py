"""Streaming CSV export of any table of the schema.

Every cell is formatted by the database itself, in the SELECT (ISO dates and
times, UTC timestamps, numbers at their declared scale, booleans as
true/false, text neutralised against spreadsheet formula injection), so the
Python side only moves ready values from the cursor to ``csv.writer`` in
batches, and the PostgreSQL fast path (``COPY (SELECT …) TO STDOUT``) runs the
very same SELECT and produces byte-identical output.

Table and column names are checked against the schema and never pasted into
SQL from user input.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import difflib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

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
    type_coerce,
)
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from planctl.db.models import TABLE_NAMES, metadata
from planctl.errors import UnknownTableError, UsageError

BATCH = 5000
#: The date column that --since/--until filter on, per table.
DATE_COLUMNS = {
    "sesiones": "fecha",
    "interacciones": "fecha",
    "contrataciones": "fecha_inicio_prevista",
}
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")

Progress = Callable[[int], None]


@dataclass(frozen=True)
class CsvOptions:
    columns: Sequence[str] | None = None
    delimiter: str = ","
    excel: bool = False
    raw: bool = False  # do not neutralise formula-like text
    since: dt.date | None = None
    until: dt.date | None = None


def resolve_table(name: str) -> Table:
    """The schema's table called *name*, or UnknownTableError with a suggestion."""
    table = metadata.tables.get(name)
    if table is not None and name in TABLE_NAMES:
        return table
    words = [w for w in re.split(r"[^a-z_]+", name.lower()) if w]
    close = difflib.get_close_matches(name.strip().lower(), TABLE_NAMES, n=1, cutoff=0.5)
    if not close and words:
        close = difflib.get_close_matches(words[0], TABLE_NAMES, n=1, cutoff=0.5)
    if close:
        raise UnknownTableError(
            f"unknown table '{name}'", f"did you mean '{close[0]}'? (planctl db-info lists tables)"
        )
    raise UnknownTableError(f"unknown table '{name}'", "planctl db-info lists the tables")


def resolve_columns(table: Table, names: Sequence[str] | None) -> list[Column[Any]]:
    if not names:
        return list(table.columns)
    columns = []
    for name in names:
        if name not in table.c:
            close = difflib.get_close_matches(name, table.c.keys(), n=1)
            hint = (
                f"did you mean '{close[0]}'?" if close else f"columns: {', '.join(table.c.keys())}"
            )
            raise UsageError(f"unknown column '{name}' in table '{table.name}'", hint)
        columns.append(table.c[name])
    return columns


def cell_expression(column: Column[Any], dialect: str, raw: bool) -> ColumnElement[Any]:
    """SQL that renders *column* exactly as the CSV shows it (text, or an integer).

    PostgreSQL renders through its own text output under ``TimeZone=UTC`` and
    ``DateStyle=ISO`` (see :func:`prepare_session`), which is also the cheapest.
    """
    kind = column.type
    if dialect == "postgresql":
        if isinstance(kind, DateTime):
            return func.cast(column, Text) + literal(":00")  # '…+00' → '…+00:00'
        if isinstance(kind, (Boolean, Date, Time, Numeric)):
            return func.cast(column, Text)  # true/false, ISO date/time, numeric at its scale
        if isinstance(kind, (String, Text)):
            text = func.nullif(column, "")  # COPY would quote '' as "" where csv writes nothing
            if raw:
                return text
            risky = func.ascii(column).in_([ord(c) for c in FORMULA_STARTS])
            return case((risky, literal("'") + column), else_=text)
        return column
    if isinstance(kind, Boolean):
        return case((column.is_(None), None), (column, literal("true")), else_=literal("false"))
    if isinstance(kind, DateTime):
        # SQLite keeps 'YYYY-MM-DD HH:MM:SS[.ffffff]' in UTC (CURRENT_TIMESTAMP, SQLAlchemy);
        # NULL stays NULL through ||.
        trimmed = case(
            (func.substr(column, 20, 7) == ".000000", func.substr(column, 1, 19)), else_=column
        )
        return type_coerce(trimmed, String) + literal("+00:00")
    if isinstance(kind, Time):
        return case(
            (func.substr(column, 9, 7) == ".000000", func.substr(column, 1, 8)), else_=column
        )
    if isinstance(kind, Numeric):
        scale = kind.scale or 0
        if not scale:
            return column
        return case((column.is_(None), None), else_=func.printf(f"%.{scale}f", column))
    if isinstance(kind, (String, Text)):
        if raw:  # csv writes '' and NULL alike; unicode() is the cheapest first-char test
            return column
        risky = func.unicode(column).in_([ord(c) for c in FORMULA_STARTS])
        return case((risky, literal("'") + column), else_=column)
    return column


def prepare_session(connection: Connection) -> None:
    """Fix the server settings that shape PostgreSQL's text output, for this transaction."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET LOCAL TimeZone = 'UTC'")
        connection.exec_driver_sql("SET LOCAL DateStyle = 'ISO, YMD'")
        connection.exec_driver_sql("SET LOCAL IntervalStyle = 'iso_8601'")


def build_select(
    table: Table, columns: Sequence[Column[Any]], dialect: str, options: CsvOptions
) -> Select[Any]:
    exprs = [cell_expression(c, dialect, options.raw).label(c.name) for c in columns]
    query = select(*exprs).select_from(table)
    date_column = DATE_COLUMNS.get(table.name)
    if options.since or options.until:
        if date_column is None:
            raise UsageError(
                f"table '{table.name}' has no date to filter on",
                f"--since/--until work on {', '.join(sorted(DATE_COLUMNS))}",
            )
        if options.since:
            query = query.where(table.c[date_column] >= options.since)
        if options.until:
            query = query.where(table.c[date_column] <= options.until)
    return query.order_by(*table.primary_key.columns)


def check_delimiter(delimiter: str) -> None:
    """One printable character (or tab) that is not a quote or a line end."""
    if (
        len(delimiter) != 1
        or delimiter in "\"'\r\n"
        or not (delimiter.isprintable() or delimiter == "\t")
    ):
        raise UsageError(f"invalid delimiter {delimiter!r}", "use one character, e.g. ';' or '\\t'")


def _writer(out: TextIO, options: CsvOptions) -> Any:
    if options.excel:
        return csv.writer(out, dialect="excel", delimiter=options.delimiter)
    # RFC 4180 line ends; they also make csv quote a lone CR inside a value.
    return csv.writer(
        out, delimiter=options.delimiter, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL
    )


def export_table(
    connection: Connection,
    table_name: str,
    out: TextIO,
    options: CsvOptions = CsvOptions(),
    *,
    progress: Progress | None = None,
    fast_path: bool = True,
) -> int:
    """Write one table as CSV to *out*; returns the number of data rows."""
    check_delimiter(options.delimiter)
    table = resolve_table(table_name)
    columns = resolve_columns(table, options.columns)
    dialect = connection.dialect.name
    query = build_select(table, columns, dialect, options)
    prepare_session(connection)
    if options.excel:
        out.write("\ufeff")
    if fast_path and _can_copy(connection, columns, options):
        return _copy_out(connection, query, columns, out, options, progress)
    writer = _writer(out, options)
    writer.writerow([c.name for c in columns])
    return _write_rows(connection, query, writer, progress)


def _can_copy(connection: Connection, columns: Sequence[Column[Any]], options: CsvOptions) -> bool:
    # COPY writes \n line ends and, for a lone column, bare empty lines where csv writes "".
    return connection.dialect.name == "postgresql" and not options.excel and len(columns) > 1


def _write_rows(
    connection: Connection, query: Select[Any], writer: Any, progress: Progress | None
) -> int:
    if connection.dialect.name == "postgresql":
        result = connection.execute(
            query, execution_options={"stream_results": True, "yield_per": BATCH}
        )
        partitions: Iterable[Sequence[Any]] = result.partitions(BATCH)
    else:  # the driver's cursor: rows are plain tuples, fetched in batches
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(_literal_sql(connection, query))
        partitions = iter(lambda: cursor.fetchmany(BATCH), [])
    count = 0
    for rows in partitions:
        writer.writerows(rows)
        count += len(rows)
        if progress:
            progress(len(rows))
    return count


def _literal_sql(connection: Connection, query: Select[Any]) -> str:
    """The SELECT as SQL text; its only literals are dates and constants planctl chose."""
    return str(query.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True}))


def _copy_out(
    connection: Connection,
    query: Select[Any],
    columns: Sequence[Column[Any]],
    out: TextIO,
    options: CsvOptions,
    progress: Progress | None,
) -> int:
    """PostgreSQL fast path: COPY of the same SELECT, CSV made by the server."""
    compiled = _literal_sql(connection, query)
    delimiter = options.delimiter.replace("'", "''")
    statement = (
        f"COPY ({compiled}) TO STDOUT WITH (FORMAT csv, HEADER true, DELIMITER '{delimiter}')"
    )
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    raw = getattr(out, "buffer", None)  # write bytes straight through when we can
    if raw is not None:
        out.flush()
    decoder = codecs.getincrementaldecoder("utf-8")()
    pending: list[bytes] = []
    rows = -1  # the first message is the header line

    def flush() -> None:
        if pending:
            chunk = b"\r\n".join(pending) + b"\r\n"
            if raw is not None:
                raw.write(chunk)
            else:
                out.write(decoder.decode(chunk))
            if progress:
                progress(len(pending))
            pending.clear()

    with cursor.copy(statement) as copy:
        for block in copy:  # one CopyData message per row, ending in \n
            pending.append(bytes(block)[:-1])
            rows += 1
            if len(pending) >= 2000:
                flush()
        flush()
    return max(rows, 0)


def export_all(
    connection: Connection,
    directory: Path,
    options: CsvOptions = CsvOptions(),
    *,
    progress: Progress | None = None,
) -> dict[str, int]:
    """One ``<table>.csv`` per table in *directory*, each written atomically."""
    from planctl.export.output import OutputError, text_output

    if options.columns:
        raise UsageError("--columns does not go with --all", "export one table to pick columns")
    check_delimiter(options.delimiter)
    if directory.exists() and not directory.is_dir():
        raise OutputError(f"'{directory}' is not a directory", "give a directory to --all")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(
            f"cannot create directory '{directory}': {error.strerror}", "choose another --all"
        ) from None
    counts = {}
    for name in TABLE_NAMES:
        table_options = options
        if name not in DATE_COLUMNS and (options.since or options.until):
            table_options = CsvOptions(
                delimiter=options.delimiter, excel=options.excel, raw=options.raw
            )
        with text_output(directory / f"{name}.csv") as handle:
            counts[name] = export_table(connection, name, handle, table_options, progress=progress)
    return counts
