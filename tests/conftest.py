"""Shared fixtures: every database test runs on SQLite and on a real PostgreSQL.

PostgreSQL comes from PLANCTL_TEST_POSTGRES_URL (an admin URL) or the local
server on 127.0.0.1:5432; each test gets a throwaway database that is dropped
afterwards. With CI=true a missing PostgreSQL fails the run instead of skipping.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest
from typer.testing import CliRunner

from planctl.logs import close_service_loggers

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


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


@pytest.fixture
def pg_database(pg_admin_url: str) -> Iterator[str]:
    """A throwaway PostgreSQL database; yields its URL and drops it afterwards."""
    import psycopg

    name = f"planctl_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_psycopg_url(pg_admin_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(pg_admin_url, name)
    finally:
        with psycopg.connect(_psycopg_url(pg_admin_url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on each engine."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'planificador.db'}"
    return str(request.getfixturevalue("pg_database"))


@pytest.fixture
def migrated_url(db_url: str) -> str:
    from planctl.db import migrate

    migrate.upgrade(db_url)
    return db_url


@pytest.fixture
def seeded_url(migrated_url: str) -> str:
    from planctl.db.seed import seed

    seed(migrated_url)
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        yield ScramServer(port=port, user="planctl_owner", password=password)
    finally:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(base, ignore_errors=True)
