"""Rows in and out by each driver's fast path: the bulk loader and the raw cursor.

``db-seed`` and the logical restore load millions of rows: through SQLAlchemy's
``insert()`` that costs several times the driver's own bulk path. The loader
here is the one place that knows it: ``executemany`` on the sqlite3 cursor with
values converted the way SQLAlchemy would store them, and one ``COPY … FROM
STDIN`` per table on PostgreSQL. Everything runs in the caller's transaction.

:func:`raw_cursor` is the one way to reach the driver's cursor: a driver error
raised while it is used comes out as SQLAlchemy's ``DBAPIError`` (with the
driver's error as ``.orig``), exactly like an error of a SQLAlchemy ``execute``,
so callers handle one kind of error and :func:`planctl.failures.classify` reads
its code.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Date, DateTime, Table, Time, exc
from sqlalchemy.engine import Connection

Convert = Callable[[Any], Any]
MEMO_LIMIT = 4096


class _Memo(dict[Any, Any]):
    """A bounded cache of one conversion; a hit is a plain dict lookup, no Python frame."""

    def __init__(self, convert: Convert) -> None:
        super().__init__()
        self.convert = convert

    def __missing__(self, value: Any) -> Any:
        if len(self) >= MEMO_LIMIT:
            self.clear()
        converted = self[value] = self.convert(value)
        return converted


def memoized(convert: Convert) -> Convert:
    """*convert* with a cache: dates, times and timestamps repeat across rows.

    Only for conversions whose equal inputs give identical outputs (never for
    Decimal values: Decimal("1.0") == Decimal("1.00")).
    """
    return _Memo(convert).__getitem__


def isoformat(value: Any) -> str:
    return str(value.isoformat())


def _driver_error(connection: Connection) -> type[Exception]:
    if connection.dialect.name == "postgresql":
        import psycopg

        return psycopg.Error
    import sqlite3

    return sqlite3.Error


@contextmanager
def raw_cursor(connection: Connection, statement: str = "") -> Iterator[Any]:
    """The DB-API cursor under *connection*, closed afterwards; a driver error raised
    while it is used becomes a ``DBAPIError`` naming *statement*."""
    base = _driver_error(connection)
    raw = connection.connection.dbapi_connection
    assert raw is not None  # a live Connection always holds its driver connection
    cursor = raw.cursor()
    try:
        yield cursor
    except base as error:
        raise exc.DBAPIError.instance(statement, None, error, base) from error
    finally:
        cursor.close()


def _sqlite_timestamp(value: dt.datetime) -> str:
    # Naive UTC, as SQLite's CURRENT_TIMESTAMP writes it ("2026-11-22 10:15:00").
    return value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(" ")


def _sqlite_converters(
    connection: Connection, table: Table, columns: Sequence[str]
) -> list[tuple[int, Convert]]:
    """Per column, what SQLAlchemy would do to a value before the sqlite3 driver sees it."""
    dialect = connection.dialect
    converters: list[tuple[int, Convert]] = []
    for i, name in enumerate(columns):
        kind = table.c[name].type
        if isinstance(kind, DateTime) and kind.timezone:
            converters.append((i, memoized(_sqlite_timestamp)))
        elif (process := kind.dialect_impl(dialect).bind_processor(dialect)) is not None:
            repeats = isinstance(kind, (Date, Time, DateTime))
            converters.append((i, memoized(process) if repeats else process))
    return converters


def _postgres_converters(table: Table, columns: Sequence[str]) -> list[tuple[int, Convert]]:
    """Dates, times and timestamps as ISO text, cached: psycopg formats a str several
    times faster than a datetime, and the server reads the same value."""
    return [
        (i, memoized(isoformat))
        for i, name in enumerate(columns)
        if isinstance(table.c[name].type, (Date, Time, DateTime))
    ]


def _converted(
    rows: Iterable[Sequence[Any]], converters: Sequence[tuple[int, Convert]]
) -> Iterator[Sequence[Any]]:
    if not converters:
        yield from rows
        return
    for row in rows:
        values = row if type(row) is list else list(row)  # a list is converted in place
        for i, convert in converters:
            value = values[i]
            if value is not None:
                values[i] = convert(value)
        yield values


def load_rows(
    connection: Connection,
    table: Table,
    columns: Sequence[str],
    batches: Iterable[Sequence[Sequence[Any]]],
) -> int:
    """Insert every row of *batches* (lists of rows, values in *columns* order) into
    *table*, in the caller's transaction; the number of rows."""
    quote = connection.dialect.identifier_preparer.quote
    target = f"{quote(table.name)} ({', '.join(quote(c) for c in columns)})"
    count = 0
    if connection.dialect.name == "postgresql":
        converters = _postgres_converters(table, columns)
        statement = f"COPY {target} FROM STDIN"
        # One COPY per table: the server loads while the next batch is made.
        with raw_cursor(connection, statement) as cursor, cursor.copy(statement) as copy:
            write = copy.write_row
            for rows in batches:
                for row in _converted(rows, converters):
                    write(row)
                count += len(rows)
        return count
    converters = _sqlite_converters(connection, table, columns)
    statement = f"INSERT INTO {target} VALUES ({', '.join('?' for _ in columns)})"
    with raw_cursor(connection, statement) as cursor:
        for rows in batches:
            cursor.executemany(statement, _converted(rows, converters))
            count += len(rows)
    return count
