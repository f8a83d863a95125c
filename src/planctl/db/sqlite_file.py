"""A plain SQLite file through the sqlite3 driver alone.

The commands that only read a SQLite file (``export csv``, ``db-info``) open it
this way and never import SQLAlchemy, which costs a short command about 0.1 s.
``Target.sqlite_file`` is the one answer to "which file is the database?" (the
output guard, the backups).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from planctl.errors import DatabaseError

if TYPE_CHECKING:
    from planctl.target import Target


def connect_file(path: Path) -> sqlite3.Connection:
    """An existing SQLite file opened for reading (never created), autocommit."""
    if not path.is_file():
        raise DatabaseError(
            f"SQLite database '{path}' does not exist", "run planctl db-upgrade to create it"
        )
    uri = f"file:{quote(str(path.resolve()))}?mode=rw"
    try:
        return sqlite3.connect(uri, uri=True, isolation_level=None, timeout=5.0)
    except sqlite3.Error as error:
        raise DatabaseError(
            f"cannot open SQLite database '{path}': {error}", "check the file's permissions"
        ) from error


@contextmanager
def reading_connection(target: Target) -> Iterator[Any]:
    """A connection for a reader that takes either kind: a plain SQLite file through the
    sqlite3 driver alone (fast start), any other database through SQLAlchemy."""
    path = target.plain_sqlite_file
    if path is None:
        from planctl.db.engine import connect

        with connect(target) as connection:
            yield connection
        return
    driver = connect_file(path)
    try:
        yield driver
    finally:
        driver.close()
