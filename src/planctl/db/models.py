"""The planner's schema as SQLAlchemy 2 typed models (docs/architecture.md#schema-first-revision).

Enumerations are CHECK constraints over short strings (portable, and readable in
a CSV); every constraint is named through :data:`NAMING_CONVENTION` so SQLite
batch migrations can address it.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    Time,
    UniqueConstraint,
    false,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ROLES_CONTACTO = ("encargado_formacion", "participante", "otro")
MODALIDADES = ("presencial", "online", "mixta")
ESTADOS_CONTRATACION = ("tentativo", "confirmado", "cancelado")
PRIORIDADES = ("baja", "media", "alta")
ESTADOS_SESION = ("propuesta", "programada", "reprogramada", "cancelada")
ORIGENES_ADJUNTO = ("cliente", "contratacion", "sesion")
TIPOS_INTERACCION = ("llamada", "email", "reunion", "mensaje", "otro")
RESULTADOS_INTERACCION = (
    "propuesta",
    "pendiente",
    "negociacion",
    "aceptado",
    "rechazado",
    "sin_respuesta",
)


def one_of(column: str, values: tuple[str, ...], *, nullable: bool = False) -> CheckConstraint:
    """CHECK that *column* holds one of *values* (NULL allowed when *nullable*)."""
    listed = ", ".join(f"'{v}'" for v in values)
    condition = f"{column} IN ({listed})"
    if nullable:
        condition = f"{column} IS NULL OR {condition}"
    return CheckConstraint(condition, name=column)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Timestamped:
    """``created_at``/``updated_at`` in UTC, set by the database."""

    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.current_timestamp()
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True),
        server_default=func.current_timestamp(),
        onupdate=func.current_timestamp(),
    )


class Cliente(Timestamped, Base):
    """The contracting company."""

    __tablename__ = "clientes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    empresa: Mapped[str] = mapped_column(String(200))
    persona_contacto: Mapped[str | None] = mapped_column(String(200))
    telefono: Mapped[str | None] = mapped_column(String(40))
    email: Mapped[str | None] = mapped_column(String(254))
    direccion: Mapped[str | None] = mapped_column(String(300))
    cif: Mapped[str | None] = mapped_column(String(20), unique=True)
    notas: Mapped[str | None] = mapped_column(Text)
    color_hex: Mapped[str | None] = mapped_column(String(7))

    __table_args__ = (
        CheckConstraint(
            "color_hex IS NULL OR (length(color_hex) = 7 AND substr(color_hex, 1, 1) = '#')",
            name="color_hex",
        ),
        Index(None, "empresa"),
    )


class ClienteFinal(Timestamped, Base):
    """Who receives the training."""

    __tablename__ = "clientes_finales"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    empresa: Mapped[str] = mapped_column(String(200))
    persona_encargada: Mapped[str | None] = mapped_column(String(200))
    telefono_encargada: Mapped[str | None] = mapped_column(String(40))
    email_encargada: Mapped[str | None] = mapped_column(String(254))
    direccion: Mapped[str | None] = mapped_column(String(300))
    notas: Mapped[str | None] = mapped_column(Text)


class ContactoClienteFinal(Timestamped, Base):
    __tablename__ = "contactos_cliente_final"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cliente_final_id: Mapped[int] = mapped_column(
        ForeignKey("clientes_finales.id", ondelete="CASCADE"), index=True
    )
    nombre: Mapped[str] = mapped_column(String(200))
    telefono: Mapped[str | None] = mapped_column(String(40))
    email: Mapped[str | None] = mapped_column(String(254))
    rol: Mapped[str | None] = mapped_column(String(30))
    notas: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (one_of("rol", ROLES_CONTACTO, nullable=True),)


class Participante(Timestamped, Base):
    __tablename__ = "participantes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cliente_final_id: Mapped[int] = mapped_column(
        ForeignKey("clientes_finales.id", ondelete="CASCADE"), index=True
    )
    nombre: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    telefono: Mapped[str | None] = mapped_column(String(40))
    observaciones: Mapped[str | None] = mapped_column(Text)


class Tema(Timestamped, Base):
    __tablename__ = "temas"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    nombre: Mapped[str] = mapped_column(String(200), unique=True)
    descripcion: Mapped[str | None] = mapped_column(Text)


class Formacion(Timestamped, Base):
    """A course of the trainer's catalogue."""

    __tablename__ = "formaciones"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tema_id: Mapped[int] = mapped_column(ForeignKey("temas.id", ondelete="RESTRICT"), index=True)
    nombre: Mapped[str] = mapped_column(String(200))
    descripcion: Mapped[str | None] = mapped_column(Text)
    horas_referencia: Mapped[Decimal | None] = mapped_column(Numeric(6, 2))
    nivel: Mapped[str | None] = mapped_column(String(50))
    contenido_base: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("nombre", "nivel"),
        CheckConstraint(
            "horas_referencia IS NULL OR horas_referencia > 0", name="horas_referencia"
        ),
    )


class Contratacion(Timestamped, Base):
    """One course sold to one client."""

    __tablename__ = "contrataciones"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cliente_id: Mapped[int] = mapped_column(
        ForeignKey("clientes.id", ondelete="RESTRICT"), index=True
    )
    cliente_final_id: Mapped[int | None] = mapped_column(
        ForeignKey("clientes_finales.id", ondelete="SET NULL"), index=True
    )
    formacion_id: Mapped[int] = mapped_column(
        ForeignKey("formaciones.id", ondelete="RESTRICT"), index=True
    )
    expediente: Mapped[str] = mapped_column(String(50), unique=True)
    precio_hora: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))
    horas_previstas: Mapped[Decimal | None] = mapped_column(Numeric(7, 2))
    modalidad: Mapped[str | None] = mapped_column(String(20))
    direccion: Mapped[str | None] = mapped_column(String(300))
    enlace_vc: Mapped[str | None] = mapped_column(String(500))
    persona_responsable: Mapped[str | None] = mapped_column(String(200))
    telefono_responsable: Mapped[str | None] = mapped_column(String(40))
    email_responsable: Mapped[str | None] = mapped_column(String(254))
    fecha_inicio_prevista: Mapped[dt.date | None] = mapped_column(Date)
    fecha_fin_prevista: Mapped[dt.date | None] = mapped_column(Date)
    observaciones: Mapped[str | None] = mapped_column(Text)
    estado: Mapped[str] = mapped_column(String(20), server_default="tentativo")
    prioridad: Mapped[str] = mapped_column(String(10), server_default="media")

    __table_args__ = (
        one_of("modalidad", MODALIDADES, nullable=True),
        one_of("estado", ESTADOS_CONTRATACION),
        one_of("prioridad", PRIORIDADES),
        CheckConstraint("precio_hora IS NULL OR precio_hora >= 0", name="precio_hora"),
        CheckConstraint("horas_previstas IS NULL OR horas_previstas > 0", name="horas_previstas"),
        CheckConstraint(
            "fecha_fin_prevista IS NULL OR fecha_inicio_prevista IS NULL"
            " OR fecha_fin_prevista >= fecha_inicio_prevista",
            name="fechas_previstas",
        ),
        Index(None, "fecha_inicio_prevista"),
    )


class Sesion(Timestamped, Base):
    """One dated class of a contract, in the planner's local wall-clock time."""

    __tablename__ = "sesiones"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contratacion_id: Mapped[int] = mapped_column(
        ForeignKey("contrataciones.id", ondelete="CASCADE")
    )
    fecha: Mapped[dt.date] = mapped_column(Date)
    hora_inicio: Mapped[dt.time] = mapped_column(Time)
    hora_fin: Mapped[dt.time] = mapped_column(Time)
    direccion: Mapped[str | None] = mapped_column(String(300))
    enlace_vc: Mapped[str | None] = mapped_column(String(500))
    notas: Mapped[str | None] = mapped_column(Text)
    estado: Mapped[str] = mapped_column(String(20), server_default="programada")

    __table_args__ = (
        CheckConstraint("hora_fin > hora_inicio", name="horario"),
        one_of("estado", ESTADOS_SESION),
        Index(None, "contratacion_id", "fecha", "hora_inicio"),
        Index(None, "fecha", "hora_inicio"),
    )


class Adjunto(Timestamped, Base):
    """Attachment metadata only; the file lives elsewhere."""

    __tablename__ = "adjuntos"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    origen: Mapped[str] = mapped_column(String(20))
    origen_id: Mapped[int] = mapped_column(Integer)
    tipo: Mapped[str | None] = mapped_column(String(50))
    ruta_fichero: Mapped[str] = mapped_column(String(1000))
    notas: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (one_of("origen", ORIGENES_ADJUNTO), Index(None, "origen", "origen_id"))


class Interaccion(Timestamped, Base):
    """The mini-CRM: calls, e-mails and meetings with a client."""

    __tablename__ = "interacciones"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cliente_id: Mapped[int] = mapped_column(ForeignKey("clientes.id", ondelete="CASCADE"))
    contratacion_id: Mapped[int | None] = mapped_column(
        ForeignKey("contrataciones.id", ondelete="SET NULL"), index=True
    )
    fecha: Mapped[dt.date] = mapped_column(Date)
    tipo: Mapped[str | None] = mapped_column(String(20))
    descripcion: Mapped[str | None] = mapped_column(Text)
    resultado: Mapped[str | None] = mapped_column(String(20))
    proxima_accion: Mapped[str | None] = mapped_column(Text)
    fecha_proxima_accion: Mapped[dt.date | None] = mapped_column(Date)
    crear_recordatorio: Mapped[bool] = mapped_column(Boolean, server_default=false())

    __table_args__ = (
        one_of("tipo", TIPOS_INTERACCION, nullable=True),
        one_of("resultado", RESULTADOS_INTERACCION, nullable=True),
        Index(None, "cliente_id", "fecha"),
    )


SYNC_BACKENDS_MAX = 40  # length of a backend name in the sync tables


class EstadoSincronizacion(Base):
    """What the last sync knew of one session on one calendar backend.

    No foreign key to ``sesiones``: when a session is deleted its state row
    must survive, so the next run knows which remote event to delete.
    """

    __tablename__ = "estados_sincronizacion"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    backend: Mapped[str] = mapped_column(String(SYNC_BACKENDS_MAX))
    sesion_id: Mapped[int] = mapped_column(Integer)
    id_remoto: Mapped[str] = mapped_column(String(1000))  # event id or CalDAV href
    etag: Mapped[str | None] = mapped_column(String(200))
    hash_local: Mapped[str] = mapped_column(String(64))
    hash_remoto: Mapped[str] = mapped_column(String(64))
    sincronizado_en: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("backend", "sesion_id"),
        Index(None, "backend", "id_remoto"),
    )


class EjecucionSincronizacion(Base):
    """One sync run: when, which way, what it did (``planctl sync status`` shows the last)."""

    __tablename__ = "ejecuciones_sincronizacion"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    backend: Mapped[str] = mapped_column(String(SYNC_BACKENDS_MAX))
    modo: Mapped[str] = mapped_column(String(10))
    inicio: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    fin: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    resultado: Mapped[str] = mapped_column(String(20))
    creados: Mapped[int] = mapped_column(Integer, server_default="0")
    actualizados: Mapped[int] = mapped_column(Integer, server_default="0")
    eliminados: Mapped[int] = mapped_column(Integer, server_default="0")
    sin_cambios: Mapped[int] = mapped_column(Integer, server_default="0")
    conflictos: Mapped[int] = mapped_column(Integer, server_default="0")
    errores: Mapped[int] = mapped_column(Integer, server_default="0")

    __table_args__ = (
        one_of("modo", ("sync", "push", "pull")),
        one_of("resultado", ("en_curso", "ok", "conflictos", "errores")),
        Index(None, "backend", "inicio"),
    )


metadata = Base.metadata

#: planctl's own bookkeeping, not the planner's data: neither exported as CSV
#: nor carried by logical backups (a restored planner starts its sync afresh).
SYNC_TABLE_NAMES: tuple[str, ...] = ("estados_sincronizacion", "ejecuciones_sincronizacion")

#: The planner's tables in dependency order (parents first): the order to load and dump.
TABLE_NAMES: tuple[str, ...] = tuple(
    t.name for t in metadata.sorted_tables if t.name not in SYNC_TABLE_NAMES
)
