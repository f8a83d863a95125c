"""What ``db-info`` shows: backend, masked URL, revision vs head, rows per table, journal mode."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from planctl.db.names import TABLES
from planctl.db.revisions import head_revision
from planctl.target import Target

#: Runs one SQL statement, returns its rows.
Query = Callable[[str], Sequence[Sequence[Any]]]


@dataclass(frozen=True)
class DatabaseInfo:
    backend: str
    server_version: str
    masked_url: str
    revision: str | None
    head: str | None
    tables: dict[str, int | None] = field(default_factory=dict)
    journal_mode: str | None = None  # SQLite only: wal, delete, truncate, …

    @property
    def at_head(self) -> bool:
        return self.revision is not None and self.revision == self.head

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["at_head"] = self.at_head
        return data


def database_info(target: Target) -> DatabaseInfo:
    """Inspect the database read-only; missing tables count as None.

    A plain SQLite file is read through the driver alone (no SQLAlchemy import).
    """
    path = target.plain_sqlite_file
    if path is not None:
        import sqlite3

        from planctl.db.sqlite_file import connect_file

        driver = connect_file(path)
        try:
            query = _rows(driver.execute)
            tables = query("SELECT name FROM sqlite_master WHERE type='table'")
            existing = {row[0] for row in tables}
            return _info(target, "sqlite", sqlite3.sqlite_version, existing, query)
        finally:
            driver.close()
    from sqlalchemy import inspect

    from planctl.db.engine import connect

    with connect(target) as connection:
        dialect = connection.dialect
        version = ".".join(str(part) for part in (dialect.server_version_info or ()))
        existing = set(inspect(connection).get_table_names())
        return _info(target, dialect.name, version, existing, _rows(connection.exec_driver_sql))


def _rows(execute: Callable[[str], Any]) -> Query:
    return lambda sql: execute(sql).fetchall()


def _info(
    target: Target, backend: str, version: str, existing: set[str], query: Query
) -> DatabaseInfo:
    heads = []
    if "alembic_version" in existing:
        heads = [row[0] for row in query("SELECT version_num FROM alembic_version")]
    journal = str(query("PRAGMA journal_mode")[0][0]).lower() if backend == "sqlite" else None
    counts: dict[str, int | None] = {
        name: query(f'SELECT count(*) FROM "{name}"')[0][0] if name in existing else None
        for name in sorted(TABLES)
    }
    return DatabaseInfo(
        backend=backend,
        server_version=version or "?",
        masked_url=target.masked,
        revision=heads[0] if heads else None,
        head=head_revision(),
        tables=counts,
        journal_mode=journal,
    )
