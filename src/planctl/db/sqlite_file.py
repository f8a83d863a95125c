"""A plain SQLite file through the sqlite3 driver alone.

The commands that only read a SQLite file (``export csv``, ``db-info``) open it
this way and never import SQLAlchemy, which costs a short command about 0.1 s.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
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
        ) from None
