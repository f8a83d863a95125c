"""One sync run at a time per database and backend, for every backend.

SQLite: an ``flock`` on ``<database file>.sync-<backend>.lock`` beside the
database. PostgreSQL: a session-level advisory lock held by a connection of its
own in autocommit mode (no transaction stays open). Both are released by the
kernel or the server when the holder dies, so a ``kill -9`` never leaves a stuck
lock. A second run waits up to *timeout* seconds, then raises
:class:`~planctl.errors.LockedError` (exit 4, one line).

The state rows are per backend, not per calendar, so the lock is per backend:
two runs of one database against two calendars of the same backend would race
for the same rows.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from sqlalchemy import text

from planctl.db.engine import check_sqlite_target, make_engine, translate_db_errors
from planctl.errors import LockedError
from planctl.target import Target

POLL_SECONDS = 0.05


@dataclass(frozen=True)
class SyncLock:
    """Proof that this process holds the sync lock of one database and backend."""

    target: Target
    backend: str


def _key(backend: str) -> int:
    """A stable signed 64-bit advisory lock key for *backend*'s sync."""
    digest = hashlib.sha256(f"planctl sync {backend}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _refused(target: Target, backend: str) -> LockedError:
    return LockedError(
        f"another planctl sync with the {backend} calendar is running on {target.masked}",
        "wait for it to finish, or give --lock-timeout SECONDS to wait for it",
    )


@contextmanager
def sync_lock(target: Target, backend: str, *, timeout: float = 0.0) -> Iterator[SyncLock]:
    """Hold the sync lock of *target* and *backend* (wait up to *timeout* seconds)."""
    if target.is_sqlite:
        from planctl.fsutil import file_lock

        check_sqlite_target(target, create=False)  # the database's own message, not the lock's
        held = ExitStack()
        try:
            held.enter_context(file_lock(f"{target.database}.sync-{backend}.lock", timeout=timeout))
        except LockedError as busy:
            raise _refused(target, backend) from busy
        with held:
            yield SyncLock(target, backend)
        return
    engine = make_engine(target)
    try:
        with translate_db_errors(target), engine.connect() as connection:
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
            key = _key(backend)
            deadline = time.monotonic() + timeout
            while not connection.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": key}
            ).scalar_one():
                if time.monotonic() >= deadline:
                    raise _refused(target, backend)
                time.sleep(POLL_SECONDS)
            try:
                yield SyncLock(target, backend)
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
    finally:
        engine.dispose()
