"""Sync's position in the change log: which sessions a run must read.

A run over the whole calendar (``sync``, no ``--since``/``--until``) that
ends clean — no conflict, no error, not refused — stores, per backend, a log
id up to which every change was committed before the run read the planner
(:func:`planctl.db.changelog.complete_mark`). The next run reads only the
sessions logged after it, plus those the calendar says changed (etag moved,
new, gone) and those whose state row says they were not in sync; every other
tracked session is in sync on both sides and is counted, not read. A real
``push`` or ``pull`` forgets the position (:func:`forget`).

Safety first — a full read whenever the position cannot be trusted: no
position (first run, a restore forgot it, an older schema), a position the
log cannot vouch for (log recreated), a table whose triggers are missing, a
different basis (planctl version,
time zone: the event of every session changes), or a whole-table change
(``TRUNCATE``, seed). A change to a row a session's event shows (its contract,
client, end client, course, topic) reads the sessions that show that row.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Connection

from planctl import __version__
from planctl.calendar.sessions import RELATED_TABLES, sessions_showing
from planctl.db import changelog, identity
from planctl.db.schema import sesiones
from planctl.sync.options import SyncOptions

SESSIONS = str(sesiones.name)


def reader(backend: str) -> str:
    return f"sync:{backend}"


def basis(options: SyncOptions) -> str:
    return f"planctl {__version__}; tz {options.timezone}"


@dataclass(frozen=True)
class LocalScope:
    """What the planner side of a run reads."""

    changed: frozenset[int] | None  # session ids logged since the position; None: read all
    mark: int | None  # the position to store after a clean run (None: keep the old one)
    why_full: str | None = None  # why every session is read (None: incremental)
    since: int | None = None  # the position read from (with *changed*)
    database: str = ""  # the database's identity (listing keys name it)

    def listing_key(self, backend: str, position: int | None, tracked: int) -> str | None:
        """What a backend remembers a clean run's listing by (Backend.confirm,
        Backend.list_changes): this database, this reader, that position, and how
        many state rows there were (rows lost or added outside a run: a new key)."""
        if position is None or not self.database:
            return None
        return f"{self.database}:{reader(backend)}:{position}:{tracked}"


def scope(connection: Connection, backend: str, options: SyncOptions) -> LocalScope:
    """Decide what to read; ends the transactions it opens."""
    if not changelog.installed(connection) or not changelog.has_readers(connection):
        connection.rollback()
        return LocalScope(None, None, "the database has no change-log readers")
    if options.since is not None or options.until is not None:
        connection.rollback()
        return LocalScope(None, None, "--since/--until")
    unlogged = [t for t in (SESSIONS, *RELATED_TABLES) if not changelog.covers(connection, t)]
    if unlogged:  # triggers lost: the log would not show their changes
        connection.rollback()
        return LocalScope(None, None, f"the change log does not cover {', '.join(unlogged)}")
    database = identity.read(connection) or ""
    mark = changelog.complete_mark(connection)
    saved = changelog.read_position(connection, reader(backend))
    try:
        if saved is None:
            return LocalScope(None, mark, "no position in the change log", database=database)
        position, saved_basis = saved
        if saved_basis != basis(options):
            why = "planctl version or time zone changed"
            return LocalScope(None, mark, why, database=database)
        changes = changelog.changes_after(connection, position, (SESSIONS, *RELATED_TABLES))
        if changes is None:
            return LocalScope(None, mark, "a whole table changed", database=database)
        changed = set(changes[SESSIONS])
        for table in RELATED_TABLES:  # a rename reaches the events of its sessions only
            if changes[table]:
                changed |= sessions_showing(connection, table, sorted(changes[table]))
        return LocalScope(frozenset(changed), mark, since=position, database=database)
    finally:
        connection.rollback()


def advance(connection: Connection, backend: str, options: SyncOptions, mark: int) -> None:
    """After a clean full-scope run: store *mark* (the caller commits)."""
    changelog.write_position(connection, reader(backend), mark, basis(options))


def forget(connection: Connection, backend: str) -> None:
    """Before a push or pull writes: the next sync reads everything (the caller commits).

    A ``pull`` records the calendar's version as the planner's last one (and a
    ``push`` the reverse) without a change the log would show; only a full
    read finds those sessions again. A ``sync`` that ends with conflicts or
    errors keeps its old position instead: every state row it wrote agrees
    with both sides, and everything logged since that position is read again.
    """
    if changelog.installed(connection) and changelog.has_readers(connection):
        changelog.forget_position(connection, reader(backend))
