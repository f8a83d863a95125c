"""The planner's schema as SQLAlchemy 2 typed ORM classes, mapped onto the Core
tables of :mod:`planctl.db.schema` (the schema itself is defined there, once;
docs/architecture.md#schema-first-revision).

Only code that wants rows as objects imports this module: the ORM costs a
short command about 0.07 s.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy.orm import DeclarativeBase, Mapped

from planctl.db import schema
from planctl.db.schema import (
    ESTADOS_CONTRATACION,
    ESTADOS_SESION,
    MODALIDADES,
    NAMING_CONVENTION,
    ORIGENES_ADJUNTO,
    PRIORIDADES,
    RESULTADOS_INTERACCION,
    ROLES_CONTACTO,
    SYNC_BACKENDS_MAX,
    SYNC_TABLE_NAMES,
    TABLE_NAMES,
    TIPOS_INTERACCION,
    metadata,
    one_of,
)


class Base(DeclarativeBase):
    metadata = schema.metadata


class Timestamped:
    """``created_at``/``updated_at`` in UTC, set by the database."""

    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]


class Cliente(Timestamped, Base):
    """The contracting company."""

    __table__ = schema.clientes

    id: Mapped[int]
    empresa: Mapped[str]
    persona_contacto: Mapped[str | None]
    telefono: Mapped[str | None]
    email: Mapped[str | None]
    direccion: Mapped[str | None]
    cif: Mapped[str | None]
    notas: Mapped[str | None]
    color_hex: Mapped[str | None]


class ClienteFinal(Timestamped, Base):
    """Who receives the training."""

    __table__ = schema.clientes_finales

    id: Mapped[int]
    empresa: Mapped[str]
    persona_encargada: Mapped[str | None]
    telefono_encargada: Mapped[str | None]
    email_encargada: Mapped[str | None]
    direccion: Mapped[str | None]
    notas: Mapped[str | None]


class ContactoClienteFinal(Timestamped, Base):
    __table__ = schema.contactos_cliente_final

    id: Mapped[int]
    cliente_final_id: Mapped[int]
    nombre: Mapped[str]
    telefono: Mapped[str | None]
    email: Mapped[str | None]
    rol: Mapped[str | None]
    notas: Mapped[str | None]


class Participante(Timestamped, Base):
    __table__ = schema.participantes

    id: Mapped[int]
    cliente_final_id: Mapped[int]
    nombre: Mapped[str]
    email: Mapped[str | None]
    telefono: Mapped[str | None]
    observaciones: Mapped[str | None]


class Tema(Timestamped, Base):
    __table__ = schema.temas

    id: Mapped[int]
    nombre: Mapped[str]
    descripcion: Mapped[str | None]


class Formacion(Timestamped, Base):
    """A course of the trainer's catalogue."""

    __table__ = schema.formaciones

    id: Mapped[int]
    tema_id: Mapped[int]
    nombre: Mapped[str]
    descripcion: Mapped[str | None]
    horas_referencia: Mapped[Decimal | None]
    nivel: Mapped[str | None]
    contenido_base: Mapped[str | None]


class Contratacion(Timestamped, Base):
    """One course sold to one client."""

    __table__ = schema.contrataciones

    id: Mapped[int]
    cliente_id: Mapped[int]
    cliente_final_id: Mapped[int | None]
    formacion_id: Mapped[int]
    expediente: Mapped[str]
    precio_hora: Mapped[Decimal | None]
    horas_previstas: Mapped[Decimal | None]
    modalidad: Mapped[str | None]
    direccion: Mapped[str | None]
    enlace_vc: Mapped[str | None]
    persona_responsable: Mapped[str | None]
    telefono_responsable: Mapped[str | None]
    email_responsable: Mapped[str | None]
    fecha_inicio_prevista: Mapped[dt.date | None]
    fecha_fin_prevista: Mapped[dt.date | None]
    observaciones: Mapped[str | None]
    estado: Mapped[str]
    prioridad: Mapped[str]


class Sesion(Timestamped, Base):
    """One dated class of a contract, in the planner's local wall-clock time."""

    __table__ = schema.sesiones

    id: Mapped[int]
    contratacion_id: Mapped[int]
    fecha: Mapped[dt.date]
    hora_inicio: Mapped[dt.time]
    hora_fin: Mapped[dt.time]
    direccion: Mapped[str | None]
    enlace_vc: Mapped[str | None]
    notas: Mapped[str | None]
    estado: Mapped[str]


class Adjunto(Timestamped, Base):
    """Attachment metadata only; the file lives elsewhere."""

    __table__ = schema.adjuntos

    id: Mapped[int]
    origen: Mapped[str]
    origen_id: Mapped[int]
    tipo: Mapped[str | None]
    ruta_fichero: Mapped[str]
    notas: Mapped[str | None]


class Interaccion(Timestamped, Base):
    """The mini-CRM: calls, e-mails and meetings with a client."""

    __table__ = schema.interacciones

    id: Mapped[int]
    cliente_id: Mapped[int]
    contratacion_id: Mapped[int | None]
    fecha: Mapped[dt.date]
    tipo: Mapped[str | None]
    descripcion: Mapped[str | None]
    resultado: Mapped[str | None]
    proxima_accion: Mapped[str | None]
    fecha_proxima_accion: Mapped[dt.date | None]
    crear_recordatorio: Mapped[bool]


class SyncState(Base):
    """What the last sync knew of one session on one calendar backend (planctl's bookkeeping).

    No foreign key to ``sesiones``: when a session is deleted its state row
    must survive, so the next run knows which remote event to delete.
    """

    __table__ = schema.planctl_sync_states

    id: Mapped[int]
    backend: Mapped[str]
    session_id: Mapped[int]
    remote_id: Mapped[str]
    etag: Mapped[str | None]
    local_hash: Mapped[str]
    remote_hash: Mapped[str]
    synced_at: Mapped[dt.datetime]


class SyncRun(Base):
    """One sync run: when, which way, what it did (``planctl sync status`` shows the last)."""

    __table__ = schema.planctl_sync_runs

    id: Mapped[int]
    backend: Mapped[str]
    mode: Mapped[str]
    started_at: Mapped[dt.datetime]
    finished_at: Mapped[dt.datetime | None]
    result: Mapped[str]
    created: Mapped[int]
    updated: Mapped[int]
    deleted: Mapped[int]
    unchanged: Mapped[int]
    conflicts: Mapped[int]
    errors: Mapped[int]


__all__ = [
    "ESTADOS_CONTRATACION",
    "ESTADOS_SESION",
    "MODALIDADES",
    "NAMING_CONVENTION",
    "ORIGENES_ADJUNTO",
    "PRIORIDADES",
    "RESULTADOS_INTERACCION",
    "ROLES_CONTACTO",
    "SYNC_BACKENDS_MAX",
    "SYNC_TABLE_NAMES",
    "TABLE_NAMES",
    "TIPOS_INTERACCION",
    "Adjunto",
    "Base",
    "Cliente",
    "ClienteFinal",
    "ContactoClienteFinal",
    "Contratacion",
    "Formacion",
    "Interaccion",
    "Participante",
    "Sesion",
    "SyncRun",
    "SyncState",
    "Tema",
    "Timestamped",
    "metadata",
    "one_of",
]
