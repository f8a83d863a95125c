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
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from planctl.backup.compress import (
    SUFFIXES,
    Compression,
    CompressionError,
    compressing,
    decompressing,
    method_of,
)
from planctl.backup.store import (
    TEMP_PREFIX,
    BackupError,
    Checkpoint,
    DumpResult,
    digest_and_sync,
    disk_error,
    no_checkpoint,
    temp_path,
)
from planctl.db import lockwait, sqlite_file
from planctl.db.lockwait import LockTimedOut
from planctl.errors import VerificationError
from planctl.failures import Failure, classify
from planctl.text import plural

if TYPE_CHECKING:
    from planctl.backup.delta import Delta
    from planctl.db.lockwait import LockWait

NAME = "sqlite"
GZIP_LEVEL = 1  # fast; a 1 GB database compresses several-fold even at level 1


def data_suffix(compressed: bool | str) -> str:
    return ".sqlite" + SUFFIXES[method_of(compressed)]


def database_file(database_url: str) -> Path:
    path = sqlite_file.database_file(database_url)
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


def snapshot(
    database_url: str,
    target: Path,
    checkpoint: Checkpoint = no_checkpoint,
    lock_deadline: float = LOCK_DEADLINE,
) -> DumpResult:
    """Copy the live database into *target* (a new file); what the snapshot holds. Waits
    at most *lock_deadline* seconds for a planner app that keeps the database locked."""
    source_path = database_file(database_url)
    if not source_path.is_file():
        raise BackupError(f"SQLite database '{source_path}' does not exist", "check DATABASE_URL")
    try:
        with _open(source_path) as source, _open(target) as copy:
            source.execute(f"PRAGMA busy_timeout={int(lock_deadline * 1000)}")
            # The copy is a private temporary file that planctl fsyncs and renames
            # itself: SQLite's own journal and syncs would only slow it down.
            copy.execute("PRAGMA journal_mode=OFF")
            copy.execute("PRAGMA synchronous=OFF")
            _copy_pages(source, copy, f"backup of '{source_path}'", lock_deadline)
            checkpoint("sqlite-copied")
            copy.execute("PRAGMA journal_mode=DELETE")  # self-contained file, no -wal needed
            return DumpResult(
                _revision(copy), _row_counts(copy), _database_id(copy), _log_mark(copy)
            )
    except sqlite3.Error as error:
        raise _map_sqlite_error(
            error, f"backup of '{source_path}' failed", target.parent
        ) from error


@contextlib.contextmanager
def unnamed_snapshot(
    database_url: str,
    workdir: Path,
    checkpoint: Checkpoint = no_checkpoint,
    lock_deadline: float = LOCK_DEADLINE,
) -> Iterator[tuple[DumpResult, sqlite3.Connection, int]]:
    """Copy the live database into a file that has no name: (what it holds, a connection
    on the copy, a descriptor to read it from).

    SQLite's backup API needs a path, so the copy is opened inside a fresh 0700
    directory and its name (and the directory) unlinked before the first page
    is written: a kill -9 at any instant leaves at most an empty file in an
    empty private directory (the next run's cleanup removes it), never a
    readable database. The kernel frees the pages when the descriptors close.
    """
    source_path = database_file(database_url)
    if not source_path.is_file():
        raise BackupError(f"SQLite database '{source_path}' does not exist", "check DATABASE_URL")
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
            checkpoint("sqlite-copied")
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


def _make_self_contained(fd: int) -> None:
    """Mark a copy of a WAL database as a rollback-journal file (header bytes 18-19), as
    ``PRAGMA journal_mode=DELETE`` would: a copy without a name cannot have a ``-wal``
    beside it. The change counter moves too, so the open connection re-reads page 1."""
    header = os.pread(fd, 100, 0)
    if len(header) < 100 or header[18:20] == b"\x01\x01":
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
    raw: Path, target: Path, compressed: bool | str, level: int | None = None
) -> tuple[str, int]:
    """Move the raw snapshot into *target*, compressed or not; return (sha256, size)."""
    method = method_of(compressed)
    if method is Compression.NONE:
        # A rename between two temporary names in the backup directory, not a publish:
        # digest_and_sync fsyncs the data and the caller publishes *target* (fsutil).
        os.replace(raw, target)
        return digest_and_sync(target)
    if level is None:
        level = GZIP_LEVEL if method is Compression.GZIP else None
    try:
        with (
            open(raw, "rb") as source,
            open(target, "wb") as sink,
            compressing(sink, method, level) as packed,
        ):
            shutil.copyfileobj(source, packed, 1024 * 1024)
    finally:
        unlink_database(raw)
    return digest_and_sync(target)


def _scratch_dir(workdir: Path) -> Path:
    return workdir if os.access(workdir, os.W_OK) else Path(tempfile.gettempdir())


@contextlib.contextmanager
def plain_copy(
    data_path: Path, compressed: bool | str, workdir: Path, *, private: bool = False
) -> Iterator[Path]:
    """The backup as a plain database file (decompressed into *workdir* if needed).

    With *private*, always a scratch copy that the caller may change (the
    backup's own file is never written).
    """
    if method_of(compressed) is Compression.NONE and not private:
        yield data_path
        return
    directory = _scratch_dir(workdir)
    try:
        temp = temp_path(directory, ".sqlite")
    except OSError as error:
        raise disk_error(error, directory, "a scratch copy of the backup") from error
    try:
        try:
            with open(data_path, "rb") as packed, open(temp, "wb") as sink:
                shutil.copyfileobj(decompressing(packed), sink, 1024 * 1024)
        except (EOFError, gzip.BadGzipFile, zlib.error, CompressionError) as error:
            raise VerificationError(
                f"backup file {data_path.name} cannot be decompressed: {error}",
                "restore another backup",
            ) from error
        except OSError as error:
            raise disk_error(error, directory, "a scratch copy of the backup") from error
        yield temp
    finally:
        unlink_database(temp)


def check(data_path: Path, compressed: bool | str, workdir: Path, name: str) -> None:
    with plain_copy(data_path, compressed, workdir) as plain:
        integrity_check(plain, name)


def _pragma(path: Path, pragma: str, timeout: float = LOCK_DEADLINE) -> str | None:
    if not path.is_file() or path.stat().st_size == 0:
        return None
    try:
        with _open(path, readonly=True, timeout=timeout) as connection:
            return str(connection.execute(f"PRAGMA {pragma}").fetchone()[0])
    except sqlite3.Error as error:
        raise _map_sqlite_error(error, f"reading '{path}' failed") from error


def restore(
    database_url: str,
    data_path: Path,
    compressed: bool | str,
    workdir: Path,
    name: str,
    deltas: Sequence[tuple[str, Delta]] = (),
    checkpoint: Checkpoint = no_checkpoint,
    lock_wait: LockWait | None = None,
) -> int:
    """Write the backup's pages, with *deltas* applied, into the live database at once.

    The deltas go into a scratch copy first, and the finished copy replaces
    the live database's pages in one transaction (SQLite's journal or WAL
    makes it atomic): a failure or kill -9 at any point leaves the old
    database. Returns the rows the deltas touched. The wait for the live
    database's lock follows *lock_wait* (short attempts within a budget).
    """
    from planctl.backup.delta import apply_deltas

    lock_wait = lock_wait or lockwait.LockWait()
    lock_deadline = lock_wait.budget
    target = database_file(database_url)
    if not target.parent.is_dir():
        raise BackupError(
            f"directory '{target.parent}' of the database does not exist", "create it first"
        )
    live_mode = _pragma(target, "journal_mode", lock_deadline)
    live_page = _pragma(target, "page_size", lock_deadline)
    with plain_copy(data_path, compressed, workdir, private=bool(deltas)) as plain:
        integrity_check(plain, name)
        # A WAL database cannot change its page size: give the copy the live one.
        resize = live_mode == "wal" and live_page not in (None, _pragma(plain, "page_size"))
        with contextlib.ExitStack() as stack:
            if resize and plain == data_path:
                plain = stack.enter_context(plain_copy(data_path, False, workdir, private=True))
            touched = apply_deltas(f"sqlite:///{plain}", deltas) if deltas else 0
            checkpoint("deltas-applied")
            try:
                if resize:
                    with _open(plain) as scratch:
                        scratch.execute(f"PRAGMA page_size={int(live_page or 4096)}")
                        scratch.execute("VACUUM")
                source_file = plain

                def attempt(seconds: float) -> None:
                    with (
                        _open(source_file, readonly=True) as source,
                        _open(target, timeout=seconds) as live,
                    ):
                        _copy_pages(source, live, f"restore into '{target}'", seconds)
                        checkpoint("sqlite-restored")
                        mode = live.execute("PRAGMA journal_mode").fetchone()[0]
                        if mode == "wal":
                            live.execute("PRAGMA wal_checkpoint(TRUNCATE)")

                what = f"restore of {name}"
                lockwait.retry(lock_wait, lockwait.target_for(database_url), what, attempt)
            except sqlite3.Error as error:
                where = plain.parent if plain != data_path else target.parent
                raise _map_sqlite_error(error, f"restore into '{target}' failed", where) from error
    return touched
