"""The joined view of sessions that the iCalendar and PDF exports (and sync) share.

One query joins each session with its contract, course, topic and client and
streams the rows in date order; filters are applied in SQL.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.engine import Connection

from planctl.db.models import (
    ESTADOS_SESION,
    Cliente,
    ClienteFinal,
    Contratacion,
    Formacion,
    Sesion,
    Tema,
)
from planctl.errors import UsageError

BATCH = 2000
#: The rows an event shows besides the session; their edits change the event too.
RELATED: tuple[Any, ...] = (Contratacion, Cliente, ClienteFinal, Formacion, Tema)


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
        start = dt.datetime.combine(self.fecha, self.hora_inicio)
        end = dt.datetime.combine(self.fecha, self.hora_fin)
        return int((end - start).total_seconds()) // 60

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


def _query() -> Select[*tuple[Any, ...]]:
    query = (
        select(
            Sesion.id,
            Sesion.fecha,
            Sesion.hora_inicio,
            Sesion.hora_fin,
            Sesion.estado,
            func.coalesce(Sesion.direccion, Contratacion.direccion).label("direccion"),
            func.coalesce(Sesion.enlace_vc, Contratacion.enlace_vc).label("enlace_vc"),
            Sesion.notas,
            Sesion.created_at,
            Sesion.updated_at,
            Sesion.contratacion_id,
            Contratacion.expediente,
            Contratacion.modalidad,
            Contratacion.persona_responsable,
            Contratacion.telefono_responsable,
            Contratacion.email_responsable,
            Contratacion.precio_hora,
            Cliente.id.label("cliente_id"),
            Cliente.empresa.label("cliente"),
            Cliente.color_hex.label("cliente_color"),
            ClienteFinal.empresa.label("cliente_final"),
            Formacion.nombre.label("formacion"),
            Formacion.nivel,
            Tema.nombre.label("tema"),
            *(model.updated_at.label(f"_updated_{index}") for index, model in enumerate(RELATED)),
        )
        .join(Contratacion, Sesion.contratacion_id == Contratacion.id)
        .join(Cliente, Contratacion.cliente_id == Cliente.id)
        .outerjoin(ClienteFinal, Contratacion.cliente_final_id == ClienteFinal.id)
        .join(Formacion, Contratacion.formacion_id == Formacion.id)
        .join(Tema, Formacion.tema_id == Tema.id)
    )
    return query


def resolve_client(connection: Connection, client: str) -> int:
    """A client id from an id or a company name (case-insensitive); UsageError if unknown."""
    # isdecimal, not isdigit ('²' is a digit that int() refuses); an id fits in 64 bits
    if client.strip().isdecimal() and int(client) < 2**63:
        found = connection.execute(select(Cliente.id).where(Cliente.id == int(client))).scalar()
        if found is not None:
            return int(found)
    # Compare in Python: SQLite's lower() folds ASCII only ('Ñandú' ≠ 'ñandú').
    clients = connection.execute(select(Cliente.id, Cliente.empresa)).all()
    wanted = client.strip().casefold()
    for client_id, empresa in clients:
        if empresa.casefold() == wanted:
            return int(client_id)
    names = [empresa for _, empresa in clients]
    close = difflib.get_close_matches(client, names, n=1)
    hint = f"did you mean '{close[0]}'?" if close else "planctl export csv clientes lists them"
    raise UsageError(f"unknown client '{client}'", hint)


def check_statuses(statuses: Sequence[str] | None) -> None:
    for status in statuses or ():
        if status not in ESTADOS_SESION:
            raise UsageError(
                f"unknown session status '{status}'", f"use one of {', '.join(ESTADOS_SESION)}"
            )


def iter_sessions(
    connection: Connection, filters: SessionFilter = SessionFilter()
) -> Iterator[SessionView]:
    """Stream the matching sessions, ordered by date, time and id."""
    check_statuses(filters.statuses)
    query = _query()
    if filters.since is not None:
        query = query.where(Sesion.fecha >= filters.since)
    if filters.until is not None:
        query = query.where(Sesion.fecha <= filters.until)
    if filters.client is not None:
        query = query.where(Cliente.id == resolve_client(connection, filters.client))
    if filters.statuses:
        query = query.where(Sesion.estado.in_(list(filters.statuses)))
    if filters.session_ids is not None:
        query = query.where(Sesion.id.in_(list(filters.session_ids)))
    if not filters.include_cancelled:
        query = query.where(Sesion.estado != "cancelada")
    query = query.order_by(Sesion.fecha, Sesion.hora_inicio, Sesion.id)
    # Options on the statement, not the connection: Connection.execution_options
    # changes the connection in place, and later INSERTs would run as cursors.
    result = connection.execute(query.execution_options(stream_results=True, yield_per=BATCH))
    for row in result:
        fields = row._asdict()
        stamps = [fields.pop(f"_updated_{index}") for index in range(len(RELATED))]
        yield SessionView(**fields, changed_at=latest([fields["updated_at"], *stamps]))


def latest(moments: Sequence[dt.datetime | None]) -> dt.datetime | None:
    """The latest of *moments*, aware (naive ones are UTC, as SQLite keeps them); None if none."""
    known = [m if m.tzinfo is not None else m.replace(tzinfo=dt.UTC) for m in moments if m]
    return max(known) if known else None
