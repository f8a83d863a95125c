"""The one failure classifier: real driver and kernel errors, classified by their codes."""

from __future__ import annotations

import errno
import os
import resource
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO

import psycopg
import pytest
from sqlalchemy import text

from planctl.db.engine import connect, describe_db_error
from planctl.errors import DatabaseError
from planctl.failures import Failure, classify

from .helpers import target_of


def _busy_error(db: Path) -> sqlite3.Error:
    """The real error of reading *db* (a table t) while another connection holds it
    EXCLUSIVE, with no busy timeout."""
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("CREATE TABLE IF NOT EXISTS t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(sqlite3.Error) as busy:
            sqlite3.connect(db, timeout=0).execute("SELECT * FROM t").fetchall()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    return busy.value


def test_sqlite_errors_by_result_code(tmp_path: Path) -> None:
    with pytest.raises(sqlite3.Error) as missing_dir:
        sqlite3.connect(tmp_path / "no" / "x.db")
    assert classify(missing_dir.value) is Failure.CANNOT_OPEN

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database, only text " * 200)
    with pytest.raises(sqlite3.Error) as not_db:
        sqlite3.connect(garbage).execute("SELECT * FROM sqlite_master").fetchall()
    assert classify(not_db.value) is Failure.NOT_A_DATABASE

    db = tmp_path / "live.db"
    assert classify(_busy_error(db)) is Failure.LOCKED

    with pytest.raises(sqlite3.Error) as no_table:
        sqlite3.connect(db).execute("SELECT * FROM nope")
    assert classify(no_table.value) is Failure.NO_TABLE

    read_only = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    with pytest.raises(sqlite3.Error) as ro:
        read_only.execute("INSERT INTO t VALUES (1)")
    assert classify(ro.value) is Failure.READ_ONLY

    with pytest.raises(sqlite3.Error) as syntax:
        sqlite3.connect(db).execute("SELEKT 1")
    assert classify(syntax.value) is Failure.OTHER


def test_a_file_size_limit_is_disk_full_for_sqlite(tmp_path: Path) -> None:
    """A real short write: a child process under RLIMIT_FSIZE fills a SQLite file."""
    script = (
        "import resource, signal, sqlite3, sys\n"
        "from planctl.failures import classify\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))\n"
        f"c = sqlite3.connect({str(tmp_path / 'full.db')!r})\n"
        "c.execute('CREATE TABLE t (x)')\n"
        "try:\n"
        "    for _ in range(1000):\n"
        "        c.execute('INSERT INTO t VALUES (randomblob(4000))')\n"
        "    c.commit()\n"
        "except sqlite3.Error as error:\n"
        "    print(classify(error).name, error.sqlite_errorname)\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.stdout.split()[0] == "DISK_FULL", (run.stdout, run.stderr)


def test_os_errors_by_errno(tmp_path: Path) -> None:
    assert classify(OSError(errno.ENOSPC, "No space left on device")) is Failure.DISK_FULL
    assert classify(OSError(errno.EDQUOT, "Disk quota exceeded")) is Failure.DISK_FULL
    with pytest.raises(OSError) as full, open("/dev/full", "wb") as out:
        out.write(b"x" * 10)
    assert classify(full.value) is Failure.DISK_FULL

    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
    try:
        fd = os.open(tmp_path / "big", os.O_WRONLY | os.O_CREAT)
        with pytest.raises(OSError) as too_big:
            os.write(fd, b"x" * 4096)
            os.write(fd, b"x")
        os.close(fd)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert too_big.value.errno == errno.EFBIG and classify(too_big.value) is Failure.DISK_FULL
    with pytest.raises(OSError) as missing:
        open(tmp_path / "nope")  # noqa: SIM115
    assert classify(missing.value) is Failure.OTHER


def test_postgres_errors_by_sqlstate(pg_database: str) -> None:
    with connect(target_of(pg_database)) as connection, pytest.raises(Exception) as no_table:
        connection.execute(text("SELECT * FROM nope"))
    assert classify(no_table.value) is Failure.NO_TABLE
    assert getattr(getattr(no_table.value, "orig", None), "sqlstate", None) == "42P01"

    with (
        connect(target_of(pg_database), snapshot=True, read_only=True) as connection,
        pytest.raises(Exception) as read_only,
    ):
        connection.execute(text("CREATE TABLE x (y int)"))
    assert classify(read_only.value) is Failure.READ_ONLY

    dsn = pg_database.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as holder, psycopg.connect(dsn) as waiter:
        holder.execute("CREATE TABLE held (x int)")
        holder.execute("BEGIN")
        holder.execute("LOCK TABLE held IN ACCESS EXCLUSIVE MODE")
        waiter.execute("SET lock_timeout = '100ms'")
        with pytest.raises(psycopg.Error) as locked:
            waiter.execute("SELECT * FROM held")
        holder.execute("ROLLBACK")
    assert classify(locked.value) is Failure.LOCKED


def test_postgres_connection_failures_have_no_sqlstate_and_are_read_from_libpq(
    pg_database: str,
) -> None:
    base = pg_database.replace("postgresql+psycopg://", "postgresql://")
    host = base.split("@", 1)[1].split("/", 1)[0]
    cases = {
        f"postgresql://postgres@{host}/planctl_no_such_db": Failure.NO_DATABASE,
        "postgresql://postgres@127.0.0.1:1/x": Failure.UNREACHABLE,
    }
    for dsn, expected in cases.items():
        with pytest.raises(psycopg.OperationalError) as failed:
            psycopg.connect(dsn, connect_timeout=3)
        assert failed.value.sqlstate is None
        assert classify(failed.value) is expected


def test_described_errors_carry_their_failure_not_only_text(tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    described = describe_db_error(_busy_error(db), target_of(f"sqlite:///{db}"))
    assert isinstance(described, DatabaseError)
    assert described.failure is Failure.LOCKED
    assert "is locked by another process" in described.message


def test_alembic_failures_are_classified_by_the_type_behind_them() -> None:
    """Not by CommandError's text: the revision error it was raised from says what it is."""
    from alembic.script.revision import RangeNotAncestorError, ResolutionError, RevisionError
    from alembic.util import CommandError

    from planctl.failures import MigrationFailure, classify_migration

    cases: list[tuple[BaseException | None, MigrationFailure]] = [
        (ResolutionError("any words", "abc123"), MigrationFailure.UNKNOWN_REVISION),
        (RevisionError("any words"), MigrationFailure.OUT_OF_RANGE),
        (RangeNotAncestorError("a", "b"), MigrationFailure.OTHER),
        (None, MigrationFailure.OTHER),
    ]
    for cause, expected in cases:
        error = CommandError("Can't locate revision; Relative revision -1 didn't produce")
        error.__cause__ = cause
        assert classify_migration(error) is expected, cause


def test_connection_refused_is_found_behind_the_http_library_wrappers() -> None:
    """requests wraps urllib3's error, which wraps the socket's ECONNREFUSED: the code is
    found through the chain, whatever the message says."""
    import requests

    from planctl.failures import connection_refused

    from .helpers import free_port

    with pytest.raises(requests.ConnectionError) as caught:
        requests.get(f"http://127.0.0.1:{free_port()}/", timeout=5)
    assert connection_refused(caught.value)
    assert not connection_refused(requests.ConnectionError("refused, said the message"))


def test_connection_lost_by_type_and_errno_not_by_words() -> None:
    import socket

    import paramiko

    from planctl.failures import connection_lost

    left, right = socket.socketpair()
    right.close()
    with pytest.raises(OSError) as caught:  # EPIPE, or ECONNRESET on some kernels
        for _ in range(100):
            left.send(b"x" * 65536)
    left.close()
    assert connection_lost(caught.value)
    try:  # paramiko's SFTP client turns an EOF into this, while handling it
        try:
            raise EOFError
        except EOFError as eof:
            raise paramiko.SSHException(f"Server connection dropped: {eof}")  # noqa: B904
    except paramiko.SSHException as dropped:
        assert connection_lost(dropped)
    assert connection_lost(OSError("Socket is closed"))  # paramiko's channel, no errno
    assert not connection_lost(OSError(errno.EACCES, "closed for maintenance"))
    assert not connection_lost(ValueError("the connection was dropped"))


def test_oauth_error_reads_the_token_endpoints_code() -> None:
    from google.auth.exceptions import RefreshError
    from google.oauth2 import _client

    from planctl.failures import oauth_error

    with pytest.raises(RefreshError) as caught:
        _client._handle_error_response({"error": "invalid_grant", "error_description": "x"}, False)
    assert oauth_error(caught.value) == "invalid_grant"
    assert oauth_error(RefreshError("invalid_grant mentioned in text only")) is None


def test_a_client_tool_out_of_space_by_signal_or_the_kernels_message(tmp_path: Path) -> None:
    """What pg_dump or psql leave behind: the exit status and stderr of a real process."""
    from planctl.failures import tool_out_of_space

    def cat(
        sink: int | IO[bytes], limit: Callable[[], object] | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["cat", sys.executable], stdout=sink, stderr=subprocess.PIPE, preexec_fn=limit
        )

    fine = cat(subprocess.DEVNULL)
    assert fine.returncode == 0 and not tool_out_of_space(0, fine.stderr.decode())
    with open("/dev/full", "wb") as sink:
        refused = cat(sink)
    assert refused.returncode != 0
    assert tool_out_of_space(refused.returncode, refused.stderr.decode())
    with open(tmp_path / "out", "wb") as sink:
        killed = cat(sink, lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024)))
    assert killed.returncode == -signal.SIGXFSZ
    assert tool_out_of_space(killed.returncode, "")
    assert not tool_out_of_space(1, "pg_dump: error: permission denied for table x")
