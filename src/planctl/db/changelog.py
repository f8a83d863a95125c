"""The change log that makes incremental backups cost what changed, not the database size.

Triggers installed by a migration record the id of every row inserted,
updated or deleted in the planner's tables into ``planctl_change_log`` —
whoever writes: planctl, the planner application, a ``psql`` session. A delta
backup reads the distinct ``(table, id)`` pairs, fetches those rows (a missing
row is a delete) and then empties the log in the same transaction.

- SQLite: row triggers (``AFTER INSERT/UPDATE/DELETE … FOR EACH ROW``). The
  log id is ``AUTOINCREMENT``: ids are never reused, and since SQLite has one
  writer at a time, id order is commit order.
- PostgreSQL: statement triggers with transition tables (``REFERENCING NEW
  TABLE``), so a ``COPY`` of a million rows runs the trigger once, plus an
  ``AFTER TRUNCATE`` trigger that logs a whole-table marker (``row_id`` NULL).

``planctl_backup_anchor`` (one row) names the backup the log is relative to:
(by name and creation time) a delta is only taken when the anchor is the
newest backup in the backup directory;
anything else (a restore, a backup in another directory, a crash between
publishing a backup and committing the log) makes the next backup a full one.

SQLite batch migrations recreate tables and lose their triggers, so the
migration environment calls :func:`reinstall` after every migration run.

**Readers.** The log has two kinds of reader, each with its own position
(revision d7f3a9c2b5e1): delta backups mark the rows they took
(``backed_up``, set in the backup's own transaction and snapshot, exactly the
rows the old ``DELETE`` removed) and read only unmarked rows; ``sync`` keeps a
position per backend in ``planctl_change_readers`` (the log id up to which it
has seen every change). A row is deleted only once it is backed up *and* at or
below every reader's position, so a delta backup no longer empties the log
from under sync. A restore (``move_anchor(…, None, None)``) empties the log and
forgets every position: the next sync reads everything.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import Connection

if TYPE_CHECKING:
    from sqlalchemy import Table

LOG_TABLE = "planctl_change_log"
ANCHOR_TABLE = "planctl_backup_anchor"
READERS_TABLE = "planctl_change_readers"
BACKED_UP = "backed_up"
FUNCTION = "planctl_log_change"
OPERATIONS = ("ins", "upd", "del", "trunc")

_PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO {LOG_TABLE} (table_name, row_id) SELECT TG_TABLE_NAME, id FROM planctl_new;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO {LOG_TABLE} (table_name, row_id)
            SELECT TG_TABLE_NAME, id FROM planctl_new
            UNION SELECT TG_TABLE_NAME, id FROM planctl_old;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO {LOG_TABLE} (table_name, row_id) SELECT TG_TABLE_NAME, id FROM planctl_old;
    ELSE
        INSERT INTO {LOG_TABLE} (table_name, row_id) VALUES (TG_TABLE_NAME, NULL);
    END IF;
    RETURN NULL;
END
$$
"""


def trigger_name(table: str, operation: str) -> str:
    return f"planctl_log_{table}_{operation}"


def _quote(connection: Connection, name: str) -> str:
    return str(connection.dialect.identifier_preparer.quote(name))


def _sqlite_triggers(connection: Connection, table: str) -> list[str]:
    quoted = _quote(connection, table)
    log = f"INSERT INTO {LOG_TABLE} (table_name, row_id)"
    return [
        f"CREATE TRIGGER {trigger_name(table, 'ins')} AFTER INSERT ON {quoted} "
        f"BEGIN {log} VALUES ('{table}', NEW.id); END",
        f"CREATE TRIGGER {trigger_name(table, 'upd')} AFTER UPDATE ON {quoted} "
        f"BEGIN {log} VALUES ('{table}', NEW.id); "
        f"{log} SELECT '{table}', OLD.id WHERE OLD.id IS NOT NEW.id; END",
        f"CREATE TRIGGER {trigger_name(table, 'del')} AFTER DELETE ON {quoted} "
        f"BEGIN {log} VALUES ('{table}', OLD.id); END",
    ]


def _postgres_triggers(connection: Connection, table: str) -> list[str]:
    quoted = _quote(connection, table)
    run = f"FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}()"
    return [
        f"CREATE TRIGGER {trigger_name(table, 'ins')} AFTER INSERT ON {quoted} "
        f"REFERENCING NEW TABLE AS planctl_new {run}",
        f"CREATE TRIGGER {trigger_name(table, 'upd')} AFTER UPDATE ON {quoted} "
        f"REFERENCING OLD TABLE AS planctl_old NEW TABLE AS planctl_new {run}",
        f"CREATE TRIGGER {trigger_name(table, 'del')} AFTER DELETE ON {quoted} "
        f"REFERENCING OLD TABLE AS planctl_old {run}",
        f"CREATE TRIGGER {trigger_name(table, 'trunc')} AFTER TRUNCATE ON {quoted} {run}",
    ]


def create_tables(connection: Connection) -> None:
    """The log and the anchor (the migration's upgrade)."""
    if connection.dialect.name == "postgresql":
        connection.execute(
            text(
                f"CREATE TABLE {LOG_TABLE} (id BIGSERIAL CONSTRAINT pk_{LOG_TABLE} PRIMARY KEY, "
                "table_name VARCHAR(64) NOT NULL, row_id BIGINT)"
            )
        )
        connection.execute(text(_PG_FUNCTION))
    else:
        connection.execute(
            text(
                f"CREATE TABLE {LOG_TABLE} (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                "table_name VARCHAR(64) NOT NULL, row_id INTEGER)"
            )
        )
    connection.execute(
        text(
            f"CREATE TABLE {ANCHOR_TABLE} ("
            f"id INTEGER NOT NULL CONSTRAINT pk_{ANCHOR_TABLE} PRIMARY KEY "
            f"CONSTRAINT ck_{ANCHOR_TABLE}_single CHECK (id = 1), "
            "backup VARCHAR(200), created VARCHAR(40))"
        )
    )
    connection.execute(text(f"INSERT INTO {ANCHOR_TABLE} (id) VALUES (1)"))


def drop_tables(connection: Connection, tables: Iterable[str]) -> None:
    """Remove triggers, function and tables (the migration's downgrade)."""
    drop_triggers(connection, tables)
    connection.execute(text(f"DROP TABLE IF EXISTS {ANCHOR_TABLE}"))
    connection.execute(text(f"DROP TABLE IF EXISTS {LOG_TABLE}"))
    if connection.dialect.name == "postgresql":
        connection.execute(text(f"DROP FUNCTION IF EXISTS {FUNCTION}()"))


def drop_triggers(connection: Connection, tables: Iterable[str]) -> None:
    postgres = connection.dialect.name == "postgresql"
    existing = _existing_tables(connection)
    for table in tables:
        if table not in existing:
            continue
        for operation in OPERATIONS if postgres else OPERATIONS[:3]:
            on = f" ON {_quote(connection, table)}" if postgres else ""
            connection.execute(text(f"DROP TRIGGER IF EXISTS {trigger_name(table, operation)}{on}"))


def install_triggers(connection: Connection, tables: Iterable[str]) -> None:
    """(Re)create the triggers on *tables*: idempotent, safe to run after any migration."""
    tables = list(tables)
    drop_triggers(connection, tables)
    postgres = connection.dialect.name == "postgresql"
    if postgres:
        connection.execute(text(_PG_FUNCTION))
    existing = _existing_tables(connection)
    for table in tables:
        if table not in existing:
            continue
        statements = _postgres_triggers if postgres else _sqlite_triggers
        for statement in statements(connection, table):
            connection.execute(text(statement))


def _existing_tables(connection: Connection) -> set[str] | _All:
    from sqlalchemy import exc, inspect

    try:
        return set(inspect(connection).get_table_names())
    except exc.NoInspectionAvailable:  # `db-upgrade --sql`: emit the DDL for every table
        return _All()


class _All:
    def __contains__(self, _name: object) -> bool:
        return True


def installed(connection: Connection) -> bool:
    """Whether this database keeps a change log (its schema is at or past that revision)."""
    return LOG_TABLE in _existing_tables(connection)


def sync_tables() -> tuple[str, ...]:
    """planctl's sync bookkeeping under its names at any revision: ``planctl_*``, then the
    Spanish names a database (or a delta) from before revision 31d0f0df5b58 has."""
    from planctl.db import legacy
    from planctl.db.schema import SYNC_TABLE_NAMES

    return SYNC_TABLE_NAMES + legacy.SYNC_TABLE_NAMES


def logged_tables() -> tuple[str, ...]:
    """Every table whose changes the log records, parents first: the planner's tables,
    then the sync state (so a delta restore brings it to the restore point too). A
    database has the sync tables under one set of names only (:func:`sync_tables`)."""
    from planctl.db.schema import TABLE_NAMES

    return TABLE_NAMES + sync_tables()


def logged_table(name: str) -> Table:
    """The table of a name :func:`logged_tables` gives, at the revision that name belongs to."""
    from planctl.db import legacy
    from planctl.db.schema import metadata

    found = metadata.tables.get(name)
    return legacy.table(name) if found is None else found


def reinstall(connection: Connection) -> None:
    """After a migration run: put back triggers a SQLite table rebuild dropped.

    The sync tables are logged from the identity revision on (the migration
    that created ``planctl_database`` added their triggers).
    """
    from planctl.db import identity
    from planctl.db.schema import TABLE_NAMES

    if not installed(connection):
        return
    with_sync = identity.TABLE in _existing_tables(connection)
    install_triggers(connection, logged_tables() if with_sync else TABLE_NAMES)


def covers(connection: Connection, table: str) -> bool:
    """Whether *table* has its change-log triggers (a delta would miss it otherwise)."""
    name = trigger_name(table, "del")
    if connection.dialect.name == "postgresql":
        query = "SELECT 1 FROM pg_trigger WHERE tgname = :name AND NOT tgisinternal"
    else:
        query = "SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = :name"
    return connection.execute(text(query), {"name": name}).first() is not None


def read_anchor(connection: Connection) -> tuple[str | None, str | None]:
    """(name, created) of the backup the log is relative to; (None, None) when there is none."""
    row = connection.execute(
        text(f"SELECT backup, created FROM {ANCHOR_TABLE} WHERE id = 1")
    ).first()
    return (None, None) if row is None else (row[0], row[1])


def lock_anchor(connection: Connection) -> None:
    """Take the write lock first thing in the transaction (SQLite: like BEGIN IMMEDIATE,
    so the snapshot read next is the one the log is emptied in; PostgreSQL: a row lock)."""
    connection.execute(text(f"UPDATE {ANCHOR_TABLE} SET backup = backup WHERE id = 1"))


def move_anchor(
    connection: Connection, backup: str | None, created: str | None, *, up_to: int | None = None
) -> int:
    """Empty the log (as this transaction sees it, or up to id *up_to*) and name the new anchor.

    On PostgreSQL under REPEATABLE READ, the ``DELETE`` only reaches log rows
    visible in the transaction's snapshot: rows that writers commit meanwhile
    stay for the next delta. Returns the number of log rows removed.
    """
    if backup is None or not has_readers(connection):
        # No anchor (a restore): the log describes nothing any more, no position holds.
        where = "" if up_to is None else " WHERE id <= :up_to"
        removed = connection.execute(text(f"DELETE FROM {LOG_TABLE}{where}"), {"up_to": up_to})
        if backup is None and has_readers(connection):
            connection.execute(text(f"DELETE FROM {READERS_TABLE}"))
    else:
        where = "" if up_to is None else " AND id <= :up_to"
        removed = connection.execute(
            text(f"UPDATE {LOG_TABLE} SET {BACKED_UP} = :yes WHERE NOT {BACKED_UP}{where}"),
            {"up_to": up_to, "yes": True},
        )
        prune(connection)
    connection.execute(
        text(
            f"INSERT INTO {ANCHOR_TABLE} (id, backup, created) VALUES (1, :backup, :created) "
            "ON CONFLICT (id) DO UPDATE SET backup = excluded.backup, created = excluded.created"
        ),
        {"backup": backup, "created": created},
    )
    return int(removed.rowcount or 0)


def pending(connection: Connection) -> tuple[int, bool]:
    """(distinct rows changed, whether a whole table was truncated) since the anchor."""
    unread = _unread(connection)
    changed = connection.execute(
        text(
            f"SELECT count(*) FROM (SELECT DISTINCT table_name, row_id FROM {LOG_TABLE}"
            f"{unread.replace(' AND ', ' WHERE ', 1)}) AS c"
        )
    ).scalar_one()
    truncated = connection.execute(
        text(f"SELECT 1 FROM {LOG_TABLE} WHERE row_id IS NULL{unread} LIMIT 1")
    ).first()
    return int(changed), truncated is not None


def changed_ids(connection: Connection) -> dict[str, list[int]]:
    """The distinct row ids logged per table, sorted."""
    result: dict[str, list[int]] = {}
    rows = connection.execute(
        text(
            f"SELECT DISTINCT table_name, row_id FROM {LOG_TABLE} "
            f"WHERE row_id IS NOT NULL{_unread(connection)} ORDER BY table_name, row_id"
        )
    )
    for table, row_id in rows:
        result.setdefault(str(table), []).append(int(row_id))
    return result


def mark_all_changed(connection: Connection, tables: Iterable[str]) -> None:
    """Log a whole-table marker for each of *tables*: the next incremental backup is a full."""
    for table in tables:
        connection.execute(
            text(f"INSERT INTO {LOG_TABLE} (table_name, row_id) VALUES (:table, NULL)"),
            {"table": table},
        )


def last_change(connection: Connection) -> int:
    """The newest log id (0 when empty): cheap enough to poll for ``backup watch``."""
    value = connection.execute(text(f"SELECT max(id) FROM {LOG_TABLE}")).scalar()
    return int(value or 0)


# --- readers ------------------------------------------------------------------------------------


def has_readers(connection: Connection) -> bool:
    """Whether the log keeps readers' positions (schema at or past revision d7f3a9c2b5e1)."""
    return READERS_TABLE in _existing_tables(connection)


def _unread(connection: Connection) -> str:
    """The condition (`` AND …``) for rows no delta backup has taken yet."""
    return f" AND NOT {BACKED_UP}" if has_readers(connection) else ""


def create_readers(connection: Connection) -> None:
    """The readers' positions (the migration's upgrade): every row already in the log is
    one no delta backup has taken (it stays for the next delta, as before)."""
    false = "false" if connection.dialect.name == "postgresql" else "0"
    connection.execute(
        text(f"ALTER TABLE {LOG_TABLE} ADD COLUMN {BACKED_UP} BOOLEAN NOT NULL DEFAULT {false}")
    )
    connection.execute(
        text(
            f"CREATE TABLE {READERS_TABLE} ("
            f"reader VARCHAR(80) NOT NULL CONSTRAINT pk_{READERS_TABLE} PRIMARY KEY, "
            "position BIGINT NOT NULL, basis VARCHAR(200) NOT NULL)"
        )
    )


def drop_readers(connection: Connection) -> None:
    """The downgrade: rows backed up but kept for a reader go (the old log had no readers)."""
    connection.execute(text(f"DELETE FROM {LOG_TABLE} WHERE {BACKED_UP}"))
    connection.execute(text(f"DROP TABLE IF EXISTS {READERS_TABLE}"))
    connection.execute(text(f"ALTER TABLE {LOG_TABLE} DROP COLUMN {BACKED_UP}"))


def prune(connection: Connection) -> int:
    """Delete the rows every reader is done with: backed up, at or below every position."""
    floor = connection.execute(text(f"SELECT min(position) FROM {READERS_TABLE}")).scalar()
    where = "" if floor is None else " AND id <= :floor"
    removed = connection.execute(
        text(f"DELETE FROM {LOG_TABLE} WHERE {BACKED_UP}{where}"), {"floor": floor}
    )
    return int(removed.rowcount or 0)


def read_position(connection: Connection, reader: str) -> tuple[int, str] | None:
    """(position, basis) of *reader*, or None when it has none or the log cannot vouch for it.

    Invalid: a position above the highest id the log ever gave (the log was
    recreated or its sequence reset). A restore forgets every position.
    """
    if not has_readers(connection):
        return None
    row = connection.execute(
        text(f"SELECT position, basis FROM {READERS_TABLE} WHERE reader = :reader"),
        {"reader": reader},
    ).first()
    if row is None:
        return None
    position = int(row[0])
    if position > _ids_given(connection):
        return None
    return position, str(row[1])


def _ids_given(connection: Connection) -> int:
    """The highest id the log has ever handed out (deleted rows included)."""
    if connection.dialect.name == "postgresql":
        value = connection.execute(
            text("SELECT CASE WHEN is_called THEN last_value ELSE 0 END "
                 f"FROM {LOG_TABLE}_id_seq")
        ).scalar()
    else:
        value = connection.execute(
            text("SELECT seq FROM sqlite_sequence WHERE name = :name"), {"name": LOG_TABLE}
        ).scalar()
    return int(value or 0)


def write_position(connection: Connection, reader: str, position: int, basis: str) -> None:
    """Store *reader*'s position (the caller commits), then prune what nobody needs."""
    connection.execute(
        text(
            f"INSERT INTO {READERS_TABLE} (reader, position, basis) "
            "VALUES (:reader, :position, :basis) ON CONFLICT (reader) DO UPDATE "
            "SET position = excluded.position, basis = excluded.basis"
        ),
        {"reader": reader, "position": position, "basis": basis},
    )
    prune(connection)


def forget_position(connection: Connection, reader: str) -> None:
    connection.execute(
        text(f"DELETE FROM {READERS_TABLE} WHERE reader = :reader"), {"reader": reader}
    )


def complete_mark(connection: Connection, *, wait: float = 0.1) -> int | None:
    """A log id up to which every row is committed and visible: a reader may store it.

    SQLite: ids follow commit order, the newest id is one. PostgreSQL: a
    ``SHARE`` lock on the log waits (at most *wait* seconds) for writers whose
    rows are not committed yet; the newest id once they are done is one. None
    when the wait is too long (the reader keeps its old position). Ends the
    transaction it opens.
    """
    from sqlalchemy import exc

    try:
        if connection.dialect.name == "postgresql":
            milliseconds = max(1, int(wait * 1000))
            connection.execute(text(f"SET LOCAL lock_timeout = '{milliseconds}ms'"))
            connection.execute(text(f"LOCK TABLE {LOG_TABLE} IN SHARE MODE"))
        mark = int(connection.execute(text(f"SELECT max(id) FROM {LOG_TABLE}")).scalar() or 0)
        if mark == 0:
            mark = _ids_given(connection)
    except exc.DBAPIError:
        connection.rollback()
        return None
    connection.rollback()
    return mark


def changes_after(
    connection: Connection, position: int, tables: Iterable[str]
) -> dict[str, set[int]] | None:
    """The row ids of *tables* logged after *position*; None when a whole table changed
    (a ``TRUNCATE``, a seed) — the reader must then read everything."""
    from sqlalchemy import bindparam

    wanted = list(tables)
    result: dict[str, set[int]] = {t: set() for t in wanted}
    query = text(
        f"SELECT DISTINCT table_name, row_id FROM {LOG_TABLE} "
        "WHERE id > :position AND table_name IN :tables"
    ).bindparams(bindparam("tables", expanding=True))
    rows = connection.execute(query, {"position": position, "tables": wanted})
    for table, row_id in rows:
        if table not in result:
            continue
        if row_id is None:
            return None
        result[str(table)].add(int(row_id))
    return result
