"""What the sync tests share: a small planner, a simulated calendar, and snapshots of both."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, text

from planctl.config import Settings
from planctl.db.engine import connect
from planctl.db.models import Cliente, Contratacion, Formacion, Sesion, Tema, metadata
from planctl.sync.backends.simulated import SimulatedBackend, SimulatedCalendar
from planctl.sync.engine import SyncOptions, SyncReport, run_sync

TZ = "Europe/Madrid"

# Four sessions of one contract; the fourth is cancelled (never on a calendar).
SESSIONS = [
    {"id": 1, "fecha": dt.date(2026, 11, 23), "hora_inicio": dt.time(9), "hora_fin": dt.time(13)},
    {"id": 2, "fecha": dt.date(2026, 11, 24), "hora_inicio": dt.time(9), "hora_fin": dt.time(13)},
    {"id": 3, "fecha": dt.date(2026, 11, 25), "hora_inicio": dt.time(16), "hora_fin": dt.time(18)},
    {
        "id": 4,
        "fecha": dt.date(2026, 11, 26),
        "hora_inicio": dt.time(9),
        "hora_fin": dt.time(11),
        "estado": "cancelada",
    },
]


def make_tiny_planner(url: str) -> None:
    with connect(url) as connection:
        connection.execute(insert(Cliente), [{"id": 1, "empresa": "Ñandú, S.A.", "cif": "B1"}])
        connection.execute(insert(Tema), [{"id": 1, "nombre": "Ofimática"}])
        connection.execute(insert(Formacion), [{"id": 1, "tema_id": 1, "nombre": "Excel avanzado"}])
        connection.execute(
            insert(Contratacion),
            [
                {
                    "id": 1,
                    "cliente_id": 1,
                    "formacion_id": 1,
                    "expediente": "EXP-1",
                    "modalidad": "presencial",
                    "direccion": "Calle Mayor 1, Madrid",
                }
            ],
        )
        rows = [{"contratacion_id": 1, "estado": "programada", **s} for s in SESSIONS]
        connection.execute(insert(Sesion), rows)
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT setval('sesiones_id_seq', 100)"))


@dataclass
class World:
    """A planner database and a simulated calendar store, and ways to look at both."""

    url: str
    store: Path

    def settings(self) -> Settings:
        return Settings(database_url=self.url, sync_store=self.store, timezone=TZ)

    @contextmanager
    def calendar(self) -> Iterator[SimulatedCalendar]:
        calendar = SimulatedCalendar(self.store, timezone=TZ)
        try:
            yield calendar
        finally:
            calendar.close()

    def sync(
        self,
        *,
        dry_run: bool = False,
        crash_after: int | None = None,
        before_write: Any = None,
        **options: Any,
    ) -> SyncReport:
        with self.calendar() as calendar:
            calendar.crash_after_writes = crash_after
            calendar.before_write = before_write
            report = run_sync(
                self.url,
                SimulatedBackend(calendar),
                SyncOptions(timezone=TZ, **options),
                dry_run=dry_run,
            )
            report.remote_writes = calendar.writes  # what the server saw, not what we think
            return report

    def live_events(self) -> dict[str, dict[str, Any]]:
        with self.calendar() as calendar:
            return {e["id"]: e for e in calendar.list_events(show_deleted=False)}

    def events_by_session(self) -> dict[int, list[dict[str, Any]]]:
        found: dict[int, list[dict[str, Any]]] = {}
        for event in self.live_events().values():
            private = (event.get("extendedProperties") or {}).get("private") or {}
            if "planctlSessionId" in private:
                found.setdefault(int(private["planctlSessionId"]), []).append(event)
        return found

    def event_of(self, session_id: int) -> dict[str, Any]:
        events = self.events_by_session()[session_id]
        assert len(events) == 1, f"session {session_id} has {len(events)} events"
        return events[0]

    def session(self, session_id: int) -> Any:
        with connect(self.url) as connection:
            return connection.execute(select(Sesion).where(Sesion.id == session_id)).first()

    def execute(self, sql: str, **params: Any) -> None:
        with connect(self.url) as connection:
            connection.execute(text(sql), params)

    def states(self) -> dict[int, tuple[Any, ...]]:
        table = metadata.tables["estados_sincronizacion"]
        with connect(self.url) as connection:
            rows = connection.execute(select(table)).all()
        return {r.sesion_id: (r.id_remoto, r.etag, r.hash_local, r.hash_remoto) for r in rows}

    def active_session_ids(self) -> set[int]:
        with connect(self.url) as connection:
            return set(
                connection.execute(select(Sesion.id).where(Sesion.estado != "cancelada")).scalars()
            )

    def store_bytes(self) -> bytes | None:
        return self.store.read_bytes() if self.store.exists() else None
