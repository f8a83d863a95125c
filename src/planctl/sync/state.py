"""The sync state (``estados_sincronizacion``) and run log (``ejecuciones_sincronizacion``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import bindparam, delete, insert, inspect, select, update
from sqlalchemy.engine import Connection

from planctl.db.schema import SYNC_TABLE_NAMES, metadata
from planctl.errors import DatabaseError

STATE = metadata.tables["estados_sincronizacion"]
RUNS = metadata.tables["ejecuciones_sincronizacion"]


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


def load_states(connection: Connection, backend: str) -> dict[int, StateRow]:
    rows = connection.execute(select(STATE).where(STATE.c.backend == backend))
    return {
        row.sesion_id: StateRow(
            session_id=row.sesion_id,
            remote_id=row.id_remoto,
            etag=row.etag,
            hash_local=row.hash_local,
            hash_remote=row.hash_remoto,
            synced_at=row.sincronizado_en,
        )
        for row in rows
    }


# Built once: constructing a statement per session cost more than running it.
_STATE_VALUES = ("id_remoto", "etag", "hash_local", "hash_remoto", "sincronizado_en")
_UPDATE_STATE = (
    update(STATE)
    .where(STATE.c.backend == bindparam("k_backend"), STATE.c.sesion_id == bindparam("k_sesion"))
    .values({name: bindparam(name) for name in _STATE_VALUES})
)
_INSERT_STATE = insert(STATE).values(
    backend=bindparam("k_backend"),
    sesion_id=bindparam("k_sesion"),
    **{name: bindparam(name) for name in _STATE_VALUES},
)
_DELETE_STATE = delete(STATE).where(
    STATE.c.backend == bindparam("k_backend"), STATE.c.sesion_id == bindparam("k_sesion")
)


def save_state(
    connection: Connection,
    backend: str,
    session_id: int,
    *,
    remote_id: str,
    etag: str | None,
    hash_local: str,
    hash_remote: str,
    new: bool = False,
) -> None:
    """Insert or update the state row; *new* (no row was read for it) skips the update."""
    values = {
        "k_backend": backend,
        "k_sesion": session_id,
        "id_remoto": remote_id,
        "etag": etag,
        "hash_local": hash_local,
        "hash_remoto": hash_remote,
        "sincronizado_en": utcnow(),
    }
    if new or connection.execute(_UPDATE_STATE, values).rowcount == 0:
        connection.execute(_INSERT_STATE, values)


def delete_state(connection: Connection, backend: str, session_id: int) -> None:
    connection.execute(_DELETE_STATE, {"k_backend": backend, "k_sesion": session_id})


COUNT_COLUMNS = ("creados", "actualizados", "eliminados", "sin_cambios", "conflictos", "errores")


def start_run(connection: Connection, backend: str, mode: str) -> int:
    result = connection.execute(
        insert(RUNS).values(backend=backend, modo=mode, inicio=utcnow(), resultado="en_curso")
    )
    assert result.inserted_primary_key is not None
    return int(result.inserted_primary_key[0])


def finish_run(connection: Connection, run_id: int, result: str, counts: Mapping[str, int]) -> None:
    connection.execute(
        update(RUNS)
        .where(RUNS.c.id == run_id)
        .values(fin=utcnow(), resultado=result, **{c: counts.get(c, 0) for c in COUNT_COLUMNS})
    )


def last_run(connection: Connection, backend: str) -> RunRecord | None:
    row = connection.execute(
        select(RUNS)
        .where(RUNS.c.backend == backend)
        .order_by(RUNS.c.inicio.desc(), RUNS.c.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return RunRecord(
        backend=row.backend,
        mode=row.modo,
        started=row.inicio,
        finished=row.fin,
        result=row.resultado,
        counts={c: int(getattr(row, c)) for c in COUNT_COLUMNS},
    )
