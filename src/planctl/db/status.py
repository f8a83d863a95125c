"""What ``db-info`` shows: backend, masked URL, revision vs head, rows per table, journal mode."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import func, inspect, select, text

from planctl.config import mask_url
from planctl.db.engine import connect
from planctl.db.revisions import head_revision
from planctl.db.schema import TABLE_NAMES, metadata


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


def database_info(database_url: str) -> DatabaseInfo:
    """Inspect the database read-only; missing tables count as None."""
    with connect(database_url) as connection:
        dialect = connection.dialect
        version = ".".join(str(part) for part in (dialect.server_version_info or ()))
        existing = set(inspect(connection).get_table_names())
        heads = (
            connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
            if "alembic_version" in existing
            else []
        )
        journal = None
        if dialect.name == "sqlite":
            journal = str(connection.exec_driver_sql("PRAGMA journal_mode").scalar_one()).lower()
        counts: dict[str, int | None] = {}
        for name in sorted(TABLE_NAMES):
            if name in existing:
                table = metadata.tables[name]
                counts[name] = connection.execute(
                    select(func.count()).select_from(table)
                ).scalar_one()
            else:
                counts[name] = None
    return DatabaseInfo(
        backend=dialect.name,
        server_version=version or "?",
        masked_url=mask_url(database_url),
        revision=heads[0] if heads else None,
        head=head_revision(),
        tables=counts,
        journal_mode=journal,
    )
