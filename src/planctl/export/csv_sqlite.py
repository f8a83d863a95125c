"""SQLite fast path of the CSV export: whole lines rendered by SQLite, in parallel.

Python's sqlite3 module turns every cell into a Python object, and ``csv``
then formats each one: most of the generic path's time. Here SQLite renders
each CSV line itself (the same cell expressions as the generic path, plus
``csv.QUOTE_MINIMAL``'s quoting rule), so Python only moves one ``bytes``
per row. For a large table the id range is split between this process and
forked workers (SQLite's work is CPU-bound and the GIL would serialise
threads); each worker spools its part to an unlinked temporary file that is
appended in order.

All readers share one snapshot: a connection holds SQLite's write lock
(``BEGIN IMMEDIATE``) while every reader (each worker with its own
connection, opened after the fork) opens its read transaction, so no commit
can fall between them; the lock is released before the rows are read.
Tests prove the output byte-identical to the generic path, and the snapshot
shared under a concurrent writer.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Integer,
    Numeric,
    String,
    Table,
    Time,
    case,
    func,
    literal,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from planctl.errors import DatabaseError
from planctl.export import parallel
from planctl.export.csv import literal_sql

BATCH = 5000
LOCK_TIMEOUT = 1.0  # seconds to wait for the write lock before reading serially
#: Characters a rendered non-text cell can contain; text can contain anything.
_RENDERED_CHARS: list[tuple[type, str]] = [
    (Boolean, "truefals"),
    (Integer, "-0123456789"),
    (Numeric, "-.0123456789"),
    (DateTime, "-+:. 0123456789"),
    (Date, "-0123456789"),
    (Time, ":.0123456789"),
]

Progress = Callable[[int], None]
Write = Callable[[bytes | bytearray], Any]


def _may_need_quotes(column: Column[Any], delimiter: str) -> bool:
    for kind, chars in _RENDERED_CHARS:
        if isinstance(column.type, kind):
            return delimiter in chars
    return True


def line_expression(
    columns: Sequence[Column[Any]], cells: Sequence[ColumnElement[Any]], delimiter: str
) -> ColumnElement[Any]:
    """One CSV line (ending in CRLF) as ``csv.writer`` would write these cells."""
    parts: list[ColumnElement[Any]] = []
    for column, cell in zip(columns, cells, strict=True):
        if not _may_need_quotes(column, delimiter):
            parts.append(type_coerce(func.ifnull(cell, "") if column.nullable else cell, String))
            continue
        # Text is checked on the stored value (the formula prefix ' is never special).
        probe = column if isinstance(column.type, String) else cell
        special = or_(*(func.instr(probe, char) > 0 for char in ('"', delimiter, "\n", "\r")))
        quoted = literal('"') + func.replace(cell, '"', '""') + literal('"')
        parts.append(
            type_coerce(case((probe.is_(None), ""), (special, quoted), else_=cell), String)
        )
    line = parts[0]
    for part in parts[1:]:
        line = line + literal(delimiter) + part
    return type_coerce(line + literal("\r\n"), String)


@contextlib.contextmanager
def _read_errors(table: Table) -> Iterator[None]:
    """The driver's own cursors are not translated by SQLAlchemy: one clear error instead."""
    try:
        yield
    except sqlite3.Error as error:
        raise DatabaseError(
            f"reading table '{table.name}' failed: {error}",
            "check the database file (planctl db-info) and retry",
        ) from None


def write_lines(
    connection: Connection,
    table: Table,
    where: ColumnElement[bool] | None,
    line: ColumnElement[Any],
    write: Write,
    *,
    jobs: int,
    progress: Progress | None,
) -> int:
    """Write *table*'s rows (those matching *where*) as *line*s, in primary-key order."""
    with _read_errors(table):
        key = next(iter(table.primary_key.columns))
        lines = select(func.cast(line, _Blob())).select_from(table)
        if where is not None:
            lines = lines.where(where)
        path = _database_file(connection)
        if jobs > 1 and path is not None and len(table.primary_key.columns) == 1:
            span = select(func.min(key), func.max(key)).select_from(table)
            if where is not None:
                span = span.where(where)

            def ranges(low: int | None, high: int | None) -> list[str] | None:
                bounds = parallel.split(low, high, jobs)
                if bounds is None:
                    return None
                return [
                    literal_sql(connection, lines.where(key >= a, key < b).order_by(key))
                    for a, b in bounds
                ]

            done = _parallel(
                path.resolve().as_uri(), literal_sql(connection, span), ranges, write, progress
            )
            if done is not None:
                return done
        # One statement on the caller's connection: its own consistent read.
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        return _stream(cursor, literal_sql(connection, lines.order_by(key)), write, progress)


def _parallel(
    uri: str,
    span: str,
    ranges: Callable[[int | None, int | None], list[str] | None],
    write: Write,
    progress: Progress | None,
) -> int | None:
    """Read the ranges in this process and forked workers, all in one snapshot.

    A connection holds SQLite's write lock (``BEGIN IMMEDIATE``) while this
    process and every worker open their read transactions, so no commit can
    fall between them; then it lets go and writers carry on. Each worker opens
    its own connection after the fork (SQLite connections must not cross one).
    None when the lock cannot be had soon or the table is too small to split.
    """
    try:
        lock = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=LOCK_TIMEOUT)
    except sqlite3.Error:
        return None
    with contextlib.closing(lock):
        try:
            lock.execute("BEGIN IMMEDIATE")
            mine = _reader(uri)
        except sqlite3.Error:  # busy, read-only, or our own caller's pending write
            return None
        with contextlib.closing(mine):
            low, high = mine.execute(span).fetchone()
            sqls = ranges(low, high)
            if sqls is None:
                return None
            openers = [functools.partial(_open_range, uri, sql) for sql in sqls[1:]]
            with parallel.workers(openers) as started:
                lock.execute("ROLLBACK")  # every reader has its snapshot: writers may go on
                return parallel.drain(_task(mine, sqls[0]), started, write, progress)


def _reader(uri: str) -> sqlite3.Connection:
    """A read-only connection inside a read transaction (its snapshot taken)."""
    reader = sqlite3.connect(uri + "?mode=ro", uri=True, isolation_level=None)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except BaseException:
        reader.close()
        raise
    return reader


def _open_range(uri: str, sql: str) -> parallel.Task:
    """In a worker: its own connection and snapshot, then the range's lines."""
    return _task(_reader(uri), sql)


class _Blob(String):
    """CAST(… AS BLOB): the driver hands over bytes, no decode and encode again."""

    __visit_name__ = "BLOB"


def _stream(cursor: Any, sql: str, write: Write, progress: Progress | None) -> int:
    cursor.execute(sql)
    count = 0
    while rows := cursor.fetchmany(BATCH):
        write(b"".join([row[0] for row in rows]))
        count += len(rows)
        if progress:
            progress(len(rows))
    return count


def _task(reader: sqlite3.Connection, sql: str) -> parallel.Task:
    return lambda write, progress: _stream(reader.cursor(), sql, write, progress)


def _database_file(connection: Connection) -> Path | None:
    from planctl.db.engine import sqlite_path

    if not parallel.available():
        return None
    path = sqlite_path(connection.engine.url)
    return path if path is not None and path.is_file() else None
