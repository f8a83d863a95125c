"""Which backups are this database's: its id and its engine, read once per command."""

from __future__ import annotations

from typing import TYPE_CHECKING

from planctl.backup.catalog import Owner
from planctl.errors import PlanctlError
from planctl.target import Target

if TYPE_CHECKING:
    from planctl.db.lockwait import LockWait


def has_database(target: Target) -> bool:
    """A SQLite file with content (PostgreSQL: the server decides; see restore)."""
    if target.is_sqlite:
        from planctl.backup import sqlite_engine

        path = sqlite_engine.database_file(target)
        return path.is_file() and path.stat().st_size > 0
    return True


def live_identity(target: Target, lock_wait: LockWait | None = None) -> str | None:
    """The id of the database at *target* (None: new, empty or from before ids).
    With *lock_wait*, a database kept locked is waited for within its budget (a restore:
    SQLite's EXCLUSIVE lock keeps even this read out)."""
    from planctl.db import identity, lockwait
    from planctl.db.engine import connect

    if not has_database(target):
        return None
    if lock_wait is None:
        with connect(target) as connection:
            return identity.read(connection)

    def attempt(seconds: float) -> str | None:
        with connect(target, lock_timeout=seconds) as connection:
            return identity.read(connection)

    subject = lockwait.subject_for(target)
    return lockwait.retry(lock_wait, subject, "reading the database's id", attempt)


def this_database(target: Target) -> Owner:
    """The owner whose backups count: the live database's id when it can be read (a
    command like ``list`` works without the database), and its engine."""
    try:
        database_id = live_identity(target)
    except PlanctlError:
        database_id = None
    return Owner(database_id, target.engine)
