"""The sync state (``planctl_sync_states``) and run log (``planctl_sync_runs``)."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, inspect, select, update
from sqlalchemy.engine import Connection

from planctl.db.schema import SYNC_COUNTS, SYNC_TABLE_NAMES, metadata
from planctl.errors import DatabaseError

STATE = metadata.tables["planctl_sync_states"]
RUNS = metadata.tables["planctl_sync_runs"]


@dataclass(frozen=True)
class StateRow:
    """What the last sync knew of one session on one backend."""

    session_id: int
    remote_id: str
    etag: str | None
    hash_local: str
    hash_remote: str
    synced_at: dt.datetime


@dataclass(frozen=True)
class RunRecord:
    """One row of the run log, for ``planctl sync status``."""

    backend: str
    mode: str
    started: dt.datetime
    finished: dt.datetime | None
    result: str
    counts: Mapping[str, int]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def require_sync_tables(connection: Connection, masked_url: str) -> None:
    """Fail clearly when the database predates the sync migration."""
    missing = [t for t in SYNC_TABLE_NAMES if t not in inspect(connection).get_table_names()]
    if missing:
        raise DatabaseError(
            f"database {masked_url} has no sync tables ({', '.join(missing)})",
            "run planctl db-upgrade",
        )


def end_reads(connection: Connection) -> None:
    """End a read transaction before writing: on SQLite a deferred transaction that
    read first and writes later fails at once ("database is locked") when another
    writer committed meanwhile, while a transaction that starts with its write
    waits on the busy timeout like any writer."""
    if connection.in_transaction():
        connection.rollback()


def load_states(
    connection: Connection,
    backend: str,
    *,
    session_ids: Iterable[int] | None = None,
    remote_ids: Iterable[str] | None = None,
) -> dict[int, StateRow]:
    """The state rows of *backend*: all of them, or those of *session_ids* and *remote_ids*."""
    mine = STATE.c.backend == backend
    if session_ids is None and remote_ids is None:
        return _states(connection.execute(select(STATE).where(mine)))
    found: dict[int, StateRow] = {}
    keys: tuple[tuple[Any, list[Any]], ...] = (
        (STATE.c.session_id, sorted(set(session_ids or ()))),
        (STATE.c.remote_id, sorted(set(remote_ids or ()))),
    )
    for column, wanted in keys:
        for start in range(0, len(wanted), 500):
            part = wanted[start : start + 500]
            rows = connection.execute(select(STATE).where(mine, column.in_(part)))
            found.update(_states(rows))
    return found


def count_states(connection: Connection, backend: str) -> int:
    query = select(func.count()).select_from(STATE).where(STATE.c.backend == backend)
    return int(connection.execute(query).scalar_one())


def states_where_local_is_not(
    connection: Connection, backend: str, cancelled: str, prefix: str
) -> list[int]:
    """Sessions whose planner-side token is neither *cancelled* nor starts with *prefix*."""
    query = select(STATE.c.session_id).where(
        STATE.c.backend == backend,
        STATE.c.local_hash != cancelled,
        ~STATE.c.local_hash.startswith(prefix, autoescape=True),
    )
    return list(connection.execute(query).scalars())


def _states(rows: Iterable[Any]) -> dict[int, StateRow]:
    return {
        row.session_id: StateRow(
            session_id=row.session_id,
            remote_id=row.remote_id,
            etag=row.etag,
            hash_local=row.local_hash,
            hash_remote=row.remote_hash,
            synced_at=row.synced_at,
        )
        for row in rows
    }


_STATE_VALUES = ("remote_id", "etag", "local_hash", "remote_hash", "synced_at")
_DELETE_STATE = delete(STATE).where(
    STATE.c.backend == bindparam("k_backend"), STATE.c.session_id == bindparam("k_session")
)


@functools.cache
def _upsert(dialect: str) -> Any:
    """INSERT … ON CONFLICT (backend, session_id) DO UPDATE: never a raw unique-key error.

    Built once per dialect: constructing a statement per session cost more than running it.
    """
    from sqlalchemy.dialects import postgresql, sqlite

    dialect_insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = dialect_insert(STATE).values(
        backend=bindparam("k_backend"),
        session_id=bindparam("k_session"),
        **{name: bindparam(name) for name in _STATE_VALUES},
    )
    return statement.on_conflict_do_update(
        index_elements=[STATE.c.backend, STATE.c.session_id],
        set_={name: statement.excluded[name] for name in _STATE_VALUES},
    )


def state_values(
    backend: str,
    session_id: int,
    *,
    remote_id: str,
    etag: str | None,
    hash_local: str,
    hash_remote: str,
) -> dict[str, Any]:
    """The parameters of one state row, for :func:`save_states`."""
    return {
        "k_backend": backend,
        "k_session": session_id,
        "remote_id": remote_id,
        "etag": etag,
        "local_hash": hash_local,
        "remote_hash": hash_remote,
        "synced_at": utcnow(),
    }


def save_states(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert or update state rows (one statement, executemany)."""
    if rows:
        connection.execute(_upsert(connection.dialect.name), rows)


def save_state(connection: Connection, backend: str, session_id: int, **values: Any) -> None:
    """Insert or update one state row."""
    save_states(connection, [state_values(backend, session_id, **values)])


def delete_states(connection: Connection, backend: str, session_ids: list[int]) -> None:
    if session_ids:
        connection.execute(
            _DELETE_STATE, [{"k_backend": backend, "k_session": sid} for sid in session_ids]
        )


def delete_state(connection: Connection, backend: str, session_id: int) -> None:
    delete_states(connection, backend, [session_id])


def start_run(connection: Connection, backend: str, mode: str) -> int:
    result = connection.execute(
        insert(RUNS).values(backend=backend, mode=mode, started_at=utcnow(), result="running")
    )
    assert result.inserted_primary_key is not None
    return int(result.inserted_primary_key[0])


def mark_interrupted(connection: Connection, backend: str) -> int:
    """Runs of *backend* still ``running``: killed or lost (the caller holds the sync lock)."""
    result = connection.execute(
        update(RUNS)
        .where(RUNS.c.backend == backend, RUNS.c.result == "running")
        .values(finished_at=utcnow(), result="interrupted")
    )
    return int(result.rowcount or 0)


def finish_run(connection: Connection, run_id: int, result: str, counts: Mapping[str, int]) -> None:
    connection.execute(
        update(RUNS)
        .where(RUNS.c.id == run_id)
        .values(finished_at=utcnow(), result=result, **{c: counts.get(c, 0) for c in SYNC_COUNTS})
    )


def last_run(connection: Connection, backend: str) -> RunRecord | None:
    row = connection.execute(
        select(RUNS)
        .where(RUNS.c.backend == backend)
        .order_by(RUNS.c.started_at.desc(), RUNS.c.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return RunRecord(
        backend=row.backend,
        mode=row.mode,
        started=row.started_at,
        finished=row.finished_at,
        result=row.result,
        counts={c: int(getattr(row, c)) for c in SYNC_COUNTS},
    )
