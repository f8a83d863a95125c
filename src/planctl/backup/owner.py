"""Which backups are this database's: its id and its engine, read once per command."""

from __future__ import annotations

from typing import TYPE_CHECKING

from planctl.backup.catalog import Owner
from planctl.db.engine import parse_url
from planctl.errors import PlanctlError

if TYPE_CHECKING:
    from planctl.db.lockwait import LockWait


def engine_name(database_url: str) -> str:
    return parse_url(database_url).get_backend_name()


def has_database(database_url: str) -> bool:
    """A SQLite file with content (PostgreSQL: the server decides; see restore)."""
    if engine_name(database_url) == "sqlite":
        from planctl.backup import sqlite_engine

        path = sqlite_engine.database_file(database_url)
        return path.is_file() and path.stat().st_size > 0
    return True


def live_identity(database_url: str, lock_wait: LockWait | None = None) -> str | None:
    """The id of the database at *database_url* (None: new, empty or from before ids).
    With *lock_wait*, a database kept locked is waited for within its budget (a restore:
    SQLite's EXCLUSIVE lock keeps even this read out)."""
    from planctl.db import identity, lockwait
    from planctl.db.engine import connect

    if not has_database(database_url):
        return None
    if lock_wait is None:
        with connect(database_url) as connection:
            return identity.read(connection)

    def attempt(seconds: float) -> str | None:
        with connect(database_url, lock_timeout=seconds) as connection:
            return identity.read(connection)

    target = lockwait.target_for(database_url)
    return lockwait.retry(lock_wait, target, "reading the database's id", attempt)


def this_database(database_url: str) -> Owner:
    """The owner whose backups count: the live database's id when it can be read (a
    command like ``list`` works without the database), and its engine."""
    try:
        database_id = live_identity(database_url)
    except PlanctlError:
        database_id = None
    return Owner(database_id, engine_name(database_url))
