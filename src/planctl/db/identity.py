"""A database's stable identity: one row in ``planctl_database``, made at ``db-upgrade``.

Every backup records the id of the database it was taken from (and its
engine), so a restore can refuse a backup of another database that was
dropped into the backup directory. A native restore copies the row with the
rest, so a database restored from its own backup keeps its id; a logical
``--target`` move keeps the target's.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import text
from sqlalchemy.engine import Connection

TABLE = "planctl_database"


def create_table(connection: Connection) -> None:
    """The table and this database's id (the migration's upgrade), unless they exist.

    The identity outlives a downgrade (the migration's downgrade leaves the table):
    a database taken down a revision and up again is the same database, and its
    backups must stay its own rather than turn "foreign".
    """
    connection.execute(
        text(
            f"CREATE TABLE IF NOT EXISTS {TABLE} ("
            f"id INTEGER NOT NULL CONSTRAINT pk_{TABLE} PRIMARY KEY "
            f"CONSTRAINT ck_{TABLE}_single CHECK (id = 1), "
            "database_id VARCHAR(36) NOT NULL, created VARCHAR(40) NOT NULL)"
        )
    )
    # Offline (--sql) migrations render this literally: each run of the script
    # gets the id generated when the script was rendered, so render one per database.
    connection.execute(
        text(
            f"INSERT INTO {TABLE} (id, database_id, created) "
            f"SELECT 1, :id, :created WHERE NOT EXISTS (SELECT 1 FROM {TABLE})"
        ).bindparams(id=str(uuid.uuid4()), created=dt.datetime.now(dt.UTC).isoformat())
    )


def read(connection: Connection) -> str | None:
    """This database's id, or None when its schema predates identities (or is empty)."""
    from sqlalchemy import inspect

    if TABLE not in inspect(connection).get_table_names():
        return None
    value = connection.execute(text(f"SELECT database_id FROM {TABLE} WHERE id = 1")).scalar()
    return None if value is None else str(value)
