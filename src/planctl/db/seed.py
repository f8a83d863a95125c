"""Deterministic Spanish demo data, and a bulk generator for benchmark databases.

``seed(url)`` loads a few hundred sessions a trainer would recognise;
``seed(url, scale=N)`` generates N sessions with proportional clients and
contracts. Rows are produced as tuples in chunks and written with the
driver's bulk path (``executemany`` on SQLite, ``COPY`` on PostgreSQL), never
as ORM objects, so a million sessions load in seconds and memory stays flat.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import Any

from sqlalchemy import func, inspect, select, text
from sqlalchemy.engine import Connection

from planctl.db import changelog
from planctl.db.bulk import load_rows
from planctl.db.engine import connect
from planctl.db.migrate import head_revision
from planctl.db.schema import RESULTADOS_INTERACCION, TABLE_NAMES, TIPOS_INTERACCION, metadata
from planctl.errors import SeedError, UsageError
from planctl.target import Target

Row = tuple[Any, ...]
CHUNK = 20_000
DEMO_SESSIONS = 320
SESSIONS_PER_CONTRACT = 16
FIRST_DAY = dt.date(2026, 9, 7)

EMPRESAS = [
    "Formación y Desarrollo, S.L.",
    "Ñandú Consultores, S.A.",
    "Transportes Peñalara, S.L.",
    "Café Olé; Hostelería S.L.",
    "Clínica Dental Sonrisa, S.L.P.",
    "Ayuntamiento de Alcalá de Henares",
    "Logística Íñiguez e Hijos, S.A.",
    "Cooperativa Agrícola San Andrés",
    "Hotel Miramar Costa, S.L.",
    "Ingeniería Guadalquivir, S.A.",
    "Academia Cervantes",
    'Seguros La Coruña "Mutua"',
]
CLIENTES_FINALES = [
    "Fundación Estatal para la Formación en el Empleo",
    "Escuela de Negocios Ibérica",
    "Consejería de Educación, Junta de Andalucía",
    "Cámara de Comercio de Valencia",
    "Universidad de Salamanca",
    "Asociación de Empresarios del Henares",
]
NOMBRES = [
    "María",
    "José",
    "Lucía",
    "Javier",
    "Carmen",
    "Íñigo",
    "Begoña",
    "Álvaro",
    "Nuria",
    "Sergio",
    "Ainhoa",
    "Raúl",
    "Montserrat",
    "Jesús",
    "Paula",
    "Óscar",
]
APELLIDOS = [
    "García",
    "Fernández",
    "López",
    "Martínez",
    "Sánchez",
    "Pérez",
    "Gómez",
    "Núñez",
    "Ibáñez",
    "Muñoz",
    "Álvarez",
    "Romero",
    "Ortega",
    "Castaño",
    "Peña",
    "Etxeberria",
]
CIUDADES = [
    "Madrid",
    "Barcelona",
    "Sevilla",
    "Valencia",
    "Bilbao",
    "Zaragoza",
    "Málaga",
    "A Coruña",
    "Salamanca",
    "Alcalá de Henares",
    "Logroño",
    "Cáceres",
]
CALLES = [
    "Calle Mayor",
    "Avenida de la Constitución",
    "Paseo de la Castellana",
    "Calle de Alcalá",
    "Gran Vía",
    "Plaza de España",
    "Calle Real",
    "Ronda de Triana",
]
COLORES = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
    "#3d5a80",
    "#ee6c4d",
]
TEMAS = [
    ("Ofimática", "Hojas de cálculo, procesadores de texto y presentaciones"),
    ("Programación en Python", "Del primer script al análisis de datos"),
    ("Prevención de Riesgos Laborales", "Formación obligatoria según la Ley 31/1995"),
    ("Liderazgo y gestión de equipos", "Comunicación, delegación y feedback"),
    ("Atención al cliente", "Calidad de servicio, quejas y reclamaciones"),
    ("Ciberseguridad", "Buenas prácticas, phishing y protección de datos (RGPD)"),
    ("Inglés profesional", "Reuniones, correos y presentaciones en inglés"),
    ("Igualdad y diversidad", "Planes de igualdad y prevención del acoso"),
]
FORMACIONES = [  # (tema index, nombre, nivel, horas)
    (0, "Excel avanzado: tablas dinámicas y Power Query", "avanzado", "20"),
    (0, "Excel básico", "básico", "12"),
    (0, "Word y PowerPoint para el día a día", "básico", "10"),
    (1, "Python para análisis de datos", "intermedio", "30"),
    (1, "Introducción a la programación con Python", "básico", "24"),
    (1, "Automatización de tareas con Python", "avanzado", "16"),
    (2, "PRL: riesgos en oficinas y pantallas de visualización", "básico", "6"),
    (2, "PRL para mandos intermedios", "intermedio", "20"),
    (3, "Liderazgo de equipos remotos", "intermedio", "12"),
    (3, "Gestión del tiempo, prioridades y reuniones eficaces", "básico", "8"),
    (4, "Atención telefónica y gestión de reclamaciones", "básico", "10"),
    (5, "Ciberseguridad para empleados", "básico", "6"),
    (5, "Protección de datos: RGPD y LOPDGDD", "intermedio", "8"),
    (6, "Business English: reuniones y negociación", "intermedio", "40"),
    (7, "Plan de igualdad: diseño y seguimiento", "intermedio", "12"),
]
FRANJAS = [
    (dt.time(9, 0), dt.time(13, 0)),
    (dt.time(9, 30), dt.time(13, 30)),
    (dt.time(10, 0), dt.time(14, 0)),
    (dt.time(15, 0), dt.time(19, 0)),
    (dt.time(16, 0), dt.time(18, 0)),
    (dt.time(8, 0), dt.time(10, 30)),
]
NOTAS = [
    None,
    None,
    None,
    "Traer portátil; aula 2",
    "Acceso por la puerta B, preguntar en recepción",
    "Grupo reducido, 8 asistentes",
    "Sesión práctica:\nejercicios con datos reales",
    'Cliente pide "caso práctico" de su sector, con ejemplos',
    "Confirmar proyector y Wi-Fi",
]
ESTADOS_SESION = ["programada"] * 12 + ["propuesta"] * 3 + ["reprogramada"] * 2 + ["cancelada"] * 2


def _person(rng: random.Random) -> str:
    return f"{rng.choice(NOMBRES)} {rng.choice(APELLIDOS)} {rng.choice(APELLIDOS)}"


def _phone(rng: random.Random) -> str:
    return f"+34 6{rng.randrange(10):d}{rng.randrange(10**7):07d}"


def _email(name: str, domain: str) -> str:
    plain = name.lower().split()[0]
    for a, b in zip("áéíóúñü", "aeiounu", strict=True):
        plain = plain.replace(a, b)
    return f"{plain}@{domain}"


def _address(rng: random.Random) -> str:
    return f"{rng.choice(CALLES)}, {rng.randrange(1, 200)}, {rng.choice(CIUDADES)}"


def _company(index: int, pool: list[str]) -> str:
    base = pool[index % len(pool)]
    return base if index < len(pool) else f"{base} ({index // len(pool) + 1})"


class DemoData:
    """Generates every table's rows for a given number of sessions, deterministically."""

    def __init__(self, sessions: int, random_seed: int = 2026) -> None:
        self.sessions = sessions
        self.seed = random_seed
        self.contracts = max(1, -(-sessions // SESSIONS_PER_CONTRACT))
        self.clients = max(
            4, min(len(EMPRESAS), self.contracts) if sessions <= 1000 else self.contracts // 20
        )
        self.end_clients = max(2, self.clients // 2)

    def rng(self, table: str) -> random.Random:
        return random.Random(f"{self.seed}:{table}")

    def clientes(self) -> Iterator[Row]:
        rng = self.rng("clientes")
        for i in range(self.clients):
            contact = _person(rng)
            yield (
                i + 1,
                _company(i, EMPRESAS),
                contact,
                _phone(rng),
                _email(contact, "cliente.example.es"),
                _address(rng),
                f"B{10_000_000 + i:08d}",
                None if i % 3 else "Paga a 60 días",
                COLORES[i % len(COLORES)],
            )

    def clientes_finales(self) -> Iterator[Row]:
        rng = self.rng("clientes_finales")
        for i in range(self.end_clients):
            person = _person(rng)
            yield (
                i + 1,
                _company(i, CLIENTES_FINALES),
                person,
                _phone(rng),
                _email(person, "final.example.es"),
                _address(rng),
                None,
            )

    def contactos_cliente_final(self) -> Iterator[Row]:
        rng = self.rng("contactos")
        roles = ["encargado_formacion", "participante", "otro"]
        for i in range(self.end_clients * 2):
            person = _person(rng)
            yield (
                i + 1,
                i // 2 + 1,
                person,
                _phone(rng),
                _email(person, "final.example.es"),
                roles[i % 3],
                None,
            )

    def participantes(self) -> Iterator[Row]:
        rng = self.rng("participantes")
        for i in range(self.end_clients * 5):
            person = _person(rng)
            yield (
                i + 1,
                i // 5 + 1,
                person,
                _email(person, "alumnos.example.es"),
                _phone(rng),
                "Necesita certificado de asistencia" if i % 7 == 0 else None,
            )

    def temas(self) -> Iterator[Row]:
        for i, (nombre, descripcion) in enumerate(TEMAS):
            yield (i + 1, nombre, descripcion)

    def formaciones(self) -> Iterator[Row]:
        for i, (tema, nombre, nivel, horas) in enumerate(FORMACIONES):
            yield (
                i + 1,
                tema + 1,
                nombre,
                f"Curso de {nombre.lower()}",
                Decimal(horas),
                nivel,
                "Temario base:\n1. Introducción\n2. Práctica guiada\n3. Caso final",
            )

    def _contract(self, i: int) -> tuple[int, dt.date, str]:
        rng = random.Random(f"{self.seed}:contrato:{i}")
        start = FIRST_DAY + dt.timedelta(days=rng.randrange(0, 210))
        start -= dt.timedelta(days=start.weekday())  # contracts start on Mondays
        modalidad = rng.choice(["presencial", "presencial", "online", "mixta"])
        return i % self.clients + 1, start, modalidad

    def contrataciones(self) -> Iterator[Row]:
        rng = self.rng("contrataciones")
        for i in range(self.contracts):
            cliente, start, modalidad = self._contract(i)
            formacion = rng.randrange(len(FORMACIONES))
            horas = Decimal(FORMACIONES[formacion][3])
            person = _person(rng)
            estado = "cancelado" if i % 17 == 16 else ("tentativo" if i % 5 == 4 else "confirmado")
            yield (
                i + 1,
                cliente,
                (i % self.end_clients) + 1 if i % 3 else None,
                formacion + 1,
                f"EXP-{start.year}-{i + 1:06d}",
                Decimal(rng.choice(["45.00", "50.00", "55.50", "60.00", "72.25"])),
                horas,
                modalidad,
                None if modalidad == "online" else _address(rng),
                None if modalidad == "presencial" else f"https://meet.example.com/exp-{i + 1:06d}",
                person,
                _phone(rng),
                _email(person, "cliente.example.es"),
                start,
                start + dt.timedelta(weeks=8),
                "Bonificable por FUNDAE" if i % 4 == 0 else None,
                estado,
                ["baja", "media", "alta"][i % 3],
            )

    def sesiones(self) -> Iterator[Row]:
        rng = self.rng("sesiones")
        franjas, notas, estados = FRANJAS, NOTAS, ESTADOS_SESION
        for number in range(self.sessions):
            contract = number // SESSIONS_PER_CONTRACT
            step = number % SESSIONS_PER_CONTRACT
            if step == 0:
                _, start, modalidad = self._contract(contract)
                inicio, fin = franjas[contract % len(franjas)]
                place = None if modalidad == "online" else _address(rng)
                link = (
                    None
                    if modalidad == "presencial"
                    else f"https://meet.example.com/exp-{contract + 1:06d}"
                )
            # two sessions a week, Tuesday and Thursday
            fecha = start + dt.timedelta(days=7 * (step // 2) + 1 + 2 * (step % 2))
            estado = estados[rng.randrange(len(estados))]
            yield (
                number + 1,
                contract + 1,
                fecha,
                inicio,
                fin,
                place,
                link,
                notas[rng.randrange(len(notas))],
                estado,
            )

    def adjuntos(self) -> Iterator[Row]:
        for i in range(min(self.contracts, 200)):
            yield (i + 1, "contratacion", i + 1, "pdf", f"contratos/EXP-{i + 1:06d}.pdf", None)

    def interacciones(self) -> Iterator[Row]:
        rng = self.rng("interacciones")
        tipos = list(TIPOS_INTERACCION)
        resultados = list(RESULTADOS_INTERACCION)
        for i in range(max(12, self.contracts // 2)):
            contract = i % self.contracts
            cliente, start, _ = self._contract(contract)
            fecha = start - dt.timedelta(days=rng.randrange(3, 40))
            yield (
                i + 1,
                cliente,
                contract + 1,
                fecha,
                tipos[i % 5],
                "Llamada de seguimiento; pide presupuesto, con descuento"
                if i % 5 == 0
                else "Envío de propuesta",
                resultados[i % 6],
                "Enviar calendario" if i % 2 else None,
                fecha + dt.timedelta(days=7) if i % 2 else None,
                bool(i % 2),
            )

    def rows(self, table: str) -> Iterator[Row]:
        generator: Callable[[], Iterator[Row]] = getattr(self, table)
        return generator()


#: The columns a demo row fills, read from the schema (its order is the rows' order): all but
#: the timestamps the database sets itself.
SERVER_SET = frozenset({"created_at", "updated_at"})
COLUMNS: dict[str, tuple[str, ...]] = {
    name: tuple(c.name for c in metadata.tables[name].columns if c.name not in SERVER_SET)
    for name in TABLE_NAMES
}


def _chunks(rows: Iterable[Row], size: int = CHUNK) -> Iterator[list[Row]]:
    iterator = iter(rows)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _require_schema(connection: Connection, target: Target) -> None:
    from alembic.runtime.migration import MigrationContext

    heads = MigrationContext.configure(connection).get_current_heads()
    head = head_revision()
    masked = target.masked
    if not heads:
        raise SeedError(f"database {masked} has no schema", "run planctl db-upgrade first")
    if heads[0] != head:
        raise SeedError(
            f"database {masked} is at revision {heads[0]}, head is {head}",
            "run planctl db-upgrade first",
        )
    missing = set(TABLE_NAMES) - set(inspect(connection).get_table_names())
    if missing:
        raise SeedError(
            f"database {masked} lacks tables {', '.join(sorted(missing))}", "run planctl db-upgrade"
        )


def _row_counts(connection: Connection) -> dict[str, int]:
    return {
        name: connection.execute(
            select(func.count()).select_from(metadata.tables[name])
        ).scalar_one()
        for name in TABLE_NAMES
    }


def _empty_tables(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        names = ", ".join(TABLE_NAMES)
        connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    else:
        for name in reversed(TABLE_NAMES):
            connection.execute(metadata.tables[name].delete())


def _reset_sequences(connection: Connection) -> None:
    """After explicit ids, make PostgreSQL's serial counters continue after the highest."""
    for name in TABLE_NAMES:
        connection.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                f"COALESCE((SELECT max(id) FROM {name}), 0) + 1, false)"
            )
        )


#: The most sessions db-seed generates (about 3 GB of SQLite): refused up front above it.
MAX_SCALE = 10_000_000


def seed(
    target: Target,
    *,
    scale: int | None = None,
    force: bool = False,
    if_empty: bool = False,
    random_seed: int = 2026,
) -> dict[str, int] | None:
    """Load demo data into an empty database at head; returns rows per table.

    Refuses a non-empty database unless *force*, which replaces its contents;
    with *if_empty* a non-empty database is left alone and None is returned.
    Everything runs in one transaction: a failure leaves the database as it was.
    *force* and *if_empty* together are refused: one replaces existing data, the other
    keeps it.
    """
    if force and if_empty:
        raise UsageError(
            "--if-empty and --force contradict each other: one keeps existing data, "
            "the other replaces it",
            "give --if-empty (cron, make demo) or --force (start over), not both",
        )
    if scale is not None and scale < 1:
        raise SeedError(
            f"--scale must be at least 1, got {scale}", "pass the number of sessions to generate"
        )
    if scale is not None and scale > MAX_SCALE:
        raise UsageError(
            f"--scale {scale:,} is over the limit of {MAX_SCALE:,} sessions",
            "benchmarks use 1,000,000; a trainer's planner holds about 10,000",
        )
    data = DemoData(DEMO_SESSIONS if scale is None else scale, random_seed)
    with connect(target) as connection:
        _require_schema(connection, target)
        existing = _row_counts(connection)
        if any(existing.values()) and if_empty:
            return None
        if any(existing.values()) and not force:
            busy = ", ".join(f"{n} ({c})" for n, c in existing.items() if c)
            raise SeedError(
                f"database {target.masked} already has data: {busy}",
                "pass --force to replace it with the demo data",
            )
        # Every row changes: rather than logging each one (it doubles the load time),
        # the change-log triggers rest and one whole-table marker per table says so;
        # the next --incremental backup is a full one. DDL is transactional on both.
        logged = changelog.installed(connection)
        if logged:
            changelog.drop_triggers(connection, TABLE_NAMES)
        if any(existing.values()):
            _empty_tables(connection)
        for name in TABLE_NAMES:
            load_rows(connection, metadata.tables[name], COLUMNS[name], _chunks(data.rows(name)))
        if connection.dialect.name == "postgresql":
            _reset_sequences(connection)
        if logged:
            changelog.install_triggers(connection, TABLE_NAMES)
            changelog.mark_all_changed(connection, TABLE_NAMES)
        return _row_counts(connection)
