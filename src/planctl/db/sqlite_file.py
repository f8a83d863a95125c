"""A plain SQLite file through the sqlite3 driver alone.

The commands that only read a SQLite file (``export csv``, ``db-info``) open it
this way and never import SQLAlchemy, which costs a short command about 0.1 s.
:func:`database_file` is the one answer to "which file is the database?" (the
output guard, the backups).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from planctl.errors import DatabaseError


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


def database_file(database_url: str) -> Path | None:
    """The SQLite file behind *database_url*; None for PostgreSQL or an in-memory database.

    A plain ``sqlite:///path`` is read without SQLAlchemy; any other SQLite URL (``file:``
    URIs, query arguments) through it."""
    if not database_url.startswith("sqlite"):
        return None
    from planctl.config import plain_sqlite_file

    path = plain_sqlite_file(database_url)
    if path is not None:
        return path
    from planctl.db.engine import parse_url, sqlite_path

    return sqlite_path(parse_url(database_url))


@contextmanager
def reading_connection(database_url: str) -> Iterator[Any]:
    """A connection for a reader that takes either kind: a plain SQLite file through the
    sqlite3 driver alone (fast start), any other database through SQLAlchemy."""
    from planctl.config import plain_sqlite_file

    path = plain_sqlite_file(database_url)
    if path is None:
        from planctl.db.engine import connect

        with connect(database_url) as connection:
            yield connection
        return
    driver = connect_file(path)
    try:
        yield driver
    finally:
        driver.close()
