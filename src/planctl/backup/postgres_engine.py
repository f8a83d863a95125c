"""PostgreSQL backups with pg_dump/pg_restore (custom format).

The connection reaches the client tools through libpq environment variables
and a temporary 0600 passfile, never through argv: ``ps`` shows
``pg_dump --format=custom --file=…`` and nothing about the server or the
password. Row counts and the schema revision are read in the same snapshot
that pg_dump dumps (``pg_export_snapshot`` + ``--snapshot``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from planctl.backup.compress import Compression
from planctl.backup.pipeline import rewound, scratch_dir, sealed, unnamed_file
from planctl.backup.store import (
    BackupError,
    Dumped,
    DumpResult,
    PendingDigest,
    digest_and_sync,
    disk_error,
)
from planctl.errors import VerificationError
from planctl.failures import tool_out_of_space
from planctl.hooks import NO_HOOKS, Hooks
from planctl.target import Target

if TYPE_CHECKING:
    from planctl.backup.crypto import Recipient
    from planctl.backup.delta import Delta
    from planctl.db.lockwait import LockWait

    InSnapshot = Callable[[Any], None]
    Deltas = Sequence[tuple[str, Delta]]

NAME = "postgresql"
log = logging.getLogger("planctl.backup")


@contextlib.contextmanager
def libpq_env(target: Target) -> Iterator[dict[str, str]]:
    """Environment for pg_dump/pg_restore/psql: PG* variables and a 0600 passfile."""
    # Keep the caller's PG* settings (PGPASSWORD, PGSSLMODE, a socket PGHOST…);
    # what the URL says wins.
    env = dict(os.environ)
    env.update(PGAPPNAME="planctl", PGCONNECT_TIMEOUT=env.get("PGCONNECT_TIMEOUT", "10"))
    for var, value in (
        ("PGHOST", target.host),
        ("PGPORT", str(target.port) if target.port else None),
        ("PGDATABASE", target.database),
        ("PGUSER", target.user),
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
        option = target.option(key)
        if option is not None:
            env[var] = option
    if target.password is not None:
        # The child's environment only: never argv, never a file that a kill -9
        # of planctl could leave behind. /proc/<pid>/environ is readable by the
        # same user (who can read planctl's settings anyway) and root only.
        env["PGPASSWORD"] = target.password
        env.pop("PGPASSFILE", None)
    yield env


def _die_with_parent(parent: int) -> Callable[[], None]:
    """A preexec hook: the client tool gets SIGKILL when planctl dies (even by kill -9)."""
    import ctypes  # here, before the fork: never an import in the child (nor for SQLite)

    def hook() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):  # not Linux: the kill on every exit path remains
            return
        if os.getppid() != parent:  # planctl died before the hook ran
            os._exit(1)

    return hook


PR_SET_PDEATHSIG = 1


def spawn(
    command: list[str], env: dict[str, str], *, text: bool = True, **kwargs: Any
) -> subprocess.Popen[Any]:
    """Start a client tool in its own session that cannot outlive planctl."""
    return subprocess.Popen(
        command,
        env=env,
        text=text,
        start_new_session=True,
        preexec_fn=_die_with_parent(os.getpid()),
        **kwargs,
    )


def run_tool(
    command: list[str], env: dict[str, str] | None, what: str, where: Path | None = None
) -> str:
    """Run a client tool to the end; kill it on any exception (Ctrl-C, SIGTERM); its stdout."""
    process = spawn(
        command,
        env if env is not None else dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        stdout, stderr = process.communicate()
    except BaseException:
        process.kill()
        process.wait()
        raise
    _check(process.returncode, stderr, what, where)
    return stdout


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


def _check(returncode: int, stderr: str, what: str, where: Path | None = None) -> None:
    """Turn a client tool's failure into one clear BackupError."""
    if returncode == 0:
        return
    message = " ".join(stderr.split())[:500] or f"exit status {returncode}"
    if returncode < 0:
        message = f"killed by {signal.Signals(-returncode).name}"
    if tool_out_of_space(returncode, stderr):
        place = f" in '{where}'" if where is not None else ""
        raise BackupError(
            f"{what} failed: the disk is full or a file-size limit was reached{place}",
            f"free space{place} and retry",
        )
    raise BackupError(f"{what} failed: {message}")


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


#: What pg_dump prints when its ``--lock-wait-timeout`` ends a LOCK TABLE.
_DUMP_LOCK_TIMEOUT = "canceling statement due to statement timeout"


class _Counting:
    """A writer that counts what passes into *out* (a retry must not follow any byte)."""

    def __init__(self, out: BinaryIO) -> None:
        self.out, self.count = out, 0

    def write(self, chunk: bytes) -> int:
        self.count += len(chunk)
        return self.out.write(chunk)


def _stream_dump(
    command: list[str], env: dict[str, str], out: BinaryIO, lister: Path | None, into: Path
) -> None:
    """pg_dump's stdout into *out*; with *lister*, the same bytes into ``pg_restore
    --list`` (it reads the table of contents at the start and exits)."""
    dump = spawn(command, env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    listing = tempfile.TemporaryFile()  # noqa: SIM115 - unnamed; closed below
    check = None
    try:
        if lister is not None:
            check = spawn(
                [str(lister), "--list"],
                dict(os.environ),
                stdin=subprocess.PIPE,
                stdout=listing,
                stderr=subprocess.DEVNULL,
            )
        raw = cast(Any, dump.stdout).buffer
        while chunk := raw.read(1 << 20):
            out.write(chunk)
            if check is not None and check.stdin is not None and not check.stdin.closed:
                try:
                    cast(Any, check.stdin).buffer.write(chunk)
                except BrokenPipeError:
                    check.stdin.close()
        assert dump.stderr is not None
        stderr = dump.stderr.read()
        dump.wait()
    except BaseException:
        dump.kill()
        dump.wait()
        if check is not None:
            check.kill()
            check.wait()
        raise
    finally:
        if check is not None and check.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                check.stdin.close()
    _check(dump.returncode, stderr, "pg_dump", into.parent)
    if check is not None:
        check.wait()
        listing.seek(0)
        contents = listing.read().decode("utf-8", "replace")
        if check.returncode != 0 or "TABLE DATA" not in contents:
            raise VerificationError(
                f"backup {into.name}: pg_dump's archive is not readable by pg_restore --list",
                "retry; if it persists, check the PostgreSQL client version",
            )
    listing.close()


def list_contents(source: BinaryIO, name: str, bindir: Path | None = None) -> list[str]:
    """``pg_restore --list`` of the archive *source* (on its stdin): its table of contents
    (raises VerificationError)."""
    pg_restore = find_tool("pg_restore", None, bindir)
    done = subprocess.run(
        [str(pg_restore), "--list"], stdin=rewound(source), capture_output=True, text=True
    )
    if done.returncode != 0 or "TABLE DATA" not in done.stdout:
        reason = " ".join(done.stderr.split())[:300] or "no table data in the archive"
        raise VerificationError(
            f"backup {name} is not a readable pg_dump archive: {reason}",
            "restore another backup (planctl backup list)",
        )
    return done.stdout.splitlines()


SCRATCH_PREFIX = "planctl_restore_"


@contextlib.contextmanager
def scratch_database(target: Target) -> Iterator[Target]:
    """A new empty database on the same server, dropped afterwards (and, if a kill -9
    left one behind, by the next chain restore)."""
    import secrets
    import time

    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from planctl.db.engine import make_engine

    admin = make_engine(target.with_database("postgres"), isolation_level="AUTOCOMMIT")
    name = f"{SCRATCH_PREFIX}{int(time.time())}_{secrets.token_hex(4)}"
    try:
        with admin.connect() as connection:
            _drop_stale_scratch(connection)
            try:
                connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE template0'))
            except DBAPIError as error:  # the server refused (no CREATEDB, a name taken…)
                raise BackupError(
                    "restoring a chain needs a scratch database on the server: "
                    + _first_line(error),
                    "grant CREATEDB to the database user, or restore the chain's full backup; "
                    "the database was left unchanged",
                ) from error
        log.info("scratch database %s created for the chain", name)
        try:
            yield target.with_database(name)
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            log.info("scratch database %s dropped", name)
    finally:
        admin.dispose()


def _drop_stale_scratch(connection: Any) -> None:
    """Scratch databases older than an hour that nobody uses: a killed restore's leftovers."""
    import time

    from sqlalchemy import text

    names = connection.execute(
        text(
            "SELECT datname FROM pg_database WHERE datname LIKE :prefix AND NOT EXISTS "
            "(SELECT 1 FROM pg_stat_activity a WHERE a.datname = pg_database.datname)"
        ),
        {"prefix": SCRATCH_PREFIX + "%"},
    ).scalars()
    for stale in list(names):
        stamp = stale.removeprefix(SCRATCH_PREFIX).partition("_")[0]
        if stamp.isdigit() and time.time() - int(stamp) > 3600:
            with contextlib.suppress(Exception):
                connection.execute(text(f'DROP DATABASE IF EXISTS "{stale}"'))


def _first_line(error: BaseException) -> str:
    original = getattr(error, "orig", None) or error
    return " ".join(str(original).split())[:200]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _prelude(settings: dict[str, str], schema: str, locked: list[str], extra: list[str]) -> str:
    """The transaction's first statements: the attempt's *settings* (a short lock_timeout),
    the locks on the tables the restore replaces, then DROP of the *extra* tables (a newer
    schema's) the backup does not know. SET LOCAL, never a startup option: a pooler
    (PgBouncer) refuses those, and in transaction mode only the transaction is ours."""
    from planctl.db import changelog

    # Qualified: a pooler may hand psql a server connection with an empty search_path.
    quoted = ", ".join(f"{_quote(schema)}.{_quote(table)}" for table in locked)
    sql = "BEGIN;\n" + "".join(f"SET LOCAL {k} = '{v}';\n" for k, v in settings.items())
    if quoted:
        sql += f"LOCK TABLE {quoted} IN ACCESS EXCLUSIVE MODE;\n"
    sql += "".join(f"DROP TABLE IF EXISTS {_quote(schema)}.{_quote(t)} CASCADE;\n" for t in extra)
    if changelog.LOG_TABLE in extra:  # an older schema: no change-log triggers
        sql += f"DROP FUNCTION IF EXISTS {_quote(schema)}.{changelog.FUNCTION}() CASCADE;\n"
    return sql


def _apply_script(
    generate: list[str], source: BinaryIO, env: dict[str, str], prelude: str, target: Target
) -> None:
    """Stream pg_restore's SQL (the archive *source* on its stdin) through psql after
    *prelude*, in ONE transaction that is
    committed only when pg_restore wrote its whole script (else psql's connection ends
    inside the transaction and the server rolls it back)."""
    psql = find_tool("psql", None, Path(generate[0]).parent)
    apply = [
        str(psql),
        "--no-psqlrc",
        "--quiet",
        "--no-password",
        "-v",
        "ON_ERROR_STOP=1",
        "-v",
        "VERBOSITY=verbose",  # the SQLSTATE in its errors (55P03: a lock timeout)
        "--dbname",
        target.database or "",
    ]
    with tempfile.TemporaryFile() as generate_errors, tempfile.TemporaryFile() as apply_errors:
        generator = spawn(
            generate,
            env,
            text=False,
            stdin=rewound(source),
            stdout=subprocess.PIPE,
            stderr=generate_errors,
        )
        applier = spawn(
            apply,
            env,
            text=False,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=apply_errors,
        )
        try:
            assert generator.stdout is not None and applier.stdin is not None
            try:
                applier.stdin.write(prelude.encode("utf-8"))
                shutil.copyfileobj(generator.stdout, applier.stdin, 1 << 20)
                if generator.wait() == 0:
                    applier.stdin.write(b"COMMIT;\n")
                applier.stdin.close()
            except BrokenPipeError:  # psql stopped at an error: its message says which
                pass
            applier.wait()
            generator.kill()
            generator.wait()
        except BaseException:
            for process in (generator, applier):
                process.kill()
                process.wait()
            raise
        _check(applier.returncode, _read(apply_errors), "pg_restore (through psql)")
        if generator.returncode != 0:
            _check(generator.returncode, _read(generate_errors), "pg_restore")


def _read(errors: Any) -> str:
    errors.seek(0)
    return str(errors.read().decode("utf-8", errors="replace"))


class PostgresEngine:
    """Dumps with ``pg_dump --format=custom`` from one exported snapshot, checks with
    ``pg_restore --list`` (deep: every data block read), restores through psql in one
    transaction (a chain: through a scratch database)."""

    name = NAME

    def __init__(
        self,
        bindir: Path | None = None,
        hooks: Hooks = NO_HOOKS,
        lock_wait: LockWait | None = None,
    ) -> None:
        self.bindir = bindir
        self.checkpoint = hooks.checkpoint
        self.lock_wait = lock_wait

    def data_suffix(self, compressed: Compression) -> str:
        return ".dump"

    def dump(
        self,
        target: Target,
        into: Path,
        *,
        compressed: Compression,
        verify: bool,
        in_snapshot: InSnapshot | None = None,
        recipients: Sequence[Recipient] = (),
    ) -> Dumped:
        """pg_dump into *into*; with *recipients* its stdout straight into the encryptor."""
        if recipients:
            with sealed(into, recipients) as out:
                result = self._pg_dump(
                    target,
                    into,
                    compressed,
                    in_snapshot,
                    out=out,
                    verify=verify,
                    lock_wait=self.lock_wait,
                )
            self.checkpoint("verified")
            sha, size = digest_and_sync(into)
            return Dumped(result, sha, size)
        digest = PendingDigest(into)
        try:
            result = self._pg_dump(
                target,
                into,
                compressed,
                in_snapshot,
                digest.start,
                lock_wait=self.lock_wait,
            )
            if verify:  # the TOC here; `backup verify` also reads every data block
                with open(into, "rb") as written:
                    self.check(written, compressed, into.name, deep=False)
            self.checkpoint("verified")
            sha, size = digest.result()
        finally:
            digest.close()
        return Dumped(result, sha, size)

    def _pg_dump(
        self,
        target: Target,
        into: Path,
        compressed: Compression,
        in_snapshot: Callable[[Any], None] | None = None,
        on_dumped: Callable[[], None] | None = None,
        out: BinaryIO | None = None,
        verify: bool = False,
        lock_wait: LockWait | None = None,
    ) -> DumpResult:
        """pg_dump into *into* from one snapshot; what that snapshot holds.

        With *lock_wait*, pg_dump waits at most one attempt's time for its table locks
        (``--lock-wait-timeout``; an app's ACCESS EXCLUSIVE lock would hold it
        indefinitely) and is run again, in the same snapshot, within the budget.

        With *out*, the archive streams from pg_dump's stdout into *out* instead
        (an encryptor: no plaintext file), and with *verify* its table of contents
        is read by ``pg_restore --list`` from the same stream as it passes.

        *on_dumped()* runs as soon as the archive is complete.

        *in_snapshot(connection)* runs after pg_dump succeeded, still inside the
        transaction whose snapshot pg_dump used (it may write: the change log is
        emptied there of exactly what the dump holds).
        """
        from sqlalchemy import text

        from planctl.db import identity, lockwait
        from planctl.db.engine import connect
        from planctl.db.schema import TABLE_NAMES

        with connect(target, snapshot=True, read_only=in_snapshot is None) as connection:
            snapshot = connection.execute(text("SELECT pg_export_snapshot()")).scalar_one()
            server_major, existing = server_facts(connection)
            pg_dump = find_tool("pg_dump", server_major, self.bindir)
            check_tool_version(pg_dump, server_major)
            command = [
                str(pg_dump),
                "--format=custom",
                *([] if out is not None else [f"--file={into}"]),
                f"--snapshot={snapshot}",
                "--no-password",
                f"--compress={0 if compressed is Compression.NONE else 6}",
            ]
            with libpq_env(target) as env:
                self.checkpoint("pg-dump-start")
                wanted = verify and out is not None
                lister = find_tool("pg_restore", server_major, self.bindir) if wanted else None

                def attempt(seconds: float | None) -> None:
                    timed = [*command]
                    if seconds is not None:
                        timed.append(f"--lock-wait-timeout={max(1, int(seconds * 1000))}")
                    # Its own session (a Ctrl-C meant for `backup watch` must not kill the
                    # dump in progress) that dies with planctl.
                    written = _Counting(out) if out is not None else None
                    try:
                        if written is None:
                            run_tool(timed, env, "pg_dump", into.parent)
                        else:
                            _stream_dump(timed, env, cast(BinaryIO, written), lister, into)
                    except BackupError as error:
                        # pg_dump bounds its LOCK TABLE with statement_timeout; nothing was
                        # written yet (it locks every table before the first byte of data).
                        nothing_out = written is None or written.count == 0
                        if seconds is not None and _DUMP_LOCK_TIMEOUT in str(error) and nothing_out:
                            raise lockwait.LockTimedOut(str(error)) from error
                        raise

                if lock_wait is None:
                    attempt(None)
                else:
                    subject = lockwait.subject_for(target)
                    lockwait.retry(lock_wait, subject, "backup of the current state", attempt)
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
                revision = connection.execute(
                    text("SELECT version_num FROM alembic_version")
                ).scalar()
            database_id = identity.read(connection)
            if in_snapshot is not None:
                in_snapshot(connection)
        return DumpResult(revision, counts, database_id)

    def check(
        self,
        source: BinaryIO,
        compressed: Compression,
        name: str,
        *,
        deep: bool = True,
        workdir: Path | None = None,
    ) -> None:
        """``pg_restore --list``; with *deep*, also read every data block (``--file=/dev/null``),
        the archive on pg_restore's stdin.

        The table of contents sits at the start of the archive, so ``--list`` alone
        misses a truncated or damaged data section; the full read does not.
        """
        list_contents(source, name, self.bindir)
        if not deep:
            return
        pg_restore = find_tool("pg_restore", None, self.bindir)
        done = subprocess.run(
            [str(pg_restore), "--file=/dev/null"],
            stdin=rewound(source),
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            reason = " ".join(done.stderr.split())[:300]
            raise VerificationError(
                f"backup {name} has unreadable data: {reason}",
                "restore another backup (planctl backup list)",
            )

    def restore(
        self,
        target: Target,
        source: BinaryIO,
        compressed: Compression,
        name: str,
        deltas: Deltas = (),
        *,
        workdir: Path | None = None,
    ) -> int:
        """Replace the database with the archive (and *deltas* applied) in one transaction.

        Without deltas: ``pg_restore --clean --if-exists`` streamed into psql in one
        transaction (:func:`_apply_script`).
        With deltas, the archive is first restored into a scratch database, the
        deltas applied there, and that database dumped and restored into the live
        one in a single transaction: the live database only ever holds its old
        state or the restore point (dumped into a file without a name). Returns the
        rows the deltas touched. Its lock waits follow the engine's *lock_wait* (short
        attempts, retried; planctl.db.lockwait).
        """
        if not deltas:
            self._restore_archive(target, source, name, self.lock_wait)
            self.checkpoint("pg-restored")
            return 0
        from planctl.backup.delta import apply_deltas

        directory = scratch_dir(workdir or Path(tempfile.gettempdir()))
        with scratch_database(target) as scratch:
            self._restore_archive(scratch, source, name)
            touched = apply_deltas(scratch, deltas)
            self.checkpoint("deltas-applied")
            with unnamed_file(directory) as final:
                try:
                    self._pg_dump(scratch, directory / name, Compression.NONE, out=final)
                except OSError as error:
                    raise disk_error(error, directory, "the restore point") from error
                self.checkpoint("restore-point-dumped")
                self._restore_archive(target, final, name, self.lock_wait)
        self.checkpoint("pg-restored")
        return touched

    def _restore_archive(
        self, target: Target, source: BinaryIO, name: str, lock_wait: LockWait | None = None
    ) -> None:
        """pg_restore --clean --if-exists --no-owner (the archive *source* on its stdin) into
        the database in one transaction, in attempts whose lock waits are short (see
        :func:`_prelude`), retried per *lock_wait*."""
        from planctl.db import changelog, lockwait
        from planctl.db.engine import connect
        from planctl.db.schema import metadata

        contents = list_contents(source, name, self.bindir)
        dumped = {m.group(1) for line in contents if (m := re.search(r" TABLE \S+ (\S+) ", line))}
        with connect(target) as connection:
            server_major, live = server_facts(connection)
            schema = str(connection.exec_driver_sql("SELECT current_schema()").scalar_one())
        pg_restore = find_tool("pg_restore", server_major, self.bindir)
        check_tool_version(pg_restore, server_major)
        from planctl.db import identity

        # Everything planctl's migrations create: planner and sync tables (under their names
        # at any revision), the change log.
        owned = {
            *metadata.tables,
            *changelog.sync_tables(),
            "alembic_version",
            changelog.LOG_TABLE,
            changelog.ANCHOR_TABLE,
            changelog.READERS_TABLE,
            identity.TABLE,
        }
        extra = sorted((live & owned) - dumped)  # never touch tables planctl does not own
        # Lock what the restore drops or rewrites up front: pg_restore's script sets
        # lock_timeout = 0 itself, so the attempt's short wait has to come before it.
        locked = sorted(live & (owned | dumped))
        generate = [
            str(pg_restore),
            "--clean",
            "--if-exists",
            "--no-owner",
            "--file=-",
        ]

        def attempt(seconds: float) -> None:
            with libpq_env(target) as env:
                settings = lockwait.pg_settings(seconds, server_major)
                prelude = _prelude(settings, schema, locked, extra)
                try:
                    _apply_script(generate, source, env, prelude, target)
                except BackupError as error:
                    if lockwait.LOCK_SQLSTATE in str(error):
                        raise lockwait.LockTimedOut(str(error)) from error
                    raise

        subject = lockwait.subject_for(target)
        lockwait.retry(lock_wait or lockwait.LockWait(), subject, f"restore of {name}", attempt)
