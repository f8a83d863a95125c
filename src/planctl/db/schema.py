"""The planner's schema as SQLAlchemy Core tables
(docs/architecture.md#schema-first-revision).

This module is the schema, stated once: every query (sync, exports, backups, the
seed, tests) is SQLAlchemy Core over these tables. There is no ORM layer: no command
reads rows as objects, and ORM classes would re-state every column (and cost a short
command about 0.07 s of imports).

Enumerations are CHECK constraints over short strings (portable, and readable in
a CSV); every constraint is named through :data:`NAMING_CONVENTION` so SQLite
batch migrations can address it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    Time,
    UniqueConstraint,
    false,
    func,
)

from planctl.db.names import TABLES

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

SYNC_BACKENDS_MAX = 40  # length of a backend name in the sync tables

metadata = MetaData(naming_convention=NAMING_CONVENTION)


def one_of(column: str, values: tuple[str, ...], *, nullable: bool = False) -> CheckConstraint:
    """CHECK that *column* holds one of *values* (NULL allowed when *nullable*)."""
    listed = ", ".join(f"'{v}'" for v in values)
    condition = f"{column} IN ({listed})"
    if nullable:
        condition = f"{column} IS NULL OR {condition}"
    return CheckConstraint(condition, name=column)


def _id() -> Column[Any]:
    return Column("id", Integer, primary_key=True)


def _required(name: str, kind: Any, **options: Any) -> Column[Any]:
    return Column(name, kind, nullable=False, **options)


def _optional(name: str, kind: Any, **options: Any) -> Column[Any]:
    return Column(name, kind, nullable=True, **options)


def _parent(name: str, target: str, ondelete: str, *, nullable: bool = False) -> Column[Any]:
    """A foreign key column to *target*'s id."""
    return Column(name, ForeignKey(f"{target}.id", ondelete=ondelete), nullable=nullable)


def _timestamps() -> tuple[Column[Any], Column[Any]]:
    """``created_at``/``updated_at`` in UTC, set by the database (the last two columns)."""
    return (
        _required("created_at", DateTime(timezone=True), server_default=func.current_timestamp()),
        _required(
            "updated_at",
            DateTime(timezone=True),
            server_default=func.current_timestamp(),
            onupdate=func.current_timestamp(),
        ),
    )


clientes = Table(
    "clientes",
    metadata,
    _id(),
    _required("empresa", String(200)),
    _optional("persona_contacto", String(200)),
    _optional("telefono", String(40)),
    _optional("email", String(254)),
    _optional("direccion", String(300)),
    _optional("cif", String(20), unique=True),
    _optional("notas", Text),
    _optional("color_hex", String(7)),
    *_timestamps(),
    CheckConstraint(
        "color_hex IS NULL OR (length(color_hex) = 7 AND substr(color_hex, 1, 1) = '#')",
        name="color_hex",
    ),
    Index(None, "empresa"),
)

clientes_finales = Table(
    "clientes_finales",
    metadata,
    _id(),
    _required("empresa", String(200)),
    _optional("persona_encargada", String(200)),
    _optional("telefono_encargada", String(40)),
    _optional("email_encargada", String(254)),
    _optional("direccion", String(300)),
    _optional("notas", Text),
    *_timestamps(),
)

contactos_cliente_final = Table(
    "contactos_cliente_final",
    metadata,
    _id(),
    _parent("cliente_final_id", "clientes_finales", "CASCADE"),
    _required("nombre", String(200)),
    _optional("telefono", String(40)),
    _optional("email", String(254)),
    _optional("rol", String(30)),
    _optional("notas", Text),
    *_timestamps(),
    one_of("rol", ROLES_CONTACTO, nullable=True),
    Index(None, "cliente_final_id"),
)

participantes = Table(
    "participantes",
    metadata,
    _id(),
    _parent("cliente_final_id", "clientes_finales", "CASCADE"),
    _required("nombre", String(200)),
    _optional("email", String(254)),
    _optional("telefono", String(40)),
    _optional("observaciones", Text),
    *_timestamps(),
    Index(None, "cliente_final_id"),
)

temas = Table(
    "temas",
    metadata,
    _id(),
    _required("nombre", String(200), unique=True),
    _optional("descripcion", Text),
    *_timestamps(),
)

formaciones = Table(
    "formaciones",
    metadata,
    _id(),
    _parent("tema_id", "temas", "RESTRICT"),
    _required("nombre", String(200)),
    _optional("descripcion", Text),
    _optional("horas_referencia", Numeric(6, 2)),
    _optional("nivel", String(50)),
    _optional("contenido_base", Text),
    *_timestamps(),
    UniqueConstraint("nombre", "nivel"),
    CheckConstraint("horas_referencia IS NULL OR horas_referencia > 0", name="horas_referencia"),
    Index(None, "tema_id"),
)

contrataciones = Table(
    "contrataciones",
    metadata,
    _id(),
    _parent("cliente_id", "clientes", "RESTRICT"),
    _parent("cliente_final_id", "clientes_finales", "SET NULL", nullable=True),
    _parent("formacion_id", "formaciones", "RESTRICT"),
    _required("expediente", String(50), unique=True),
    _optional("precio_hora", Numeric(10, 2)),
    _optional("horas_previstas", Numeric(7, 2)),
    _optional("modalidad", String(20)),
    _optional("direccion", String(300)),
    _optional("enlace_vc", String(500)),
    _optional("persona_responsable", String(200)),
    _optional("telefono_responsable", String(40)),
    _optional("email_responsable", String(254)),
    _optional("fecha_inicio_prevista", Date),
    _optional("fecha_fin_prevista", Date),
    _optional("observaciones", Text),
    _required("estado", String(20), server_default="tentativo"),
    _required("prioridad", String(10), server_default="media"),
    *_timestamps(),
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
    Index(None, "cliente_id"),
    Index(None, "cliente_final_id"),
    Index(None, "formacion_id"),
    Index(None, "fecha_inicio_prevista"),
)

sesiones = Table(
    "sesiones",
    metadata,
    _id(),
    _parent("contratacion_id", "contrataciones", "CASCADE"),
    _required("fecha", Date),
    _required("hora_inicio", Time),
    _required("hora_fin", Time),
    _optional("direccion", String(300)),
    _optional("enlace_vc", String(500)),
    _optional("notas", Text),
    _required("estado", String(20), server_default="programada"),
    *_timestamps(),
    CheckConstraint("hora_fin > hora_inicio", name="horario"),
    one_of("estado", ESTADOS_SESION),
    Index(None, "contratacion_id", "fecha", "hora_inicio"),
    Index(None, "fecha", "hora_inicio"),
)

adjuntos = Table(
    "adjuntos",
    metadata,
    _id(),
    _required("origen", String(20)),
    _required("origen_id", Integer),
    _optional("tipo", String(50)),
    _required("ruta_fichero", String(1000)),
    _optional("notas", Text),
    *_timestamps(),
    one_of("origen", ORIGENES_ADJUNTO),
    Index(None, "origen", "origen_id"),
)

interacciones = Table(
    "interacciones",
    metadata,
    _id(),
    _parent("cliente_id", "clientes", "CASCADE"),
    _parent("contratacion_id", "contrataciones", "SET NULL", nullable=True),
    _required("fecha", Date),
    _optional("tipo", String(20)),
    _optional("descripcion", Text),
    _optional("resultado", String(20)),
    _optional("proxima_accion", Text),
    _optional("fecha_proxima_accion", Date),
    _required("crear_recordatorio", Boolean, server_default=false()),
    *_timestamps(),
    one_of("tipo", TIPOS_INTERACCION, nullable=True),
    one_of("resultado", RESULTADOS_INTERACCION, nullable=True),
    Index(None, "cliente_id", "fecha"),
    Index(None, "contratacion_id"),
)

# planctl's own bookkeeping is English (``planctl_*``; Spanish before revision
# 31d0f0df5b58, see planctl.db.legacy). No foreign key to ``sesiones``: when a
# session is deleted its state row must survive, so the next run knows which
# remote event to delete.
planctl_sync_states = Table(
    "planctl_sync_states",
    metadata,
    _id(),
    _required("backend", String(SYNC_BACKENDS_MAX)),
    _required("session_id", Integer),
    _required("remote_id", String(1000)),  # event id or CalDAV href
    _optional("etag", String(200)),
    _required("local_hash", String(64)),
    _required("remote_hash", String(64)),
    _required("synced_at", DateTime(timezone=True)),
    UniqueConstraint("backend", "session_id"),
    Index(None, "backend", "remote_id"),
)

SYNC_MODES = ("sync", "push", "pull")
#: A sync run's result: ``running`` until it ends; ``interrupted`` when it was killed or lost.
SYNC_RESULTS = ("running", "ok", "conflicts", "errors", "interrupted")
#: A sync run's counts, one column each.
SYNC_COUNTS = ("created", "updated", "deleted", "unchanged", "conflicts", "errors")

planctl_sync_runs = Table(
    "planctl_sync_runs",
    metadata,
    _id(),
    _required("backend", String(SYNC_BACKENDS_MAX)),
    _required("mode", String(10)),
    _required("started_at", DateTime(timezone=True)),
    _optional("finished_at", DateTime(timezone=True)),
    _required("result", String(20)),
    *(_required(name, Integer, server_default="0") for name in SYNC_COUNTS),
    one_of("mode", SYNC_MODES),
    one_of("result", SYNC_RESULTS),
    Index(None, "backend", "started_at"),
)

#: planctl's own bookkeeping, not the planner's data: neither exported as CSV
#: nor carried by logical backups (a restored planner starts its sync afresh).
#: Both follow from :data:`TABLE_NAMES`, which :func:`_check_table_order` proves is
#: every table of the schema but these.
SYNC_TABLE_NAMES: tuple[str, ...] = ("planctl_sync_states", "planctl_sync_runs")

#: The planner's tables in dependency order (parents first): the order to load and dump.
#: One list, :data:`planctl.db.names.TABLES` (read by the commands that start without
#: SQLAlchemy); checked here, when the schema is built, against the tables above.
TABLE_NAMES: tuple[str, ...] = TABLES


def _check_table_order() -> None:
    own = {name for name in metadata.tables if name.startswith("planctl_")}
    if own != set(SYNC_TABLE_NAMES):
        raise RuntimeError(f"SYNC_TABLE_NAMES {SYNC_TABLE_NAMES} are not the planctl_* tables")
    planner = [t for t in metadata.sorted_tables if t.name not in SYNC_TABLE_NAMES]
    if {t.name for t in planner} != set(TABLES):
        raise RuntimeError(f"planctl.db.names.TABLES {TABLES} differs from the schema's tables")
    for table in planner:
        for key in table.foreign_keys:
            parent = key.column.table.name
            if parent != table.name and TABLES.index(parent) > TABLES.index(table.name):
                raise RuntimeError(f"planctl.db.names.TABLES lists {table.name} before {parent}")


_check_table_order()
