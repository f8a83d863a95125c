"""Streaming CSV export of any table of the schema, one reader, one pass.

Header row, UTF-8, RFC 4180 (CRLF, quotes only where needed), NULL as an
empty field, ISO dates and times, UTC timestamps, numbers at their declared
scale, ``true``/``false``, formula-like text neutralised with a leading
``'``. The database renders the lines: SQLite through the driver alone
(:mod:`.csv_sqlite`), PostgreSQL through ``COPY`` (:mod:`.csv_postgres`).
Both engine modules depend on :mod:`.csv_common`, never on this one.

``--all`` (:func:`export_all`) is all or nothing: every file is written and
fsynced in a hidden staging directory first, and only then renamed into
place, with the previous files kept as hard links until every rename is done
(rolled back on failure, and by the next run after a ``kill -9``).
"""

from __future__ import annotations

import contextlib
import io
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from planctl import fsutil
from planctl.errors import UsageError
from planctl.export.csv_common import (
    TABLES,
    CsvOptions,
    Progress,
    Warn,
    Write,
    check_delimiter,
    check_table_name,
)

#: What a SQLite export reads through: the driver's connection, or a SQLAlchemy one.
AnyConnection = Any
COMMITTING = "COMMITTING"

__all__ = ["TABLES", "CsvOptions", "export_all", "export_table"]


def sqlite_driver_connection(connection: AnyConnection) -> sqlite3.Connection | None:
    """The sqlite3 connection behind *connection*, or None for another engine."""
    if isinstance(connection, sqlite3.Connection):
        return connection
    if connection.dialect.name != "sqlite":
        return None
    raw = connection.connection.dbapi_connection
    assert isinstance(raw, sqlite3.Connection)
    return raw


def export_table(
    connection: AnyConnection,
    table_name: str,
    out: IO[Any],
    options: CsvOptions = CsvOptions(),
    *,
    progress: Progress | None = None,
    warn: Warn | None = None,
    fast_path: bool = True,
) -> int:
    """Write one table as CSV to *out* (text or binary); returns the number of data rows.

    *connection* is a SQLAlchemy connection (either engine) or a ``sqlite3``
    one. *fast_path* False makes PostgreSQL use ``csv.writer`` instead of
    ``COPY`` (same bytes); SQLite has one path. *warn* gets the one-time
    warning about a long read on a rollback-journal SQLite database.
    """
    check_delimiter(options.delimiter)
    check_table_name(table_name)
    write = byte_writer(out)
    raw = sqlite_driver_connection(connection)
    if raw is not None:
        from planctl.export import csv_sqlite

        return csv_sqlite.write_table(raw, table_name, write, options, progress=progress, warn=warn)
    from planctl.export import csv_postgres

    return csv_postgres.write_table(
        connection, table_name, write, options, progress=progress, fast_path=fast_path
    )


def byte_writer(out: IO[Any]) -> Write:
    """Write UTF-8 bytes to *out*: straight to its binary buffer when it has one."""
    if not isinstance(out, io.TextIOBase):
        return out.write
    raw = getattr(out, "buffer", None)
    out.flush()
    if raw is not None:
        return raw.write
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    return lambda chunk: out.write(decoder.decode(chunk))


def count_rows(connection: AnyConnection, table_name: str) -> int:
    """How many rows *table_name* has (for a progress bar)."""
    sql = f'SELECT count(*) FROM "{check_table_name(table_name)}"'
    raw = sqlite_driver_connection(connection)
    if raw is not None:
        return int(raw.execute(sql).fetchone()[0])
    return int(connection.exec_driver_sql(sql).scalar_one())


def export_all(
    connection: AnyConnection,
    directory: Path,
    options: CsvOptions = CsvOptions(),
    *,
    progress: Progress | None = None,
    warn: Warn | None = None,
    guard: fsutil.Guard = fsutil.NO_GUARD,
    lock_timeout: float = 0.0,
) -> dict[str, int]:
    """One ``<table>.csv`` per table in *directory*, all from one snapshot, all or nothing.

    Other files in *directory* are left alone. Two runs on one directory
    exclude each other (LockedError, exit 4, after *lock_timeout* seconds).
    """
    if options.columns:
        raise UsageError("--columns does not go with --all", "export one table to pick columns")
    check_delimiter(options.delimiter)
    if directory.exists() and not directory.is_dir():
        raise fsutil.OutputError(f"'{directory}' is not a directory", "give a directory to --all")
    guard.check(directory)
    for name in TABLES:
        guard.check(directory / f"{name}.csv")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise fsutil.OutputError(
            f"cannot create directory '{directory}': {error.strerror}", "choose another --all"
        ) from error
    real = Path(os.path.realpath(directory))
    anchor = real / "csv"  # staging directories are .csv.<random>.planctl-tmp inside DIR
    with fsutil.file_lock(real, timeout=lock_timeout, what=f"export directory '{directory}'"):
        fsutil.remove_stale_temps(anchor, before_remove=lambda stale: _roll_back(stale, real))
        with fsutil.space_errors(str(directory)), fsutil.locked_temp_dir(anchor) as staging:
            counts = _write_all(connection, staging, real, options, progress, warn)
            _commit(staging, real, list(counts))
    return counts


def _write_all(
    connection: AnyConnection,
    staging: Path,
    real: Path,
    options: CsvOptions,
    progress: Progress | None,
    warn: Warn | None,
) -> dict[str, int]:
    """Every table into *staging*/new, fsynced, each file with the old one's mode and owner."""
    new = staging / "new"
    new.mkdir()
    counts = {}
    with _one_snapshot(connection):
        for name in TABLES:
            path = new / f"{name}.csv"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            with open(fd, "wb") as handle:
                counts[name] = export_table(
                    connection, name, handle, options.for_table(name), progress=progress, warn=warn
                )
                handle.flush()
                fsutil.fsync_file(path)
                fsutil.copy_identity(real / f"{name}.csv", handle.fileno(), str(real / name))
    fsutil.fsync_dir(new)
    return counts


@contextlib.contextmanager
def _one_snapshot(connection: AnyConnection) -> Iterator[None]:
    """Every table read in one transaction, so the files agree with each other."""
    raw = sqlite_driver_connection(connection)
    if raw is None or raw.in_transaction:  # PostgreSQL, or a SQLAlchemy transaction already
        yield
        return
    raw.execute("BEGIN")
    try:
        yield
    finally:
        raw.execute("ROLLBACK")


def _commit(staging: Path, real: Path, names: list[str]) -> None:
    """Swap the new files in: old ones hard-linked aside, a marker, renames, directory fsync.

    Signals are held back for these few system calls; any error rolls back.
    """
    with fsutil.signals_held():
        old = staging / "old"
        old.mkdir()
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                os.link(real / f"{name}.csv", old / f"{name}.csv")
        fsutil.fsync_dir(old)
        marker = staging / COMMITTING
        marker.write_text("\n".join(names) + "\n", encoding="utf-8")
        fsutil.fsync_file(marker)
        fsutil.fsync_dir(staging)
        try:
            for name in names:
                os.replace(staging / "new" / f"{name}.csv", real / f"{name}.csv")
            fsutil.fsync_dir(real)
        except BaseException:
            _roll_back(staging, real)
            raise
        marker.unlink()


def _roll_back(staging: Path, real: Path) -> None:
    """Put the previous files back after an interrupted commit (idempotent)."""
    marker = staging / COMMITTING
    if not marker.is_file():
        return  # the commit never started: the old set was never touched
    names = [n for n in marker.read_text(encoding="utf-8").split() if n]
    for name in names:
        kept = staging / "old" / f"{name}.csv"
        target = real / f"{name}.csv"
        if kept.exists():
            os.replace(kept, target)
        elif not (staging / "new" / f"{name}.csv").exists():
            target.unlink(missing_ok=True)  # it did not exist before this run moved it in
    fsutil.fsync_dir(real)
    marker.unlink()

