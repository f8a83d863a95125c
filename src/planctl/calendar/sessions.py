"""The joined view of sessions that the iCalendar and PDF exports (and sync) share.

One query joins each session with its contract, course, topic and client and
streams the rows in date order; filters are applied in SQL. It runs on the
database driver itself (``sqlite3`` or psycopg, under a SQLAlchemy connection
or a bare ``sqlite3`` one), without building ORM rows: an export of 10,000
sessions spends its time writing, not reading, and a plain SQLite file is
read without importing SQLAlchemy at all.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import itertools
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from planctl.errors import UsageError

BATCH = 2000
#: The rows an event shows besides the session; their edits change the event too.
RELATED = ("c", "cl", "cf", "f", "t")  # contract, client, final client, course, topic
#: The tables behind those aliases in SESSIONS_SQL, in the same order: what a session's
#: event is made of besides its own row (sync re-reads every session when one changes).
RELATED_TABLES = ("contrataciones", "clientes", "clientes_finales", "formaciones", "temas")
#: ``precio_hora`` is NUMERIC(10, 2): SQLite hands back a float or an integer.
PRICE_SCALE = 2
_counter = itertools.count()


@dataclass(frozen=True)
class SessionView:
    """A session with everything an export shows about it."""

    id: int
    fecha: dt.date
    hora_inicio: dt.time
    hora_fin: dt.time
    estado: str
    direccion: str | None  # the session's own, else the contract's
    enlace_vc: str | None
    notas: str | None
    created_at: dt.datetime | None
    updated_at: dt.datetime | None
    contratacion_id: int
    expediente: str
    modalidad: str | None
    persona_responsable: str | None
    telefono_responsable: str | None
    email_responsable: str | None
    precio_hora: Decimal | None
    cliente_id: int
    cliente: str
    cliente_color: str | None
    cliente_final: str | None
    formacion: str
    nivel: str | None
    tema: str
    #: The latest updated_at of the session and of every row it shows (contract, client,
    #: final client, course, topic): a rename anywhere moves it forward.
    changed_at: dt.datetime | None = None

    @property
    def minutes(self) -> int:
        """Length of the session in whole minutes (exact: money is computed from these)."""
        start, end = self.hora_inicio, self.hora_fin
        micros = (
            ((end.hour - start.hour) * 3600 + (end.minute - start.minute) * 60)
            + (end.second - start.second)
        ) * 1_000_000 + (end.microsecond - start.microsecond)
        return int(micros / 1_000_000) // 60  # as int(timedelta.total_seconds()) // 60

    @property
    def hours(self) -> Decimal:
        """Length of the session in hours, exact (minutes / 60, not rounded)."""
        return Decimal(self.minutes) / 60


@dataclass(frozen=True)
class SessionFilter:
    since: dt.date | None = None
    until: dt.date | None = None
    client: str | None = None  # id or company name
    statuses: Sequence[str] | None = None
    include_cancelled: bool = True
    session_ids: Sequence[int] | None = None  # only these sessions (sync re-reads one)


SESSIONS_SQL = """
SELECT s.id, s.fecha, s.hora_inicio, s.hora_fin, s.estado,
       coalesce(s.direccion, c.direccion), coalesce(s.enlace_vc, c.enlace_vc), s.notas,
       s.created_at, s.updated_at, s.contratacion_id, c.expediente, c.modalidad,
       c.persona_responsable, c.telefono_responsable, c.email_responsable, c.precio_hora,
       cl.id, cl.empresa, cl.color_hex, cf.empresa, f.nombre, f.nivel, t.nombre,
       c.updated_at, cl.updated_at, cf.updated_at, f.updated_at, t.updated_at
"""
#: What a session's view is read from: the session and its RELATED rows.
SESSIONS_FROM = """FROM sesiones AS s
JOIN contrataciones AS c ON s.contratacion_id = c.id
JOIN clientes AS cl ON c.cliente_id = cl.id
LEFT OUTER JOIN clientes_finales AS cf ON c.cliente_final_id = cf.id
JOIN formaciones AS f ON c.formacion_id = f.id
JOIN temas AS t ON f.tema_id = t.id"""
SESSIONS_SQL += SESSIONS_FROM


def sessions_showing(connection: Any, table: str, ids: Sequence[int]) -> set[int]:
    """The sessions whose event shows one of the rows *ids* of *table* (a RELATED_TABLES
    name): a client's rename changes the events of that client's sessions only."""
    alias = dict(zip(RELATED_TABLES, RELATED, strict=True))[table]
    found: set[int] = set()
    for start in range(0, len(ids), 500):
        part = list(ids[start : start + 500])
        marks = ", ".join("?" * len(part))
        sql = f"SELECT s.id {SESSIONS_FROM} WHERE {alias}.id IN ({marks})"
        found.update(int(row[0]) for row in driver_rows(connection, sql, part))
    return found


def driver_rows(connection: Any, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
    """Rows of *sql* (``?`` placeholders) straight from the driver, in batches.

    *connection* is a ``sqlite3`` connection or a SQLAlchemy one (SQLite or
    PostgreSQL, inside its transaction). PostgreSQL streams through a
    server-side cursor, so memory stays flat however many rows there are.
    """
    if isinstance(connection, sqlite3.Connection):
        cursor: Any = connection.cursor()
    else:
        raw = connection.connection.dbapi_connection
        if connection.dialect.name == "sqlite":
            cursor = raw.cursor()
        else:
            sql = sql.replace("%", "%%").replace("?", "%s")
            cursor = raw.cursor(name=f"planctl_sessions_{next(_counter)}")
            cursor.itersize = BATCH
    try:
        cursor.execute(sql, tuple(params))
        while rows := cursor.fetchmany(BATCH):
            yield from rows
    finally:
        with contextlib.suppress(sqlite3.ProgrammingError):  # closed first: rows left unread
            cursor.close()


def resolve_client(connection: Any, client: str) -> int:
    """A client id from an id or a company name (case-insensitive); UsageError if unknown."""
    clients = list(driver_rows(connection, "SELECT id, empresa FROM clientes ORDER BY id"))
    # isdecimal, not isdigit ('²' is a digit that int() refuses)
    if client.strip().isdecimal() and any(i == int(client) for i, _ in clients):
        return int(client)
    # Compare in Python: SQLite's lower() folds ASCII only ('Ñandú' ≠ 'ñandú').
    wanted = client.strip().casefold()
    for client_id, empresa in clients:
        if empresa.casefold() == wanted:
            return int(client_id)
    names = [empresa for _, empresa in clients]
    close = difflib.get_close_matches(client, names, n=1)
    hint = f"did you mean '{close[0]}'?" if close else "planctl export csv clientes lists them"
    raise UsageError(f"unknown client '{client}'", hint)


def check_statuses(statuses: Sequence[str] | None) -> None:
    if not statuses:
        return
    from planctl.db.schema import ESTADOS_SESION

    for status in statuses:
        if status not in ESTADOS_SESION:
            raise UsageError(
                f"unknown session status '{status}'", f"use one of {', '.join(ESTADOS_SESION)}"
            )


def date_conditions(filters: SessionFilter) -> tuple[list[str], list[Any]]:
    """``WHERE`` conditions on ``s.fecha`` and their parameters (ISO dates)."""
    conditions, params = [], []
    if filters.since is not None:
        conditions.append("s.fecha >= ?")
        params.append(filters.since.isoformat())
    if filters.until is not None:
        conditions.append("s.fecha <= ?")
        params.append(filters.until.isoformat())
    return conditions, params


def sessions_query(connection: Any, filters: SessionFilter) -> tuple[str, list[Any]]:
    """The SQL of :func:`iter_sessions` and its parameters."""
    check_statuses(filters.statuses)
    conditions, params = date_conditions(filters)
    if filters.client is not None:
        conditions.append("cl.id = ?")
        params.append(resolve_client(connection, filters.client))
    if filters.statuses:
        conditions.append(f"s.estado IN ({', '.join('?' for _ in filters.statuses)})")
        params.extend(filters.statuses)
    if filters.session_ids is not None:
        ids = [int(i) for i in filters.session_ids]
        conditions.append(f"s.id IN ({', '.join(str(i) for i in ids) or 'NULL'})")
    if not filters.include_cancelled:
        conditions.append("s.estado <> 'cancelada'")
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    return f"{SESSIONS_SQL}{where} ORDER BY s.fecha, s.hora_inicio, s.id", params


def _memo(parse: Callable[[str], Any]) -> Callable[[Any], Any]:
    """*parse* for SQLite's text values, each distinct text parsed once; other values
    (PostgreSQL's typed ones, NULL) as they are."""
    seen: dict[str, Any] = {}

    def convert(value: Any) -> Any:
        if value.__class__ is not str:
            return value
        found = seen.get(value)
        if found is None:
            found = seen[value] = parse(value)
        return found

    return convert


def _price(value: Any) -> Decimal | None:
    """NUMERIC(10, 2) as SQLAlchemy reads it on SQLite: the float at its scale, exact."""
    if value is None or isinstance(value, Decimal):
        return value
    if isinstance(value, str):
        return Decimal(value)
    return Decimal(f"{value:.{PRICE_SCALE}f}")


def _utc(moment: Any) -> Any:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=dt.UTC)


def iter_sessions(
    connection: Any, filters: SessionFilter = SessionFilter()
) -> Iterator[SessionView]:
    """Stream the matching sessions, ordered by date, time and id.

    SQLite's text dates, times and timestamps are parsed as SQLAlchemy would
    (timestamps naive, in UTC); each distinct text only once.
    """
    sql, params = sessions_query(connection, filters)
    day, time = _memo(dt.date.fromisoformat), _memo(dt.time.fromisoformat)
    moment = _memo(dt.datetime.fromisoformat)
    aware = _memo(lambda text: _utc(dt.datetime.fromisoformat(text)))
    make = SessionView
    for row in driver_rows(connection, sql, params):
        stamps: list[dt.datetime] = [
            aware(v) if v.__class__ is str else _utc(v) for v in row[24:] if v is not None
        ]
        updated = row[9]
        if updated is not None:
            stamps.append(aware(updated) if updated.__class__ is str else _utc(updated))
        yield make(
            row[0], day(row[1]), time(row[2]), time(row[3]), row[4], row[5], row[6], row[7],
            moment(row[8]), moment(updated), row[10], row[11], row[12], row[13], row[14],
            row[15], _price(row[16]), row[17], row[18], row[19], row[20], row[21], row[22],
            row[23], max(stamps) if stamps else None,
        )  # fmt: skip


def latest(moments: Sequence[dt.datetime | None]) -> dt.datetime | None:
    """The latest of *moments*, aware (naive ones are UTC, as SQLite keeps them); None if none."""
    known = [m if m.tzinfo is not None else m.replace(tzinfo=dt.UTC) for m in moments if m]
    return max(known) if known else None
