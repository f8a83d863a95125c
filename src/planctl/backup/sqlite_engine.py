"""SQLite backups through the online backup API — never a file copy of a live database.

``Connection.backup`` copies pages under a read transaction, so the copy is a
consistent snapshot even in WAL mode while other processes write. Restores go
through the same API in the other direction: SQLite writes the pages into the
live database inside one transaction (its journal or WAL makes that atomic),
so no stale ``-wal``/``-shm`` can replay old pages over the restored ones.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import sqlite3
import struct
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from planctl.backup.compress import (
    SUFFIXES,
    Compression,
    CompressionError,
    compressing,
    decompressing,
)
from planctl.backup.pipeline import alongside, scratch_dir, sealed
from planctl.backup.store import (
    TEMP_PREFIX,
    BackupError,
    Dumped,
    DumpResult,
    digest_and_sync,
    disk_error,
    temp_path,
)
from planctl.db import lockwait
from planctl.db.lockwait import LockTimedOut
from planctl.errors import VerificationError
from planctl.failures import Failure, classify
from planctl.hooks import NO_HOOKS, Hooks
from planctl.target import Target
from planctl.text import plural

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from planctl.backup.crypto import Recipient
    from planctl.backup.delta import Delta
    from planctl.db.lockwait import LockWait

    InSnapshot = Callable[[Connection], None]
    Deltas = Sequence[tuple[str, Delta]]

NAME = "sqlite"
GZIP_LEVEL = 1  # fast; a 1 GB database compresses several-fold even at level 1


def database_file(target: Target) -> Path:
    path = target.sqlite_file
    if path is None:
        raise BackupError(
            "cannot back up an in-memory SQLite database", "point DATABASE_URL at a file"
        )
    return path


@contextlib.contextmanager
def _open(
    path: Path, *, readonly: bool = False, timeout: float = 30, shared: bool = False
) -> Iterator[sqlite3.Connection]:
    """*shared*: usable from another thread (one at a time: the backup's gate runs in a
    thread alongside the compression pass, pipeline.alongside)."""
    # as_uri() percent-encodes '#', '?' and '%', which SQLite's URI parser would
    # otherwise read as a fragment, a query or an escape — and open another file.
    uri = Path(path).resolve().as_uri() + ("?mode=ro" if readonly else "")
    connection = sqlite3.connect(
        uri, uri=True, isolation_level=None, timeout=timeout, check_same_thread=not shared
    )
    try:
        yield connection
    finally:
        connection.close()


def unlink_database(path: Path) -> None:
    """Remove a scratch database file and whatever journal SQLite left beside it."""
    for suffix in ("", "-journal", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


#: How long a backup or restore waits for the planner app's locks before giving up.
LOCK_DEADLINE = 30.0


class _GaveUp(LockTimedOut):
    """Raised from the backup progress callback: the deadline passed while SQLite was busy."""


def _copy_pages(
    source: sqlite3.Connection,
    target: sqlite3.Connection,
    what: str,
    lock_deadline: float = LOCK_DEADLINE,
) -> None:
    """All pages in one step (one transaction on each side), waiting at most *lock_deadline*.

    ``Connection.backup`` retries SQLITE_BUSY forever by itself; its progress
    callback runs after every attempt, so raising there bounds the wait.
    """
    deadline = time.monotonic() + lock_deadline

    def progress(status: int, _remaining: int, _total: int) -> None:
        if status in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) and time.monotonic() > deadline:
            raise _GaveUp

    try:
        source.backup(target, pages=-1, progress=progress, sleep=0.05)
    except _GaveUp as error:
        raise BackupError(
            f"{what}: another program kept the database locked for {lock_deadline:g} s",
            "close the planner app (or wait for its long transaction) and retry",
        ) from error


def _map_sqlite_error(error: sqlite3.Error, what: str, where: Path | None = None) -> BackupError:
    failure = classify(error)
    if failure is Failure.NOT_A_DATABASE:
        return BackupError(
            f"{what}: the current database file is damaged (not a SQLite database)",
            "move it aside (mv it to *.damaged) and run the restore again",
        )
    if failure is Failure.DISK_FULL:
        place = f" in '{where}'" if where is not None else ""
        return BackupError(
            f"{what}: the disk is full or a file-size limit was reached{place}",
            f"free space{place} and retry; nothing was changed",
        )
    if failure is Failure.LOCKED:
        return BackupError(
            f"{what}: another program kept the database locked",
            "close the planner app (or wait for it) and retry",
        )
    return BackupError(f"{what}: {error}")


def _make_self_contained(fd: int, *, force: bool = False) -> None:
    """Mark a copy of a WAL database as a rollback-journal file (header bytes 18-19), as
    ``PRAGMA journal_mode=DELETE`` would: a copy without a name cannot have a ``-wal``
    beside it. The change counter moves too (with *force* always: the file was written
    under an open connection), so the open connection re-reads page 1."""
    header = os.pread(fd, 100, 0)
    if len(header) < 100 or (header[18:20] == b"\x01\x01" and not force):
        return
    counter = struct.pack(">I", (struct.unpack(">I", header[24:28])[0] + 1) & 0xFFFFFFFF)
    os.pwrite(fd, b"\x01\x01", 18)
    os.pwrite(fd, counter, 24)
    os.pwrite(fd, counter, 92)  # "version-valid-for": the page count in the header holds


def check_rows(connection: sqlite3.Connection, name: str, *, quick: bool) -> None:
    """``integrity_check`` (or ``quick_check``) on an open database; VerificationError."""
    pragma = "quick_check" if quick else "integrity_check"
    # On a writable connection SQLite's checks also evaluate every CHECK constraint of
    # every row (a read-only one skips them): 2.4× the CPU on the benchmark database for
    # no page-level damage found more. Off for the check alone, as on a read-only file.
    ignored = connection.execute("PRAGMA ignore_check_constraints").fetchone()[0]
    try:
        connection.execute("PRAGMA ignore_check_constraints=ON")
        rows = [r[0] for r in connection.execute(f"PRAGMA {pragma}(100)")]
    except sqlite3.DatabaseError as error:
        raise VerificationError(
            f"backup {name} is damaged: {error}", "restore another backup (planctl backup list)"
        ) from error
    finally:
        connection.execute(f"PRAGMA ignore_check_constraints={int(ignored)}")
    if rows != ["ok"]:
        first = " ".join(str(rows[0]).split())[:200]
        more = f" (and {plural(len(rows) - 1, 'more problem')})" if len(rows) > 1 else ""
        raise VerificationError(
            f"backup {name} fails {pragma}: {first}{more}",
            "restore another backup (planctl backup list)",
        )


def _database_id(connection: sqlite3.Connection) -> str | None:
    from planctl.db.identity import TABLE

    try:
        row = connection.execute(f"SELECT database_id FROM {TABLE} WHERE id = 1").fetchone()
    except sqlite3.OperationalError:
        return None
    return str(row[0]) if row else None


def _log_mark(connection: sqlite3.Connection) -> int | None:
    """The newest change-log id in a snapshot (None: the schema has no change log)."""
    from planctl.db.changelog import LOG_TABLE

    try:
        row = connection.execute(f"SELECT max(id) FROM {LOG_TABLE}").fetchone()
    except sqlite3.OperationalError:
        return None
    return int(row[0] or 0)


def _revision(connection: sqlite3.Connection) -> str | None:
    try:
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.OperationalError:
        return None
    return row[0] if row else None


def _row_counts(connection: sqlite3.Connection) -> dict[str, int]:
    from planctl.db.schema import TABLE_NAMES

    existing = {
        r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
    }
    return {
        name: connection.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
        for name in TABLE_NAMES
        if name in existing
    }


@contextlib.contextmanager
def reader(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection on a database file, usable from another thread; open (the
    file held) before this returns, so a rename or unlink of the name does not matter."""
    with _open(path, readonly=True, shared=True) as connection:
        connection.execute("PRAGMA schema_version")  # opened now, not at the first query
        yield connection


def integrity_check(path: Path, name: str, *, quick: bool = False) -> None:
    """``PRAGMA integrity_check`` (or the cheaper ``quick_check``) on a plain database file.

    A damaged file can report thousands of problems: the message names the
    first and counts the rest, so it stays one line.
    """
    try:
        with _open(path, readonly=True) as connection:
            check_rows(connection, name, quick=quick)
    except sqlite3.DatabaseError as error:
        raise VerificationError(
            f"backup {name} is damaged: {error}", "restore another backup (planctl backup list)"
        ) from error


def write_data(
    raw: Path, into: Path, compressed: Compression, level: int | None = None
) -> tuple[str, int]:
    """Move the raw snapshot into *into*, compressed or not; return (sha256, size)."""
    method = compressed
    if method is Compression.NONE:
        # A rename between two temporary names in the backup directory, not a publish:
        # digest_and_sync fsyncs the data and the caller publishes *into* (fsutil).
        os.replace(raw, into)
        return digest_and_sync(into)
    if level is None:
        level = GZIP_LEVEL if method is Compression.GZIP else None
    try:
        with (
            open(raw, "rb") as source,
            open(into, "wb") as sink,
            compressing(sink, method, level) as packed,
        ):
            shutil.copyfileobj(source, packed, 1024 * 1024)
    finally:
        unlink_database(raw)
    return digest_and_sync(into)


def _pragma(path: Path, pragma: str, timeout: float = LOCK_DEADLINE) -> str | None:
    if not path.is_file() or path.stat().st_size == 0:
        return None
    try:
        with _open(path, readonly=True, timeout=timeout) as connection:
            return str(connection.execute(f"PRAGMA {pragma}").fetchone()[0])
    except sqlite3.Error as error:
        raise _map_sqlite_error(error, f"reading '{path}' failed") from error


class SqliteEngine:
    """Dumps through the online backup API, checks with ``integrity_check``, restores by
    writing a checked copy's pages into the live database in one transaction."""

    name = NAME

    def __init__(
        self,
        hooks: Hooks = NO_HOOKS,
        lock_deadline: float | None = None,
        lock_wait: LockWait | None = None,
    ) -> None:
        self.checkpoint = hooks.checkpoint
        #: A dump's lock waits: short attempts within this budget (None: one wait of
        #: LOCK_DEADLINE, as a scheduled backup has always waited).
        self.dump_wait = lock_wait
        if lock_wait is None:  # *lock_deadline*: the budget of a default wait
            default = lockwait.LockWait()
            lock_wait = (
                default if lock_deadline is None else lockwait.LockWait(budget=lock_deadline)
            )
        self.lock_wait = lock_wait

    def data_suffix(self, compressed: Compression) -> str:
        return ".sqlite" + SUFFIXES[compressed]

    # --- dump -------------------------------------------------------------------------------

    def _waiting(self, target: Target, attempt: Callable[[float], Any]) -> Any:
        """*attempt(seconds)*: once with the default wait, or retried within the budget."""
        if self.dump_wait is None:
            return attempt(LOCK_DEADLINE)
        subject = lockwait.subject_for(target)
        return lockwait.retry(self.dump_wait, subject, "backup of the current state", attempt)

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
        """The snapshot into *into*; with *recipients* through a file without a name."""
        if recipients:
            return self._dump_sealed(target, into, compressed, verify, recipients)
        raw = temp_path(into.parent, ".sqlite")
        try:
            result = self._waiting(target, lambda seconds: self._snapshot(target, raw, seconds))
            # The gate before rotation (which may delete older backups) reads the copy
            # in a thread while write_data compresses it: one pass's worth of wall time.
            with contextlib.ExitStack() as gate:
                if verify:
                    checker = gate.enter_context(reader(raw))
                    gate.enter_context(
                        alongside(lambda: check_rows(checker, into.name, quick=True))
                    )
                sha, size = write_data(raw, into, compressed)
            self.checkpoint("verified")
        finally:
            unlink_database(raw)
        return Dumped(result, sha, size)

    def _dump_sealed(
        self,
        target: Target,
        into: Path,
        compressed: Compression,
        verify: bool,
        recipients: Sequence[Recipient],
    ) -> Dumped:
        """The snapshot in a file without a name, streamed through compression into the
        encryptor: the plaintext never has a name on disk."""
        method = compressed
        level = GZIP_LEVEL if method is Compression.GZIP else None

        def snapshot(seconds: float) -> tuple[contextlib.ExitStack, Any]:
            stack = contextlib.ExitStack()
            opened = stack.enter_context(self._unnamed_snapshot(target, into.parent, seconds))
            return stack, opened

        stack, (result, copy, fd) = self._waiting(target, snapshot)
        gate = (lambda: check_rows(copy, into.name, quick=True)) if verify else None
        with stack:
            with (
                alongside(gate),  # in a thread, reading the copy while it is streamed
                os.fdopen(os.dup(fd), "rb") as plain,
                sealed(into, recipients) as out,
                compressing(out, method, level) as packed,
            ):
                plain.seek(0)
                shutil.copyfileobj(plain, packed, 1 << 20)
            self.checkpoint("verified")
        sha, size = digest_and_sync(into)
        return Dumped(result, sha, size)

    def _snapshot(
        self, target: Target, into: Path, lock_deadline: float = LOCK_DEADLINE
    ) -> DumpResult:
        """Copy the live database into *into* (a new file); what the snapshot holds. Waits
        at most *lock_deadline* seconds for a planner app that keeps the database locked."""
        source_path = database_file(target)
        if not source_path.is_file():
            raise BackupError(
                f"SQLite database '{source_path}' does not exist", "check DATABASE_URL"
            )
        try:
            with _open(source_path) as source, _open(into) as copy:
                source.execute(f"PRAGMA busy_timeout={int(lock_deadline * 1000)}")
                # The copy is a private temporary file that planctl fsyncs and renames
                # itself: SQLite's own journal and syncs would only slow it down.
                copy.execute("PRAGMA journal_mode=OFF")
                copy.execute("PRAGMA synchronous=OFF")
                _copy_pages(source, copy, f"backup of '{source_path}'", lock_deadline)
                self.checkpoint("sqlite-copied")
                copy.execute("PRAGMA journal_mode=DELETE")  # self-contained file, no -wal needed
                return DumpResult(
                    _revision(copy), _row_counts(copy), _database_id(copy), _log_mark(copy)
                )
        except sqlite3.Error as error:
            raise _map_sqlite_error(
                error, f"backup of '{source_path}' failed", into.parent
            ) from error

    @contextlib.contextmanager
    def _unnamed_snapshot(
        self, target: Target, workdir: Path, lock_deadline: float = LOCK_DEADLINE
    ) -> Iterator[tuple[DumpResult, sqlite3.Connection, int]]:
        """Copy the live database into a file that has no name: (what it holds, a connection
        on the copy, a descriptor to read it from).

        SQLite's backup API needs a path, so the copy is opened inside a fresh 0700
        directory and its name (and the directory) unlinked before the first page
        is written: a kill -9 at any instant leaves at most an empty file in an
        empty private directory (the next run's cleanup removes it), never a
        readable database. The kernel frees the pages when the descriptors close.
        """
        source_path = database_file(target)
        if not source_path.is_file():
            raise BackupError(
                f"SQLite database '{source_path}' does not exist", "check DATABASE_URL"
            )
        try:
            scratch = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=workdir))
        except OSError as error:
            raise disk_error(error, workdir) from error
        path = scratch / "snapshot.sqlite"
        fd = -1
        try:
            with _open(source_path) as source, _open(path, shared=True) as copy:
                copy.execute("PRAGMA journal_mode=OFF")  # no journal file: nothing beside it
                copy.execute("PRAGMA synchronous=OFF")
                copy.execute("PRAGMA schema_version")  # the file is open (and still empty)
                fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
                path.unlink()
                scratch.rmdir()
                source.execute(f"PRAGMA busy_timeout={int(lock_deadline * 1000)}")
                _copy_pages(source, copy, f"backup of '{source_path}'", lock_deadline)
                self.checkpoint("sqlite-copied")
                _make_self_contained(fd)
                result = DumpResult(
                    _revision(copy), _row_counts(copy), _database_id(copy), _log_mark(copy)
                )
                yield result, copy, fd
        except sqlite3.Error as error:
            raise _map_sqlite_error(error, f"backup of '{source_path}' failed", workdir) from error
        finally:
            if fd >= 0:
                os.close(fd)
            path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                scratch.rmdir()

    # --- check and restore ------------------------------------------------------------------

    def check(
        self,
        source: BinaryIO,
        compressed: Compression,
        name: str,
        *,
        deep: bool = True,
        workdir: Path | None = None,
    ) -> None:
        """``integrity_check`` (shallow: ``quick_check``) on a copy without a name."""
        with _unnamed_copy(source, name, workdir, writable=False) as copy:
            check_rows(copy, name, quick=not deep)

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
        """Write the backup's pages, with *deltas* applied, into the live database at once.

        The backup is decompressed into a copy without a name, checked, the deltas
        applied to it, and the finished copy replaces the live database's pages in
        one transaction (SQLite's journal or WAL makes it atomic): a failure or kill
        -9 at any point leaves the old database, and no readable copy of the backup.
        Returns the rows the deltas touched. The wait for the live database's lock
        follows the engine's *lock_wait* (short attempts within a budget).
        """
        lock_wait = self.lock_wait
        live_file = database_file(target)
        if not live_file.parent.is_dir():
            raise BackupError(
                f"directory '{live_file.parent}' of the database does not exist", "create it first"
            )
        live_mode = _pragma(live_file, "journal_mode", lock_wait.budget)
        live_page = _pragma(live_file, "page_size", lock_wait.budget)
        # A WAL database cannot change its page size: the copy gets the live one.
        resize = live_mode == "wal" and live_page not in (None, str(_page_size(source)))
        # Read-only unless SQLite itself writes to the copy (reads are faster so).
        writable = bool(deltas) or resize
        with _unnamed_copy(source, name, workdir, writable=writable) as copy:
            check_rows(copy, name, quick=False)
            touched = _apply_deltas(copy, deltas, name) if deltas else 0
            self.checkpoint("deltas-applied")
            try:
                if resize:
                    copy.execute(f"PRAGMA page_size={int(live_page or 4096)}")
                    copy.execute("VACUUM")

                def attempt(seconds: float) -> None:
                    with _open(live_file, timeout=seconds) as live:
                        _copy_pages(copy, live, f"restore into '{live_file}'", seconds)
                        self.checkpoint("sqlite-restored")
                        mode = live.execute("PRAGMA journal_mode").fetchone()[0]
                        if mode == "wal":
                            live.execute("PRAGMA wal_checkpoint(TRUNCATE)")

                what = f"restore of {name}"
                lockwait.retry(lock_wait, lockwait.subject_for(target), what, attempt)
            except sqlite3.Error as error:
                where = scratch_dir(workdir or live_file.parent)
                raise _map_sqlite_error(
                    error, f"restore into '{live_file}' failed", where
                ) from error
        return touched


def _page_size(source: BinaryIO) -> int | None:
    """The page size in the header of the (compressed) database *source*; None if it has no
    SQLite header (the check that follows names the problem)."""
    source.seek(0)
    try:
        header = decompressing(source).read(100)
    except (EOFError, OSError, zlib.error, CompressionError):
        return None
    if len(header) < 18 or not header.startswith(b"SQLite format 3\x00"):
        return None
    size = int.from_bytes(header[16:18], "big")
    return 65536 if size == 1 else size


@contextlib.contextmanager
def _unnamed_copy(
    source: BinaryIO, name: str, workdir: Path | None = None, *, writable: bool = True
) -> Iterator[sqlite3.Connection]:
    """The backup *source* decompressed into a database file without a name, opened.

    SQLite opens files by path only, so the copy is opened in a fresh 0700
    directory (in *workdir* when writable, else TMPDIR) and its name and the
    directory unlinked before the first byte is written, as for the unnamed
    snapshot: a kill -9 at any instant leaves at most an empty file in an empty
    private directory, never a readable database. Opened read-only unless
    *writable* (deltas applied, a page size changed), then without a journal:
    the copy is scratch, thrown away on any failure.
    """
    directory = scratch_dir(workdir or Path(tempfile.gettempdir()))
    try:
        scratch = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=directory))
    except OSError as error:
        raise disk_error(error, directory, "a scratch copy of the backup") from error
    path = scratch / "restore.sqlite"
    fd = -1
    try:
        path.touch(mode=0o600)
        with _open(path, readonly=not writable) as copy:
            if writable:
                copy.execute("PRAGMA journal_mode=OFF")
                copy.execute("PRAGMA synchronous=OFF")
            copy.execute("PRAGMA schema_version")  # the file is open (and still empty)
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            path.unlink()
            scratch.rmdir()
            _fill(fd, source, name, directory)
            yield copy
    except sqlite3.Error as error:
        raise _map_sqlite_error(error, f"a copy of backup {name} failed", directory) from error
    finally:
        if fd >= 0:
            os.close(fd)
        path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            scratch.rmdir()


def _fill(fd: int, source: BinaryIO, name: str, directory: Path) -> None:
    """Decompress *source* into the unnamed file *fd*, then make the connection that has
    it open read it afresh (a new change counter) as a self-contained file."""
    source.seek(0)
    try:
        with os.fdopen(os.dup(fd), "wb") as out:
            shutil.copyfileobj(decompressing(source), out, 1 << 20)
    except (EOFError, gzip.BadGzipFile, zlib.error, CompressionError) as error:
        raise VerificationError(
            f"backup {name} cannot be decompressed: {error}", "restore another backup"
        ) from error
    except OSError as error:
        raise disk_error(error, directory, "a scratch copy of the backup") from error
    _make_self_contained(fd, force=True)


def _apply_deltas(copy: sqlite3.Connection, deltas: Deltas, name: str) -> int:
    """The chain's deltas applied to the open copy in one transaction, through SQLAlchemy
    (what the delta code speaks) over that very connection."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import StaticPool

    from planctl.backup.delta import apply_all

    engine = create_engine("sqlite://", creator=lambda: copy, poolclass=StaticPool)
    with engine.connect() as connection:
        copy.execute("BEGIN")
        touched = apply_all(connection, deltas, f"the copy of {name}")
        copy.execute("COMMIT")
    return touched
