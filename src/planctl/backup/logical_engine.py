"""Logical backups: the planner's tables as JSON Lines that either engine can load.

A logical backup does not depend on the engine it came from, so it moves a
database from SQLite to PostgreSQL and back, and its row codec
(:func:`encode_row`/:func:`decode_row`) is what incremental backups store. It
is plain JSON (never pickle): loading a backup cannot run code.

File format (UTF-8 JSON Lines, gzipped when compressed; one JSON value a line)::

    {"format": "planctl-logical", "version": 1, "revision": "4150a15fd00a",
     "created": "2026-11-22T02:30:00.123456+00:00", "engine": "sqlite",
     "tables": ["clientes", "clientes_finales", ...]}
    {"table": "clientes", "columns": ["id", "empresa", ...]}
    [1, "Formación y Desarrollo, S.L.", ...]             one array a row, ordered by id
    {"end": "clientes", "rows": 12}
    ...                                                    each of "tables", in that order
    {"end": true, "sha256": "<hex sha256 of every byte before this line>"}

"tables" lists the tables in foreign-key order (parents first), the order they
are loaded in. Values follow the column's SQLAlchemy type: integers and text
as JSON numbers and strings, booleans as true/false, NULL as null, Numeric as
a string ("60.00", never a float), Date "YYYY-MM-DD", Time "HH:MM:SS[.ffffff]",
DateTime(timezone=True) as ISO 8601 in UTC with its offset
("2026-11-22T10:15:00+00:00"; SQLite stores naive UTC, read as UTC). The row
count in each footer and the final digest make a truncated or altered file
fail :func:`check` even without the store's sha256.

A dump reads one snapshot (PostgreSQL: REPEATABLE READ READ ONLY; SQLite: one
read transaction) and streams in batches; a restore empties and reloads the
tables in one transaction into a database at the file's Alembic revision, on
either engine, so a failure leaves the target as it was.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import itertools
import json
import operator
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from sqlalchemy import (
    Table,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from planctl.backup import tables
from planctl.backup.codec import JSON, Codec, Row, codec_for
from planctl.backup.compress import (
    SUFFIXES,
    Compression,
    CompressionError,
    compressing,
    decompressing,
    detect,
)
from planctl.backup.store import (
    BackupError,
    Dumped,
    DumpResult,
    digest_and_sync,
    utc_now,
)
from planctl.db import changelog
from planctl.db.bulk import load_rows
from planctl.errors import VerificationError
from planctl.hooks import NO_HOOKS, Hooks
from planctl.target import Target
from planctl.text import plural

if TYPE_CHECKING:
    from planctl.backup.crypto import Recipient
    from planctl.backup.delta import Delta
    from planctl.db.lockwait import LockWait

    Deltas = Sequence[tuple[str, Delta]]

NAME = "logical"
FORMAT = "planctl-logical"
VERSION = 1
#: gzip level 1, as the SQLite engine: on 1M demo sessions it shrinks the JSON
#: 12x in 0.5 s of CPU; level 6 is a quarter smaller but takes three times as
#: long (+10 % on the whole dump).
GZIP_LEVEL = 1
#: Rows per fetch and per parse. Small batches keep memory flat (one batch of
#: the widest table is the peak) and are faster too: with 5000 rows the dump of
#: 1M sessions took 9.4 s instead of 5.9 s (more live objects for the cyclic GC
#: to walk, worse cache locality); below 1000 a remote server costs more round trips.
BATCH = 1000
READ_CHUNK = 1 << 20
#: SQLite page cache while restoring: index inserts into a big table thrash
#: the default 2 MiB cache (64 MiB halves the load time of 1M sessions).
SQLITE_CACHE_KIB = 65536
DAMAGED_HINT = "restore another backup (planctl backup list)"


# --- dump -----------------------------------------------------------------------------------


def _line(value: Any) -> bytes:
    return (JSON.encode(value) + "\n").encode("utf-8")


def _schema(connection: Connection, target: Target) -> str | None:
    """The database's Alembic revision, after checking it has the models' ten tables."""
    from planctl.db.schema import TABLE_NAMES, metadata

    inspector = inspect(connection)
    existing = set(inspector.get_table_names())
    masked = target.masked
    missing = [name for name in TABLE_NAMES if name not in existing]
    if missing:
        raise BackupError(
            f"database {masked} has no planner schema (missing {', '.join(missing)})",
            "run planctl db-upgrade first",
        )
    for name in TABLE_NAMES:
        live = {c["name"] for c in inspector.get_columns(name)}
        known = {c.name for c in metadata.tables[name].columns}
        if live != known:
            extra, lacking = sorted(live - known), sorted(known - live)
            raise BackupError(
                f"table {name} of {masked} does not match this planctl's schema "
                f"(unknown columns: {', '.join(extra) or '-'}; "
                f"missing: {', '.join(lacking) or '-'})",
                "run planctl db-check, and planctl db-upgrade if it is behind",
            )
    return _revision(connection, existing)


def _revision(connection: Connection, existing: set[str]) -> str | None:
    if "alembic_version" not in existing:
        return None
    revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return None if revision is None else str(revision)


@contextlib.contextmanager
def _sink(
    into: Path, compressed: Compression, recipients: Sequence[Recipient] = ()
) -> Iterator[Callable[[bytes], Any]]:
    from planctl.backup.pipeline import sealed

    method = compressed
    with sealed(into, recipients) as raw:
        if method is Compression.NONE:
            yield raw.write
            return
        if method is Compression.ZSTD:
            with compressing(raw, method) as packed:
                yield packed.write
            return
        # filename="" keeps the temporary file's name out of the gzip header.
        with gzip.GzipFile(
            filename="", fileobj=raw, mode="wb", compresslevel=GZIP_LEVEL, mtime=0
        ) as packed:
            yield packed.write


# --- reading --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Header:
    revision: str | None
    created: str
    tables: tuple[str, ...]


@contextlib.contextmanager
def _lines(source: BinaryIO, name: str) -> Iterator[Iterator[bytes]]:
    """The lines of the stream *source* (from its start) as bytes; read and decompression
    errors become VerificationError."""
    from planctl.backup.pipeline import reading

    with reading(source) as raw:
        handle: Any = raw
        head = raw.read(4)
        raw.seek(0)
        found = detect(head)
        if found is Compression.GZIP:  # a C-level buffer on top: lines split without frames
            handle = io.BufferedReader(gzip.GzipFile(fileobj=raw, mode="rb"), READ_CHUNK)
        elif found is Compression.ZSTD:
            handle = decompressing(raw)
        try:
            yield itertools.chain.from_iterable(iter(lambda: handle.readlines(READ_CHUNK), []))
        except (EOFError, OSError, zlib.error, CompressionError) as error:
            what = "cannot be decompressed" if found is not Compression.NONE else "cannot be read"
            raise VerificationError(
                f"backup {name}: the data {what}: {error}", DAMAGED_HINT
            ) from error


@contextlib.contextmanager
def _opened(data_path: Path, name: str) -> Iterator[BinaryIO]:
    try:
        handle = open(data_path, "rb")  # noqa: SIM115 (closed below)
    except OSError as error:
        raise VerificationError(
            f"backup {name}: cannot open {data_path.name}: {error.strerror or error}",
            DAMAGED_HINT,
        ) from error
    with handle:
        yield handle


class _Reader:
    """Parses and checks a logical file; every problem is a VerificationError naming the backup."""

    def __init__(self, lines: Iterator[bytes], name: str) -> None:
        self._lines = lines
        self._name = name
        self._number = 0
        self._digest = hashlib.sha256()
        self.header = self._header()

    def _fail(self, problem: str, line: int | None = None) -> VerificationError:
        where = f" (line {line if line is not None else self._number})"
        return VerificationError(
            f"backup {self._name} is not a complete planctl-logical file: {problem}{where}",
            DAMAGED_HINT,
        )

    def _take(self, where: str, *, hashed: bool = True) -> bytes:
        line = next(self._lines, None)
        if line is None:
            raise self._fail(f"it ends early, {where} (truncated?)")
        self._number += 1
        if hashed:
            self._digest.update(line)
        return line

    def _object(self, line: bytes) -> dict[str, Any]:
        try:
            value = json.loads(line)
        except (ValueError, RecursionError) as error:
            raise self._fail(f"bad JSON: {error}") from error
        if not isinstance(value, dict):
            raise self._fail("expected a JSON object")
        return value

    def _header(self) -> Header:
        header = self._object(self._take("before the header"))
        if header.get("format") != FORMAT:
            raise self._fail(f"the first line is not a {FORMAT} header")
        version = header.get("version")
        if isinstance(version, int) and version > VERSION:
            raise VerificationError(
                f"backup {self._name} is format version {version}; this planctl reads {VERSION}",
                "upgrade planctl to restore it",
            )
        if version != VERSION:
            raise self._fail(f"unknown format version {version!r}")
        revision, created, tables = (header.get(k) for k in ("revision", "created", "tables"))
        if not (revision is None or isinstance(revision, str)) or not isinstance(created, str):
            raise self._fail("bad revision or created in the header")
        if not isinstance(tables, list) or not tables:
            raise self._fail("the header lists no tables")
        return Header(revision, created, self._table_order(tables))

    def _table_order(self, tables: list[Any]) -> tuple[str, ...]:
        from planctl.db.schema import TABLE_NAMES

        for table in tables:
            if table not in TABLE_NAMES:
                raise self._fail(f"unknown table {table!r}")
        positions = [TABLE_NAMES.index(t) for t in tables]
        if positions != sorted(set(positions)):
            raise self._fail("tables are repeated or not in foreign-key order")
        return tuple(tables)

    def _columns(self, expected: str) -> tuple[Table, tuple[str, ...]]:
        from planctl.db.schema import metadata

        start = self._object(self._take(f"before table {expected}"))
        if start.get("table") != expected:
            raise self._fail(f"expected table {expected!r}, found {start.get('table')!r}")
        table = metadata.tables[expected]
        columns = start.get("columns")
        if not isinstance(columns, list) or "id" not in columns:
            raise self._fail(f"table {expected}: no column list with id")
        for column in columns:
            if not isinstance(column, str) or column not in table.c:
                raise self._fail(f"unknown column {column!r} in table {expected}")
        if len(set(columns)) != len(columns):
            raise self._fail(f"table {expected}: repeated columns")
        return table, tuple(columns)

    def batches(self) -> Iterator[tuple[Table, tuple[str, ...], list[Row]]]:
        """Decoded rows, a batch at a time; raises at the end unless the file is complete."""
        update = self._digest.update
        for expected in self.header.tables:
            table, columns = self._columns(expected)
            codec = codec_for(table, columns)
            count, pending, first, footer = 0, [], self._number + 1, None
            for line in self._lines:  # the hot loop: one iteration per row
                update(line)
                if not line.startswith(b"["):
                    footer = line
                    break
                pending.append(line)
                if len(pending) == BATCH:
                    yield table, columns, self._decode(codec, pending, first)
                    count, first, pending = count + BATCH, first + BATCH, []
            self._number = first + len(pending) - (footer is None)
            if footer is None:
                raise self._fail(f"it ends early, inside table {expected} (truncated?)")
            if pending:
                yield table, columns, self._decode(codec, pending, first)
                count += len(pending)
            self._check_footer(self._object(footer), expected, count)
        self._finish()

    def _check_footer(self, footer: dict[str, Any], expected: str, count: int) -> None:
        if "end" not in footer:
            raise self._fail(f"expected a row or the footer of table {expected}")
        if footer["end"] != expected:
            raise self._fail(f"footer of {footer['end']!r} inside table {expected}")
        if footer.get("rows") != count:
            raise self._fail(
                f"table {expected} has {plural(count, 'row')}, "
                f"its footer says {footer.get('rows')!r}"
            )

    def _finish(self) -> None:
        """After the last table: the end marker, its digest, and nothing after it."""
        digest = self._digest.hexdigest()
        end = self._object(self._take("before the end marker", hashed=False))
        if end.get("end") is not True:
            raise self._fail("missing end marker after the last table")
        if end.get("sha256") != digest:
            raise self._fail("content does not match the end marker's sha256 (altered?)")
        if next(self._lines, None) is not None:
            raise self._fail("data after the end marker", self._number + 1)

    def _decode(self, codec: Codec, lines: list[bytes], first: int) -> list[Row]:
        try:
            rows = json.loads(b"[" + b",".join(lines) + b"]")
        except (ValueError, RecursionError):
            rows = None
        if rows is None or len(rows) != len(lines):
            for offset, line in enumerate(lines):  # find the culprit line
                try:
                    json.loads(line)
                except (ValueError, RecursionError) as error:
                    raise self._fail(f"bad JSON: {error}", first + offset) from error
            raise self._fail("a line holds more than one row", first)
        decoded = []
        for offset, values in enumerate(rows):
            if type(values) is not list:
                raise self._fail(
                    f"table {codec.table.name}: a row is not a JSON array", first + offset
                )
            try:
                decoded.append(codec.decode_in_place(values))
            except ValueError as error:
                raise self._fail(f"table {codec.table.name}: {error}", first + offset) from error
        return decoded


def read_header(data_path: Path, compressed: Compression, name: str) -> Header:
    """Only the header: format version, revision, creation time, tables."""
    with _opened(data_path, name) as source, _lines(source, name) as lines:
        return _Reader(lines, name).header


# --- restore --------------------------------------------------------------------------------


def _require_revision(connection: Connection, header: Header, target: Target, name: str) -> None:
    from planctl.db.migrate import revision_hint
    from planctl.db.schema import TABLE_NAMES

    existing = set(inspect(connection).get_table_names())
    current = _revision(connection, existing)
    if current != header.revision:
        raise BackupError(
            f"backup {name} is at schema revision {header.revision or '<none>'}, "
            f"database {target.masked} is at {current or '<none>'}",
            revision_hint(header.revision, current),
        )
    missing = [t for t in TABLE_NAMES if t not in existing]
    if missing:
        raise BackupError(
            f"database {target.masked} lacks tables {', '.join(missing)}",
            "run planctl db-upgrade first",
        )


class LogicalEngine:
    """The planner's tables as JSON Lines: dumped from either engine's snapshot, checked
    by parsing every line, restored in one transaction into either engine."""

    name = NAME

    def __init__(self, hooks: Hooks = NO_HOOKS, lock_wait: LockWait | None = None) -> None:
        self.checkpoint = hooks.checkpoint
        self.lock_wait = lock_wait

    def data_suffix(self, compressed: Compression) -> str:
        return ".jsonl" + SUFFIXES[compressed]

    def dump(
        self,
        target: Target,
        into: Path,
        *,
        compressed: Compression,
        verify: bool,
        in_snapshot: Callable[[Connection], None] | None = None,
        recipients: Sequence[Recipient] = (),
    ) -> Dumped:
        result = self._write(target, into, compressed, in_snapshot, recipients)
        if verify and not recipients:  # encrypted: the writer's own end marker and sha256
            with _opened(into, into.name) as written:
                self.check(written, compressed, into.name)
        self.checkpoint("verified")
        sha, size = digest_and_sync(into)
        return Dumped(result, sha, size)

    def _write(
        self,
        target: Target,
        into: Path,
        compressed: Compression,
        in_snapshot: Callable[[Connection], None] | None = None,
        recipients: Sequence[Recipient] = (),
    ) -> DumpResult:
        """Write every planner table to *into* from one snapshot (encrypted to *recipients*
        as it is written); what was read there.

        *in_snapshot(connection)* runs at the end, inside the snapshot's transaction.
        """
        from planctl.db import identity
        from planctl.db.engine import connect
        from planctl.db.schema import TABLE_NAMES, metadata

        counts: dict[str, int] = {}
        with connect(target, snapshot=True, read_only=in_snapshot is None) as connection:
            engine = connection.dialect.name
            # SQLite: the BEGIN planctl's engine emits plus this first read pin the snapshot.
            revision = _schema(connection, target)
            database_id = identity.read(connection)
            digest = hashlib.sha256()
            with _sink(into, compressed, recipients) as write:

                def emit(data: bytes) -> None:
                    digest.update(data)
                    write(data)

                emit(
                    _line(
                        {
                            "format": FORMAT,
                            "version": VERSION,
                            "revision": revision,
                            "created": utc_now().isoformat(),
                            "engine": engine,
                            "tables": list(TABLE_NAMES),
                        }
                    )
                )
                for name in TABLE_NAMES:
                    table = metadata.tables[name]
                    codec = codec_for(table)
                    emit(_line({"table": name, "columns": list(codec.columns)}))
                    query = select(table).order_by(table.c.id)
                    result = connection.execute(query, execution_options={"yield_per": BATCH})
                    count = 0
                    for rows in result.partitions():
                        lines = [JSON.encode(codec.encode(row)) for row in rows]
                        emit(("\n".join(lines) + "\n").encode("utf-8"))
                        count += len(lines)
                    emit(_line({"end": name, "rows": count}))
                    counts[name] = count
                    self.checkpoint("logical-table-dumped")
                write(_line({"end": True, "sha256": digest.hexdigest()}))
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
        """Parse and decode the whole stream; VerificationError naming *name* if incomplete."""
        with _lines(source, name) as lines:
            for _ in _Reader(lines, name).batches():
                pass

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
        """Replace the planner tables' rows with the backup's, then apply *deltas*, all in one
        transaction on either engine; the rows the deltas touched. The transaction is an
        attempt of planctl.db.lockwait: its lock waits are short, retried per *lock_wait*."""
        from planctl.db import lockwait

        def attempt(seconds: float) -> int:
            return self._restore_once(target, source, name, deltas, seconds)

        subject = lockwait.subject_for(target)
        wait = self.lock_wait or lockwait.LockWait()
        return lockwait.retry(wait, subject, f"restore of {name}", attempt)

    def _restore_once(
        self, target: Target, source: BinaryIO, name: str, deltas: Deltas, lock_timeout: float
    ) -> int:
        from planctl.backup import delta as delta_module
        from planctl.db.engine import connect

        # SQLite: foreign keys are checked once at the end instead of row by row,
        # which also lets SQLite empty a table without visiting its rows.
        touched = 0
        with (
            _lines(source, name) as lines,
            connect(
                target, foreign_keys=False, immediate=True, lock_timeout=lock_timeout
            ) as connection,
        ):
            reader = _Reader(lines, name)
            _require_revision(connection, reader.header, target, name)
            postgres = connection.dialect.name == "postgresql"
            logged = changelog.installed(connection)
            try:
                if not postgres:
                    connection.exec_driver_sql(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
                if logged:  # a restore is not a change to log row by row: the log restarts after it
                    changelog.drop_triggers(connection, reader.header.tables)
                tables.empty(connection, reader.header.tables)
                groups = itertools.groupby(reader.batches(), key=operator.itemgetter(0, 1))
                for (table, columns), group in groups:
                    load_rows(connection, table, columns, (rows for _, _, rows in group))
                if postgres:
                    tables.continue_sequences(connection, reader.header.tables)
                else:
                    tables.check_foreign_keys(connection, name)
                self.checkpoint("logical-loaded")
                for delta_name, delta in deltas:
                    touched += delta_module.apply(connection, delta, delta_name)
                    self.checkpoint("delta-applied")
                if logged:
                    changelog.install_triggers(connection, reader.header.tables)
                    changelog.move_anchor(connection, None, None)
            except DBAPIError as error:
                reason = " ".join(str(error.orig).split())[:300]
                raise BackupError(
                    f"restore of backup {name} into {target.masked} failed: {reason}",
                    "the database was left unchanged",
                ) from error
            self.checkpoint("logical-restored")
        return touched
