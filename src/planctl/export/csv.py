"""Streaming CSV export of any table of the schema.

Every cell is formatted by the database itself, in the SELECT (ISO dates and
times, UTC timestamps, numbers at their declared scale, booleans as
true/false, text neutralised against spreadsheet formula injection). The
generic path moves those ready values from the cursor to ``csv.writer`` in
batches. The fast paths let the database render whole lines from the very
same SELECT and produce byte-identical output (tests prove it): PostgreSQL's
``COPY (SELECT …) TO STDOUT`` (:mod:`planctl.export.csv_postgres`) and, on
SQLite, lines rendered by SQL, read by several processes in one snapshot for
a large table (:mod:`planctl.export.csv_sqlite`).

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
    and_,
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
        # Every formula start is at most '@' (64): most text fails the cheap test first.
        first = func.unicode(column)
        codes = [ord(c) for c in FORMULA_STARTS]
        return case(
            (and_(first <= max(codes), first.in_(codes)), literal("'") + column), else_=column
        )
    return column


def prepare_session(connection: Connection) -> None:
    """Fix the server settings that shape PostgreSQL's text output, for this transaction."""
    if connection.dialect.name == "postgresql":
        from planctl.export.csv_postgres import SETTINGS

        for setting in SETTINGS:
            connection.exec_driver_sql(setting)


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
    jobs: int = 1,
) -> int:
    """Write one table as CSV to *out*; returns the number of data rows.

    *fast_path* lets the database render whole lines (PostgreSQL ``COPY``,
    SQLite :mod:`planctl.export.csv_sqlite`); the output is the same bytes.
    With *jobs* > 1 a large SQLite table is read by that many processes in one
    snapshot of the committed data (so not with uncommitted writes pending on
    *connection*).
    """
    check_delimiter(options.delimiter)
    table = resolve_table(table_name)
    columns = resolve_columns(table, options.columns)
    dialect = connection.dialect.name
    query = build_select(table, columns, dialect, options)
    prepare_session(connection)
    if options.excel:
        out.write("\ufeff")
    # A lone column is left to csv, which writes "" for an empty row.
    # COPY takes a one-byte delimiter only (€ or § go the generic way).
    if fast_path and dialect == "postgresql" and len(columns) > 1 and options.delimiter.isascii():
        from planctl.export import csv_postgres

        return csv_postgres.copy_out(
            connection, query, options.delimiter, _byte_writer(out), progress=progress
        )
    writer = _writer(out, options)
    writer.writerow([c.name for c in columns])
    if fast_path and dialect == "sqlite" and len(columns) > 1:
        from planctl.export import csv_sqlite

        cells = [cell_expression(c, dialect, options.raw) for c in columns]
        line = csv_sqlite.line_expression(columns, cells, options.delimiter)
        return csv_sqlite.write_lines(
            connection,
            table,
            query.whereclause,
            line,
            _byte_writer(out),
            jobs=jobs,
            progress=progress,
        )
    return _write_rows(connection, query, writer, progress)


def _byte_writer(out: TextIO) -> Callable[[bytes | bytearray], Any]:
    """Write UTF-8 bytes to *out*: straight to its binary buffer when it has one."""
    raw = getattr(out, "buffer", None)
    out.flush()
    if raw is not None:
        return raw.write
    decoder = codecs.getincrementaldecoder("utf-8")()
    return lambda chunk: out.write(decoder.decode(chunk))


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
        cursor.execute(literal_sql(connection, query))
        partitions = iter(lambda: cursor.fetchmany(BATCH), [])
    count = 0
    for rows in partitions:
        writer.writerows(rows)
        count += len(rows)
        if progress:
            progress(len(rows))
    return count


def literal_sql(connection: Connection, query: Select[Any]) -> str:
    """The SELECT as SQL text; its only literals are dates and constants planctl chose."""
    return str(query.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True}))


def default_jobs() -> int:
    """One export process per core, at most four."""
    import os

    from planctl.export.parallel import MAX_JOBS

    return max(1, min(os.cpu_count() or 1, MAX_JOBS))


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
            # jobs=1: every table from the caller's one transaction, so the files agree
            counts[name] = export_table(connection, name, handle, table_options, progress=progress)
    return counts
