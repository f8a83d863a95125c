"""Whole-table operations shared by logical restores and deltas (both engines)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.engine import Connection

from planctl.backup.store import BackupError
from planctl.text import plural


def empty(connection: Connection, tables: Sequence[str]) -> None:
    quote = connection.dialect.identifier_preparer.quote
    if connection.dialect.name == "postgresql":
        names = ", ".join(quote(t) for t in tables)
        connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        return
    for name in reversed(tables):  # children first
        connection.execute(text(f"DELETE FROM {quote(name)}"))


def continue_sequences(connection: Connection, tables: Sequence[str]) -> None:
    """PostgreSQL: each id sequence continues after the highest restored id."""
    quote = connection.dialect.identifier_preparer.quote
    for name in tables:
        connection.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence(:name, 'id'), "
                f"COALESCE(max(id), 0) + 1, false) FROM {quote(name)}"
            ),
            {"name": quote(name)},
        )


def check_foreign_keys(connection: Connection, name: str) -> None:
    """SQLite loads with enforcement off (much faster); prove nothing dangles before commit."""
    problems = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if problems:
        tables = ", ".join(sorted({str(row[0]) for row in problems}))
        raise BackupError(
            f"backup {name} would leave {plural(len(problems), 'row')} with broken foreign keys "
            f"in {tables}",
            "the database was left unchanged; restore another backup",
        )
