"""What the sync tests share: a small planner, a simulated calendar, and snapshots of both."""

from __future__ import annotations

import datetime as dt
import importlib.util
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from sqlalchemy import insert, select, text

from planctl.config import Settings
from planctl.db.engine import connect
from planctl.db.schema import clientes, contrataciones, formaciones, metadata, sesiones, temas
from planctl.sync.backends.caldav import CalDAVBackend
from planctl.sync.backends.simulated import SimulatedBackend, SimulatedCalendar
from planctl.sync.options import SyncOptions
from planctl.sync.report import SyncReport
from planctl.sync.run import run_sync

from .conftest import skip_or_fail
from .helpers import ServerDidNotStart, free_port, stop_process, target_of, wait_for_port

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
    with connect(target_of(url)) as connection:
        connection.execute(insert(clientes), [{"id": 1, "empresa": "Ñandú, S.A.", "cif": "B1"}])
        connection.execute(insert(temas), [{"id": 1, "nombre": "Ofimática"}])
        connection.execute(
            insert(formaciones), [{"id": 1, "tema_id": 1, "nombre": "Excel avanzado"}]
        )
        connection.execute(
            insert(contrataciones),
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
        connection.execute(insert(sesiones), rows)
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT setval('sesiones_id_seq', 100)"))


def add_sessions(url: str, count: int) -> None:
    """*count* scheduled sessions of contract 1, ids 10 on, one a day from 1 December 2026."""
    rows = [
        {
            "id": 10 + n,
            "contratacion_id": 1,
            "fecha": dt.date(2026, 12, 1) + dt.timedelta(days=n),
            "hora_inicio": dt.time(9),
            "hora_fin": dt.time(11),
            "estado": "programada",
        }
        for n in range(count)
    ]
    with connect(target_of(url)) as connection:
        connection.execute(insert(sesiones), rows)


@dataclass
class World:
    """A planner database and a simulated calendar store, and ways to look at both."""

    url: str
    store: Path

    def settings(self) -> Settings:
        return Settings(target=target_of(self.url), sync_store=self.store, timezone=TZ)

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
                target_of(self.url),
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
        with connect(target_of(self.url)) as connection:
            return connection.execute(select(sesiones).where(sesiones.c.id == session_id)).first()

    def execute(self, sql: str, **params: Any) -> None:
        with connect(target_of(self.url)) as connection:
            connection.execute(text(sql), params)

    def states(self) -> dict[int, tuple[Any, ...]]:
        table = metadata.tables["planctl_sync_states"]
        with connect(target_of(self.url)) as connection:
            rows = connection.execute(select(table)).all()
        return {r.session_id: (r.remote_id, r.etag, r.local_hash, r.remote_hash) for r in rows}

    def active_session_ids(self) -> set[int]:
        with connect(target_of(self.url)) as connection:
            return set(
                connection.execute(
                    select(sesiones.c.id).where(sesiones.c.estado != "cancelada")
                ).scalars()
            )

    def store_bytes(self) -> bytes | None:
        return self.store.read_bytes() if self.store.exists() else None


# -- real CalDAV servers (Radicale, Xandikos) on loopback ---------------------------

PASSWORD = "s3cret-Radicale-pw"


@dataclass
class Radicale:
    """A CalDAV server started for the tests (Radicale or Xandikos)."""

    url: str
    port: int
    user: str
    password: str
    principal: str = ""  # the principal's path below the root, e.g. "trainer/"

    def __post_init__(self) -> None:
        self.principal = self.principal or f"{self.user}/"


def _start_radicale(base: Path, auth: str) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    if importlib.util.find_spec("radicale") is None:
        skip_or_fail("Radicale is not installed (pip install -e '.[test]')")
    port = free_port()
    config = base / "radicale.conf"
    config.write_text(
        f"[server]\nhosts = 127.0.0.1:{port}\n"
        # delay = 0: Radicale sleeps ~1 s after every 401 (its brute-force guard); each
        # client's first request goes without credentials and gets one, so with the
        # default every new CalDAV client cost a second of wall time and nothing else.
        f"[auth]\n{auth}\ndelay = 0\n"
        f"[storage]\nfilesystem_folder = {base / 'collections'}\n"
        "[rights]\ntype = owner_only\n"
        "[logging]\nlevel = warning\n",
        encoding="utf-8",
    )
    log = open(base / "radicale.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "radicale", "--config", str(config)], stdout=log, stderr=log
    )
    try:
        try:
            wait_for_port(port, process, timeout=30)
        except ServerDidNotStart as error:
            skip_or_fail(f"Radicale: {error}: {(base / 'radicale.log').read_text()[-500:]}")
        yield port, process
    finally:
        stop_process(process)
        log.close()


@pytest.fixture(scope="module")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Radicale]:
    """Radicale without authentication (any user name is accepted)."""
    base = tmp_path_factory.mktemp("radicale")
    for port, _ in _start_radicale(base, "type = none"):
        yield Radicale(f"http://127.0.0.1:{port}/", port, "trainer", "")


@pytest.fixture(scope="module")
def radicale_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Radicale]:
    """Radicale that wants user 'planner' and its password (htpasswd, plain)."""
    base = tmp_path_factory.mktemp("radicale-auth")
    users = base / "users"
    users.write_text(f"planner:{PASSWORD}\n", encoding="utf-8")
    auth = f"type = htpasswd\nhtpasswd_filename = {users}\nhtpasswd_encryption = plain"
    for port, _ in _start_radicale(base, auth):
        yield Radicale(f"http://127.0.0.1:{port}/", port, "planner", PASSWORD)


def _start_xandikos(base: Path) -> Iterator[int]:
    """``python -m xandikos.web`` on a free loopback port; one principal, /user/, no auth."""
    if importlib.util.find_spec("xandikos") is None:
        skip_or_fail("Xandikos is not installed (pip install -e '.[test]')")
    port = free_port()
    log = open(base / "xandikos.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "xandikos.web", "--directory", str(base / "data"), "--defaults",
         "--listen-address", "127.0.0.1", "--port", str(port), "--state-dir", str(base / "state"),
         "--no-detect-systemd"],
        stdout=log,
        stderr=log,
    )  # fmt: skip
    try:
        try:
            wait_for_port(port, process, timeout=30)
        except ServerDidNotStart as error:
            skip_or_fail(f"Xandikos: {error}: {(base / 'xandikos.log').read_text()[-500:]}")
        yield port
    finally:
        stop_process(process)
        log.close()


@pytest.fixture(scope="module")
def xandikos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Radicale]:
    """Xandikos (a second CalDAV server, git-backed): one principal at /user/."""
    base = tmp_path_factory.mktemp("xandikos")
    for port in _start_xandikos(base):
        yield Radicale(f"http://127.0.0.1:{port}/", port, "trainer", "", principal="user/")


@pytest.fixture(params=["radicale", "xandikos"])
def server(request: pytest.FixtureRequest) -> Radicale:
    """Each CalDAV end-to-end test runs against both servers."""
    found: Radicale = request.getfixturevalue(request.param)
    return found


_calendar_names = iter(range(1_000_000))


def caldav_settings(url: str, server: Radicale, calendar: str) -> Settings:
    """Settings that sync the planner at *url* to *calendar* on the CalDAV *server*."""
    return Settings(
        target=target_of(url),
        timezone=TZ,
        sync_backend="caldav",
        caldav_url=server.url,
        caldav_user=server.user,
        caldav_calendar=calendar,
    )


@dataclass
class DavWorld(World):
    settings_: Settings

    @property
    def checkpoints(self) -> Path:
        """Where the backend remembers clean runs' sync tokens (as open_backend does)."""
        return self.store.with_name("caldav-checkpoints.json")

    def sync(self, *, dry_run: bool = False, **options: Any) -> SyncReport:
        backend = CalDAVBackend(
            self.settings_, create_calendar=not dry_run, checkpoints=self.checkpoints
        )
        try:
            return run_sync(
                target_of(self.url), backend, SyncOptions(timezone=TZ, **options), dry_run=dry_run
            )
        finally:
            backend.close()


@pytest.fixture
def dav(migrated_url: str, server: Radicale, tmp_path: Path) -> DavWorld:
    make_tiny_planner(migrated_url)
    settings = caldav_settings(
        migrated_url, server, f"Planificador {next(_calendar_names)} {tmp_path.name}"
    )
    return DavWorld(migrated_url, tmp_path / "unused.json", settings)


class CountingProxy:
    """A reverse proxy on loopback in front of a CalDAV server: records every request
    planctl really sends (method, the XML body's root element) and forwards it.

    *refuse* names REPORT kinds (root elements, e.g. ``sync-collection``) answered
    ``501 Not Implemented``, as a server without them would.
    """

    def __init__(self, upstream: Radicale, refuse: tuple[str, ...] = ()) -> None:
        import http.client
        import http.server
        import re
        import threading

        #: method, kind (the body's root element), Depth, path, and whether it asks for bodies
        self.requests: list[tuple[str, str, str, str, bool]] = []
        proxy = self
        root = re.compile(rb"<(?:[A-Za-z][\w.-]*:)?([A-Za-z][\w.-]*)[\s/>]")

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                start = body.lstrip()
                if start.startswith(b"<?xml"):
                    start = start[start.index(b"?>") + 2 :]
                found = root.search(start) if start.lstrip().startswith(b"<") else None
                kind = found.group(1).decode() if found else ""
                depth = self.headers.get("Depth") or ""
                bodies = b"calendar-data" in body
                proxy.requests.append((self.command, kind, depth, unquote(self.path), bodies))
                if self.command == "REPORT" and kind in refuse:
                    self.send_response(501)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                connection = http.client.HTTPConnection("127.0.0.1", upstream.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                connection.request(self.command, self.path, body=body, headers=headers)
                answer = connection.getresponse()
                data = answer.read()
                self.send_response(answer.status, answer.reason)
                for name, value in answer.getheaders():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                connection.close()

            do_GET = do_PUT = do_DELETE = do_PROPFIND = do_REPORT = _forward
            do_OPTIONS = do_MKCALENDAR = do_PROPPATCH = do_MKCOL = do_HEAD = _forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.dav = Radicale(
            f"http://127.0.0.1:{self.port}/", self.port, upstream.user, upstream.password,
            upstream.principal,
        )  # fmt: skip

    def count(
        self, method: str, kind: str = "", *, depth: str = "", path: str = "", data: bool = False
    ) -> int:
        """Requests of *method* (and of that body root element, Depth, path; with *data*,
        only those that ask for events' bodies)."""
        return sum(
            1
            for m, k, d, p, bodies in self.requests
            if m == method
            and (not kind or k == kind)
            and (not depth or d == depth)
            and (not path or p.rstrip("/") == path.rstrip("/"))
            and (bodies or not data)
        )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()
