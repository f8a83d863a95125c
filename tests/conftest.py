"""Shared fixtures: every database test runs on SQLite and on a real PostgreSQL.

PostgreSQL comes from PLANCTL_TEST_POSTGRES_URL (an admin URL) or the local
server on 127.0.0.1:5432; each test gets a throwaway database that is dropped
afterwards. With CI=true a missing PostgreSQL fails the run instead of skipping.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest
from typer.testing import CliRunner

from planctl.logs import close_service_loggers

from .helpers import ServerDidNotStart, free_port, target_of, wait_for_port

__all__ = ["free_port"]  # re-exported: test modules import it from here

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_configure(config: pytest.Config) -> None:
    """Once per run (not per xdist worker): byte-compile planctl and its migrations.

    The tests start about a thousand planctl processes. Where PYTHONDONTWRITEBYTECODE is
    set (this project's sandboxes set it) none of them writes its ``.pyc`` files, so every
    one compiled planctl's sources again: ~0.1 s of each process start. compileall writes
    them regardless, and skips files whose ``.pyc`` is current.
    """
    if hasattr(config, "workerinput"):
        return
    import compileall

    import planctl

    package = Path(planctl.__file__).parent
    for directory in (package, package.parent.parent / "migrations"):
        if directory.is_dir():
            compileall.compile_dir(directory, quiet=2)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with ``slow`` tests first, the most of them first; then the rest, the most
    tests first (pytest-xdist's own order).

    ``make test`` hands whole files to the workers (``--dist loadfile
    --no-loadscope-reorder``) in this order. xdist's default, most tests first, started the
    files with a few long real-process tests (the 1,000-session CalDAV sync, the wheel
    build) last, and one worker ran them alone for minutes while the other idled.
    """
    slow: dict[str, int] = {}
    count: dict[str, int] = {}
    for item in items:
        module = item.nodeid.split("::", 1)[0]
        count[module] = count.get(module, 0) + 1
        slow[module] = slow.get(module, 0) + (item.get_closest_marker("slow") is not None)
    order = {
        module: rank
        for rank, module in enumerate(sorted(count, key=lambda m: (-slow[m], -count[m])))
    }
    items.sort(key=lambda item: order[item.nodeid.split("::", 1)[0]])


def skip_or_fail(message: str) -> None:
    """Outside CI a missing prerequisite skips; in CI (CI=true) it is a failure, never a pass."""
    if IN_CI:
        pytest.fail(message + " (CI=true: this check must run)")
    pytest.skip(message)


def require_root(why: str) -> None:
    """Mounting a tmpfs needs root; CI runs as root, so there it must not be skipped."""
    if os.geteuid() != 0:
        skip_or_fail(f"needs root: {why}")


def _psycopg_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    import psycopg

    url = os.environ.get("PLANCTL_TEST_POSTGRES_URL", DEFAULT_ADMIN_URL)
    try:
        with psycopg.connect(_psycopg_url(url), connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as error:
        message = f"PostgreSQL not reachable at {url}: {error}"
        if IN_CI:
            pytest.fail(message + " (CI=true: PostgreSQL is required)")
        pytest.skip(message)
    return url


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


def _unique_name(prefix: str) -> str:
    """A database name no other test, worker (pytest-xdist) or test run uses."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


# --- migrated templates: every migration runs once per session, each test gets a copy --------
#
# Migrating a database costs about a second on PostgreSQL; copying one is a file copy
# (SQLite) or CREATE DATABASE … TEMPLATE (PostgreSQL). A copy gets a fresh database id
# (planctl_database), as a database migrated on its own would: backups of two copies
# must stay foreign to each other.

#: The states a test database can start in besides empty, in the order they build on.
STATES = ("migrated", "seeded")


def _fresh_identity(connection: Any) -> None:
    """Give a copied database an id of its own (a DB-API connection, either engine)."""
    import datetime as dt

    marker = "?" if isinstance(connection, sqlite3.Connection) else "%s"
    connection.execute(
        f"UPDATE planctl_database SET database_id = {marker}, created = {marker}",
        (str(uuid.uuid4()), dt.datetime.now(dt.UTC).isoformat()),
    )
    connection.commit()


def _build(url: str, state: str) -> None:
    """Bring the empty database at *url* to *state* the way the tests always did."""
    from planctl.db import migrate

    migrate.upgrade(target_of(url))
    if state == "seeded":
        from planctl.db.seed import seed

        seed(target_of(url))


class SqliteTemplates:
    """One migrated (and one seeded) SQLite file per session, copied for each test."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.files: dict[str, Path] = {}

    def copy(self, state: str, target: Path) -> None:
        if state not in self.files:
            path = self.directory / f"{state}.db"
            _build(f"sqlite:///{path}", state)
            self.files[state] = path
        shutil.copy(self.files[state], target)
        with closing(sqlite3.connect(target)) as connection:
            _fresh_identity(connection)


class PgDatabases:
    """Throwaway PostgreSQL databases: empty, or copies of this session's templates.

    DROP DATABASE waits for a checkpoint (about a second on a busy machine); drops run on
    background threads, so the next test need not wait and the server serves several
    drops with one checkpoint (8 drops in a row: 10 s; at once: 0.7 s). Joined at the
    session's end.
    """

    def __init__(self, admin_url: str) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.admin_url = admin_url
        self.templates: dict[str, str] = {}
        self.dropper = ThreadPoolExecutor(max_workers=4, thread_name_prefix="pg-drop")

    def _admin(self) -> Any:
        import psycopg

        return psycopg.connect(_psycopg_url(self.admin_url), autocommit=True)

    def create(self, state: str | None = None) -> str:
        """A new database (empty, or a copy of the *state* template); its URL."""
        name = _unique_name("planctl_test")
        template = f' TEMPLATE "{self._template(state)}"' if state else ""
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"{template}')
        url = _with_database(self.admin_url, name)
        if state:
            import psycopg

            with psycopg.connect(_psycopg_url(url)) as conn:
                _fresh_identity(conn)
        return url

    def _template(self, state: str) -> str:
        if state not in self.templates:
            name = _unique_name("planctl_template")
            with self._admin() as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            self.templates[state] = name  # dropped at the end even if building fails
            _build(_with_database(self.admin_url, name), state)
        return self.templates[state]

    def drop(self, url: str, *, wait: bool = False) -> None:
        name = url.rpartition("/")[2]

        def run() -> None:
            with self._admin() as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        future = self.dropper.submit(run)
        if wait:
            future.result()

    def close(self) -> None:
        self.dropper.shutdown(wait=True)
        with self._admin() as conn:
            for name in self.templates.values():
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_databases(pg_admin_url: str) -> Iterator[PgDatabases]:
    databases = PgDatabases(pg_admin_url)
    try:
        yield databases
    finally:
        databases.close()


@pytest.fixture(scope="session")
def sqlite_templates(tmp_path_factory: pytest.TempPathFactory) -> SqliteTemplates:
    return SqliteTemplates(tmp_path_factory.mktemp("templates"))


@pytest.fixture
def pg_database(pg_databases: PgDatabases) -> Iterator[str]:
    """A throwaway empty PostgreSQL database; yields its URL and drops it afterwards."""
    url = pg_databases.create()
    try:
        yield url
    finally:
        pg_databases.drop(url)


#: Databases that db_url made from a template, with the state they start in.
_PREPARED: dict[str, str] = {}


def _wanted_state(request: pytest.FixtureRequest) -> str | None:
    """The state the test's database must be in before its body runs: the last of
    :data:`STATES` whose fixture (``migrated_url``, ``seeded_url``) the test uses."""
    wanted = None
    for state in STATES:
        if f"{state}_url" in request.fixturenames:
            wanted = state
    return wanted


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database on each engine.

    When the test also uses ``migrated_url`` or ``seeded_url`` (the same database, brought
    to that state before the test runs), it starts as a copy of the session's template
    in that state instead of being migrated (and seeded) here.
    """
    state = _wanted_state(request)
    if request.param == "sqlite":
        path = tmp_path / "planificador.db"
        url = f"sqlite:///{path}"
        if state:
            request.getfixturevalue("sqlite_templates").copy(state, path)
    else:
        databases: PgDatabases = request.getfixturevalue("pg_databases")
        url = databases.create(state)
        request.addfinalizer(lambda: databases.drop(url))
    if state:
        _PREPARED[url] = state
    try:
        yield url
    finally:
        _PREPARED.pop(url, None)


@pytest.fixture
def migrated_url(db_url: str) -> str:
    """*db_url* at the head revision (see :func:`db_url`)."""
    if db_url not in _PREPARED:
        from planctl.db import migrate

        migrate.upgrade(target_of(db_url))
    return db_url


@pytest.fixture
def seeded_url(migrated_url: str) -> str:
    """*migrated_url* with the demo data of ``planctl db-seed``."""
    if _PREPARED.get(migrated_url) != "seeded":
        from planctl.db.seed import seed

        seed(target_of(migrated_url))
    return migrated_url


@dataclass
class Run:
    exit_code: int
    stdout: str
    stderr: str


class Cli(Protocol):
    """The ``cli`` fixture: run planctl in-process with *args*, optionally on *url*."""

    def __call__(self, *args: str, url: str | None = None, input: str | None = None) -> Run: ...


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A clean working directory with no planctl variables inherited."""
    work = tmp_path / "work"
    work.mkdir()
    for name in list(os.environ):
        if name == "DATABASE_URL" or name.startswith("PLANCTL_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(work)
    monkeypatch.setenv("PLANCTL_LOG_DIR", str(tmp_path / "logs"))
    yield work
    close_service_loggers()


@pytest.fixture
def cli(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """Invoke planctl in-process: ``cli("db-info", url=...)`` -> Run."""
    from planctl.cli import app

    runner = CliRunner()

    def invoke(*args: str, url: str | None = None, input: str | None = None) -> Run:
        if url is not None:
            monkeypatch.setenv("DATABASE_URL", url)
        result = runner.invoke(app, list(args), input=input, catch_exceptions=False)
        return Run(result.exit_code, result.stdout, result.stderr)

    return invoke


class EnvFor(Protocol):
    """The ``env_for`` fixture: a planctl process environment for *url* (plus *extra*)."""

    def __call__(self, url: str, **extra: str) -> dict[str, str]: ...


@pytest.fixture
def env_for(tmp_path: Path) -> EnvFor:
    """Environments for real planctl processes, with backups and logs under tmp_path."""
    from .helpers import planctl_env

    def make(url: str, **extra: str) -> dict[str, str]:
        return planctl_env(url, tmp_path / "backups", tmp_path / "logs", **extra)

    return make


def _pg_bindir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return candidates[-1].parent if candidates else None


@dataclass
class ScramServer:
    port: int
    user: str
    password: str

    def url(self, password: str | None = None, database: str = "postgres") -> str:
        pw = self.password if password is None else password
        return f"postgresql://{self.user}:{pw}@127.0.0.1:{self.port}/{database}"


@pytest.fixture(scope="session")
def scram_server() -> Iterator[ScramServer]:
    """A private PostgreSQL cluster that requires scram-sha-256 passwords.

    The shared local server trusts every loopback connection, so it cannot
    prove that a wrong password is rejected; this one can.
    """
    bindir = _pg_bindir()
    if bindir is None:
        if IN_CI:
            pytest.fail("PostgreSQL server binaries (initdb, pg_ctl) not found")
        pytest.skip("PostgreSQL server binaries not found")
    # Not under pytest's tmp dir: that is private to root, and the server runs as postgres.
    base = Path(tempfile.mkdtemp(prefix="planctl-scram-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    pwfile = base / "pw"
    password = "s3cret-Pa55word"
    pwfile.write_text(password + "\n")
    prefix: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(base, "postgres")
        shutil.chown(sock, "postgres")
        shutil.chown(pwfile, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    subprocess.run(
        [
            *prefix,
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "planctl_owner",
            "--auth=scram-sha-256",
            f"--pwfile={pwfile}",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *prefix,
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-w",
            "-l",
            str(base / "log"),
            "start",
            "-o",
            f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off",
        ],
        check=True,
        capture_output=True,
    )
    try:
        try:
            wait_for_port(port, timeout=20)
        except ServerDidNotStart as error:
            skip_or_fail(f"the scram-sha-256 PostgreSQL did not start: {error}")
        yield ScramServer(port=port, user="planctl_owner", password=password)
    finally:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(base, ignore_errors=True)
