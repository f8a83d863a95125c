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
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from planctl.backup.store import BackupError, _maybe_crash, digest_and_sync, temp_path
from planctl.db.engine import parse_url, sqlite_path
from planctl.errors import VerificationError

NAME = "sqlite"
GZIP_LEVEL = 1  # fast; a 1 GB database compresses several-fold even at level 1


def data_suffix(compressed: bool) -> str:
    return ".sqlite.gz" if compressed else ".sqlite"


def database_file(database_url: str) -> Path:
    path = sqlite_path(parse_url(database_url))
    if path is None:
        raise BackupError(
            "cannot back up an in-memory SQLite database", "point DATABASE_URL at a file"
        )
    return path


@contextlib.contextmanager
def _open(path: Path, *, readonly: bool = False) -> Iterator[sqlite3.Connection]:
    # as_uri() percent-encodes '#', '?' and '%', which SQLite's URI parser would
    # otherwise read as a fragment, a query or an escape — and open another file.
    uri = Path(path).resolve().as_uri() + ("?mode=ro" if readonly else "")
    connection = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30)
    try:
        yield connection
    finally:
        connection.close()


def unlink_database(path: Path) -> None:
    """Remove a scratch database file and whatever journal SQLite left beside it."""
    for suffix in ("", "-journal", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _map_sqlite_error(error: sqlite3.Error, what: str) -> BackupError:
    text = str(error)
    if "file is not a database" in text:
        return BackupError(
            f"{what}: the current database file is damaged (not a SQLite database)",
            "move it aside (mv it to *.damaged) and run the restore again",
        )
    if "disk is full" in text or "disk I/O error" in text:
        return BackupError(
            f"{what}: the disk is full or a file-size limit was reached",
            "free space in the backup directory and retry",
        )
    return BackupError(f"{what}: {text}")


def snapshot(database_url: str, target: Path) -> tuple[str | None, dict[str, int]]:
    """Copy the live database into *target* (a new file); return (revision, row counts)."""
    source_path = database_file(database_url)
    if not source_path.is_file():
        raise BackupError(f"SQLite database '{source_path}' does not exist", "check DATABASE_URL")
    try:
        with _open(source_path) as source, _open(target) as copy:
            source.execute("PRAGMA busy_timeout=30000")
            # The copy is a private temporary file that planctl fsyncs and renames
            # itself: SQLite's own journal and syncs would only slow it down.
            copy.execute("PRAGMA journal_mode=OFF")
            copy.execute("PRAGMA synchronous=OFF")
            source.backup(copy)  # one step: a single read transaction, a consistent snapshot
            _maybe_crash("sqlite-copied")
            copy.execute("PRAGMA journal_mode=DELETE")  # self-contained file, no -wal needed
            return _revision(copy), _row_counts(copy)
    except sqlite3.Error as error:
        raise _map_sqlite_error(error, f"backup of '{source_path}' failed") from None


def change_log_mark(path: Path) -> int | None:
    """The newest change-log id in a snapshot file (None: the schema has no change log)."""
    from planctl.db.changelog import LOG_TABLE

    with _open(path, readonly=True) as connection:
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
    from planctl.db.models import TABLE_NAMES

    existing = {
        r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
    }
    return {
        name: connection.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
        for name in TABLE_NAMES
        if name in existing
    }


def integrity_check(path: Path, name: str, *, quick: bool = False) -> None:
    """``PRAGMA integrity_check`` (or the cheaper ``quick_check``) on a plain database file."""
    pragma = "quick_check" if quick else "integrity_check"
    try:
        with _open(path, readonly=True) as connection:
            rows = [r[0] for r in connection.execute(f"PRAGMA {pragma}")]
    except sqlite3.DatabaseError as error:
        raise VerificationError(
            f"backup {name} is damaged: {error}", "restore another backup (planctl backup list)"
        ) from None
    if rows != ["ok"]:
        raise VerificationError(
            f"backup {name} fails {pragma}: {'; '.join(rows[:3])}",
            "restore another backup (planctl backup list)",
        )


def write_data(raw: Path, target: Path, compressed: bool) -> tuple[str, int]:
    """Move the raw snapshot into *target*, gzipped or not; return (sha256, size)."""
    if not compressed:
        os.replace(raw, target)
        return digest_and_sync(target)
    try:
        with (
            open(raw, "rb") as source,
            open(target, "wb") as sink,
            gzip.GzipFile(fileobj=sink, mode="wb", compresslevel=GZIP_LEVEL, mtime=0) as gz,
        ):
            shutil.copyfileobj(source, gz, 1024 * 1024)
    finally:
        unlink_database(raw)
    return digest_and_sync(target)


@contextlib.contextmanager
def plain_copy(data_path: Path, compressed: bool, workdir: Path) -> Iterator[Path]:
    """The backup as a plain database file (decompressed into *workdir* if needed)."""
    if not compressed:
        yield data_path
        return
    if not os.access(workdir, os.W_OK):  # read-only backup media
        workdir = Path(tempfile.gettempdir())
    temp = temp_path(workdir, ".sqlite")
    try:
        try:
            with gzip.open(data_path, "rb") as source, open(temp, "wb") as sink:
                shutil.copyfileobj(source, sink, 1024 * 1024)
        except (EOFError, gzip.BadGzipFile, zlib.error) as error:
            raise VerificationError(
                f"backup file {data_path.name} cannot be decompressed: {error}",
                "restore another backup",
            ) from None
        yield temp
    finally:
        unlink_database(temp)


def check(data_path: Path, compressed: bool, workdir: Path, name: str) -> None:
    with plain_copy(data_path, compressed, workdir) as plain:
        integrity_check(plain, name)


def restore(database_url: str, data_path: Path, compressed: bool, workdir: Path, name: str) -> None:
    """Write the backup's pages into the live database in one transaction."""
    target = database_file(database_url)
    if not target.parent.is_dir():
        raise BackupError(
            f"directory '{target.parent}' of the database does not exist", "create it first"
        )
    with plain_copy(data_path, compressed, workdir) as plain:
        integrity_check(plain, name)
        try:
            with _open(plain, readonly=True) as source, _open(target) as live:
                live.execute("PRAGMA busy_timeout=30000")
                source.backup(live)
                _maybe_crash("sqlite-restored")
                mode = live.execute("PRAGMA journal_mode").fetchone()[0]
                if mode == "wal":
                    live.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as error:
            raise _map_sqlite_error(error, f"restore into '{target}' failed") from None
