"""PostgreSQL backups with pg_dump/pg_restore (custom format).

The connection reaches the client tools through libpq environment variables
and a temporary 0600 passfile, never through argv: ``ps`` shows
``pg_dump --format=custom --file=…`` and nothing about the server or the
password. Row counts and the schema revision are read in the same snapshot
that pg_dump dumps (``pg_export_snapshot`` + ``--snapshot``).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from planctl.backup.store import BackupError, _maybe_crash
from planctl.db.engine import parse_url
from planctl.errors import VerificationError

NAME = "postgresql"


def data_suffix(compressed: bool) -> str:
    return ".dump"


def _escape_passfile(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


@contextlib.contextmanager
def libpq_env(database_url: str) -> Iterator[dict[str, str]]:
    """Environment for pg_dump/pg_restore/psql: PG* variables and a 0600 passfile."""
    url = parse_url(database_url)
    # Keep the caller's PG* settings (PGPASSWORD, PGSSLMODE, a socket PGHOST…);
    # what the URL says wins.
    env = dict(os.environ)
    env.update(PGAPPNAME="planctl", PGCONNECT_TIMEOUT=env.get("PGCONNECT_TIMEOUT", "10"))
    for var, value in (
        ("PGHOST", url.host),
        ("PGPORT", str(url.port) if url.port else None),
        ("PGDATABASE", url.database),
        ("PGUSER", url.username),
    ):
        if value:
            env[var] = value
    for key, var in (
        ("host", "PGHOST"),  # ?host=/run/postgresql: a unix socket directory
        ("sslmode", "PGSSLMODE"),
        ("sslrootcert", "PGSSLROOTCERT"),
        ("sslcert", "PGSSLCERT"),
        ("sslkey", "PGSSLKEY"),
    ):
        option = url.query.get(key)
        if isinstance(option, str):
            env[var] = option
    if url.password is None:
        yield env
        return
    fd, passfile = tempfile.mkstemp(prefix="planctl-pgpass-")
    try:
        os.fchmod(fd, 0o600)
        # Wildcards: the URL's password is for whatever host/port libpq ends up using.
        line = ":".join(("*", "*", "*", "*", _escape_passfile(str(url.password))))
        os.write(fd, (line + "\n").encode())
        os.close(fd)
        env["PGPASSFILE"] = passfile
        env.pop("PGPASSWORD", None)  # it would win over the passfile
        yield env
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
        Path(passfile).unlink(missing_ok=True)


def find_tool(tool: str, server_major: int | None, bindir: Path | None = None) -> Path:
    """The client tool matching the server: PLANCTL_PG_BINDIR, Debian's versioned dir, PATH."""
    if bindir is not None:  # an explicit choice: no silent fallback to another version
        tool_path = bindir / tool
        if tool_path.is_file() and os.access(tool_path, os.X_OK):
            return tool_path
        raise BackupError(
            f"{tool} not found in PLANCTL_PG_BINDIR={bindir}",
            "point PLANCTL_PG_BINDIR at the bin/ of a PostgreSQL client, or unset it",
        )
    candidates: list[Path] = []
    if server_major is not None:
        candidates.append(Path(f"/usr/lib/postgresql/{server_major}/bin/{tool}"))
    found = shutil.which(tool)
    if found:
        candidates.append(Path(found))
    installed = Path("/usr/lib/postgresql").glob(f"*/bin/{tool}")
    candidates += sorted(installed, key=lambda p: _version_key(p.parent.parent.name), reverse=True)
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    package = f"postgresql-client-{server_major}" if server_major else "postgresql-client"
    raise BackupError(
        f"{tool} not found",
        f"install the PostgreSQL client (Debian: apt-get install {package}) "
        "or set PLANCTL_PG_BINDIR",
    )


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", name)) or (0,)


def tool_major(tool: Path) -> int:
    done = subprocess.run([str(tool), "--version"], capture_output=True, text=True)
    match = re.search(r"(\d+)(?:\.\d+)?", done.stdout)
    if done.returncode != 0 or not match:
        raise BackupError(f"cannot run {tool} --version: {done.stderr.strip()}")
    return int(match.group(1))


def check_tool_version(tool: Path, server_major: int) -> None:
    major = tool_major(tool)
    if major < server_major:
        raise BackupError(
            f"{tool.name} {major} ({tool}) is older than the PostgreSQL {server_major} server",
            f"install postgresql-client-{server_major} or point PLANCTL_PG_BINDIR at its bin/",
        )


def _check(returncode: int, stderr: str, what: str) -> None:
    """Turn a client tool's failure into one clear BackupError."""
    if returncode == 0:
        return
    message = " ".join(stderr.split())[:500] or f"exit status {returncode}"
    if returncode < 0:
        message = f"killed by {signal.Signals(-returncode).name}"
    if any(s in message for s in ("No space left", "File too large", "SIGXFSZ")):
        raise BackupError(
            f"{what} failed: the disk is full or a file-size limit was reached",
            "free space in the backup directory and retry",
        )
    raise BackupError(f"{what} failed: {message}")


def _run(command: list[str], env: dict[str, str], what: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    _check(done.returncode, done.stderr, what)
    return done


def server_facts(connection: Any) -> tuple[int, set[str]]:
    """The server's major version and the tables of the current schema."""
    from sqlalchemy import text

    major = int(connection.execute(text("SHOW server_version_num")).scalar_one()) // 10000
    tables = set(
        connection.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        ).scalars()
    )
    return major, tables


def dump(
    database_url: str,
    target: Path,
    compressed: bool,
    bindir: Path | None = None,
    in_snapshot: Callable[[Any], None] | None = None,
    on_dumped: Callable[[], None] | None = None,
) -> tuple[str | None, dict[str, int]]:
    """pg_dump into *target* from one snapshot; return (revision, row counts) of that snapshot.

    *on_dumped()* runs as soon as the archive is complete.

    *in_snapshot(connection)* runs after pg_dump succeeded, still inside the
    transaction whose snapshot pg_dump used (it may write: the change log is
    emptied there of exactly what the dump holds).
    """
    from sqlalchemy import text

    from planctl.db.engine import connect
    from planctl.db.models import TABLE_NAMES

    with connect(database_url) as connection:
        access = "" if in_snapshot else ", READ ONLY"
        connection.execute(text(f"SET TRANSACTION ISOLATION LEVEL REPEATABLE READ{access}"))
        snapshot = connection.execute(text("SELECT pg_export_snapshot()")).scalar_one()
        server_major, existing = server_facts(connection)
        pg_dump = find_tool("pg_dump", server_major, bindir)
        check_tool_version(pg_dump, server_major)
        command = [
            str(pg_dump),
            "--format=custom",
            f"--file={target}",
            f"--snapshot={snapshot}",
            "--no-password",
            f"--compress={6 if compressed else 0}",
        ]
        with libpq_env(database_url) as env:
            _maybe_crash("pg-dump-start")
            # Its own session: a Ctrl-C meant for `backup watch` must not kill the
            # dump in progress (watch finishes it, then stops).
            process = subprocess.Popen(
                command,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            try:
                _, stderr = process.communicate()
            except BaseException:
                process.kill()
                process.wait()
                raise
            _check(process.returncode, stderr, "pg_dump")
        if on_dumped is not None:
            on_dumped()  # e.g. hash the archive while the rows are counted below
        # Counted after pg_dump, in its snapshot: counting alongside would take CPU from it.
        counts = {
            name: connection.execute(text(f'SELECT count(*) FROM "{name}"')).scalar_one()
            for name in TABLE_NAMES
            if name in existing
        }
        revision = None
        if "alembic_version" in existing:
            revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        if in_snapshot is not None:
            in_snapshot(connection)
    return revision, counts


def list_contents(data_path: Path, name: str, bindir: Path | None = None) -> list[str]:
    """``pg_restore --list``: the archive's table of contents (raises VerificationError)."""
    pg_restore = find_tool("pg_restore", None, bindir)
    done = subprocess.run(
        [str(pg_restore), "--list", str(data_path)], capture_output=True, text=True
    )
    if done.returncode != 0 or "TABLE DATA" not in done.stdout:
        reason = " ".join(done.stderr.split())[:300] or "no table data in the archive"
        raise VerificationError(
            f"backup {name} is not a readable pg_dump archive: {reason}",
            "restore another backup (planctl backup list)",
        )
    return done.stdout.splitlines()


def check(
    data_path: Path,
    compressed: bool,
    workdir: Path,
    name: str,
    bindir: Path | None = None,
    *,
    full: bool = True,
) -> None:
    """``pg_restore --list``; with *full*, also read every data block (``--file=/dev/null``).

    The table of contents sits at the start of the archive, so ``--list`` alone
    misses a truncated or damaged data section; the full read does not.
    """
    list_contents(data_path, name, bindir)
    if not full:
        return
    pg_restore = find_tool("pg_restore", None, bindir)
    done = subprocess.run(
        [str(pg_restore), "--file=/dev/null", str(data_path)], capture_output=True, text=True
    )
    if done.returncode != 0:
        reason = " ".join(done.stderr.split())[:300]
        raise VerificationError(
            f"backup {name} has unreadable data: {reason}",
            "restore another backup (planctl backup list)",
        )


def restore(
    database_url: str,
    data_path: Path,
    compressed: bool,
    workdir: Path,
    name: str,
    bindir: Path | None = None,
) -> None:
    """pg_restore --clean --if-exists --single-transaction --no-owner into the database."""
    from sqlalchemy import text

    from planctl.db.engine import connect

    contents = list_contents(data_path, name, bindir)
    dumped = {m.group(1) for line in contents if (m := re.search(r" TABLE \S+ (\S+) ", line))}
    with connect(database_url) as connection:
        server_major, live = server_facts(connection)
    pg_restore = find_tool("pg_restore", server_major, bindir)
    check_tool_version(pg_restore, server_major)
    from planctl.db import changelog
    from planctl.db.models import metadata

    # Everything planctl's migrations create: planner and sync tables, the change log.
    owned = set(metadata.tables) | {"alembic_version", changelog.LOG_TABLE, changelog.ANCHOR_TABLE}
    extra = sorted((live & owned) - dumped)  # never touch tables planctl does not own
    command = [
        str(pg_restore),
        "--clean",
        "--if-exists",
        "--single-transaction",
        "--no-owner",
        "--no-password",
        "--exit-on-error",
        f"--dbname={parse_url(database_url).database}",
        str(data_path),
    ]
    with libpq_env(database_url) as env:
        if extra:  # tables of a newer schema that the backup does not know: drop them first
            with connect(database_url) as connection:
                for table in extra:
                    connection.execute(text(f'DROP TABLE IF EXISTS "{table}" CASCADE'))
                if changelog.LOG_TABLE in extra:  # an older schema: no change-log triggers
                    connection.execute(
                        text(f"DROP FUNCTION IF EXISTS {changelog.FUNCTION}() CASCADE")
                    )
        _run(command, env, "pg_restore")
