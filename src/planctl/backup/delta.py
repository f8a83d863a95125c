"""Delta backups: the rows changed since the previous backup of the chain.

A delta is one JSON document (gzipped by default)::

    {"format": "planctl-delta", "version": 1, "type": "delta",
     "timestamp": "2026-11-22T14:05:00.123456+00:00",
     "parent": "20261122-140000-full", "parent_sha256": "<hex>",
     "revision": "7c2e5a9d41b8", "engine": "sqlite",
     "tables": {"sesiones": {"columns": ["id", ...],
                             "upserts": [[17, ...], ...], "deletes": [2, 3]}}}

Rows use the logical format's codec (:mod:`planctl.backup.codec`):
plain JSON, typed by the column, never pickle. Which rows changed comes from
the change log (:mod:`planctl.db.changelog`), so writing a delta costs what
changed, not the size of the database: each logged id is fetched by primary
key; an id whose row is gone is a delete.

Applying (:func:`apply_delta`) runs in one transaction: deletes children
first, then ``INSERT … ON CONFLICT (id) DO UPDATE`` parents first (never
delete + insert, which would cascade to children the delta does not carry).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from sqlalchemy import Table, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from planctl.backup import tables as table_ops
from planctl.backup.codec import JSON, codec_for
from planctl.backup.compress import (
    SUFFIXES,
    Compression,
    CompressionError,
    compressing,
    decompressing,
)
from planctl.backup.store import BackupError
from planctl.errors import VerificationError
from planctl.target import Target

if TYPE_CHECKING:
    from planctl.backup.crypto import Recipient

FORMAT = "planctl-delta"
VERSION = 1
GZIP_LEVEL = 6  # deltas are small: the better ratio costs nothing noticeable
FETCH = 500  # ids per ``WHERE id IN (…)``
DAMAGED_HINT = "the chain is broken from here on; restore an earlier backup (planctl backup list)"


def data_suffix(compressed: Compression) -> str:
    return ".delta.json" + SUFFIXES[compressed]


@dataclass
class TableChanges:
    columns: tuple[str, ...]
    upserts: list[list[Any]] = field(default_factory=list)  # decoded (Python) values
    deletes: list[int] = field(default_factory=list)


@dataclass
class Delta:
    timestamp: str
    parent: str
    parent_sha256: str
    revision: str | None
    engine: str
    tables: dict[str, TableChanges]

    @property
    def changes(self) -> int:
        return sum(len(t.upserts) + len(t.deletes) for t in self.tables.values())

    def counts(self) -> dict[str, dict[str, int]]:
        return {
            name: {"upserts": len(t.upserts), "deletes": len(t.deletes)}
            for name, t in self.tables.items()
        }


# --- write ----------------------------------------------------------------------------------


def collect(connection: Connection, changed: dict[str, list[int]]) -> dict[str, dict[str, Any]]:
    """The JSON-ready ``tables`` section for the logged ids, read in *connection*'s snapshot."""
    from planctl.db.changelog import logged_table, logged_tables

    tables: dict[str, dict[str, Any]] = {}
    for name in logged_tables():  # parents first, as they are applied
        ids = changed.get(name)
        if not ids:
            continue
        table = logged_table(name)
        codec = codec_for(table)
        upserts: list[list[Any]] = []
        found: set[int] = set()
        for start in range(0, len(ids), FETCH):
            chunk = ids[start : start + FETCH]
            rows = connection.execute(
                select(table).where(table.c.id.in_(chunk)).order_by(table.c.id)
            )
            for row in rows:
                upserts.append(codec.encode(row))
                found.add(row.id)
        deletes = [i for i in ids if i not in found]
        tables[name] = {"columns": list(codec.columns), "upserts": upserts, "deletes": deletes}
    return tables


def write(
    into: Path,
    compressed: Compression,
    *,
    timestamp: str,
    parent: str,
    parent_sha256: str,
    revision: str | None,
    engine: str,
    tables: dict[str, dict[str, Any]],
    recipients: Sequence[Recipient] = (),
) -> None:
    """Write the delta into *into*, encrypted to *recipients* as it is written."""
    from planctl.backup.pipeline import sealed

    document = {
        "format": FORMAT,
        "version": VERSION,
        "type": "delta",
        "timestamp": timestamp,
        "parent": parent,
        "parent_sha256": parent_sha256,
        "revision": revision,
        "engine": engine,
        "tables": tables,
    }
    data = (JSON.encode(document) + "\n").encode("utf-8")
    method = compressed
    with sealed(into, recipients) as raw:
        if method is Compression.GZIP:
            with gzip.GzipFile(
                filename="", fileobj=raw, mode="wb", compresslevel=GZIP_LEVEL, mtime=0
            ) as packed:
                packed.write(data)
        else:
            with compressing(raw, method) as packed:
                packed.write(data)


# --- read -----------------------------------------------------------------------------------


def _fail(name: str, problem: str) -> VerificationError:
    return VerificationError(f"delta {name} is damaged: {problem}", DAMAGED_HINT)


def read(path: Path, name: str | None = None) -> Delta:
    """Parse and type-check a delta file completely; VerificationError naming it if it is bad."""
    label = name or path.name
    try:
        with open(path, "rb") as handle:
            return parse(handle, label)
    except FileNotFoundError as error:
        raise VerificationError(f"delta file {path} is missing", DAMAGED_HINT) from error
    except OSError as error:
        raise _fail(label, f"cannot read it ({error})") from error


def parse(source: BinaryIO, label: str) -> Delta:
    """A delta from the stream *source* (its decrypted bytes, from the start)."""
    from planctl.db.changelog import logged_table, logged_tables

    try:
        document = json.loads(decompressing(source).read())
    except (OSError, EOFError, ValueError, RecursionError, CompressionError) as error:
        raise _fail(label, f"cannot read it ({error})") from error
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise _fail(label, f"not a {FORMAT} document")
    if document.get("version") != VERSION:
        raise _fail(label, f"unknown format version {document.get('version')!r}")
    strings = ("timestamp", "parent", "parent_sha256", "engine")
    if not all(isinstance(document.get(key), str) for key in strings):
        raise _fail(label, "header fields missing")
    revision = document.get("revision")
    if revision is not None and not isinstance(revision, str):
        raise _fail(label, "bad revision")
    raw_tables = document.get("tables")
    if not isinstance(raw_tables, dict):
        raise _fail(label, "no tables")
    tables: dict[str, TableChanges] = {}
    for table_name, section in raw_tables.items():
        if table_name not in logged_tables() or not isinstance(section, dict):
            raise _fail(label, f"unknown table {table_name!r}")
        tables[table_name] = _read_table(label, logged_table(table_name), section)
    return Delta(
        timestamp=document["timestamp"],
        parent=document["parent"],
        parent_sha256=document["parent_sha256"],
        revision=revision,
        engine=document["engine"],
        tables=tables,
    )


def _read_table(label: str, table: Table, section: dict[str, Any]) -> TableChanges:
    columns, upserts, deletes = (section.get(k) for k in ("columns", "upserts", "deletes"))
    if (
        not isinstance(columns, list)
        or "id" not in columns
        or not all(isinstance(c, str) and c in table.c for c in columns)
        or len(set(columns)) != len(columns)
    ):
        raise _fail(label, f"table {table.name}: bad column list")
    if not isinstance(upserts, list) or not isinstance(deletes, list):
        raise _fail(label, f"table {table.name}: upserts and deletes must be arrays")
    if not all(type(i) is int for i in deletes):
        raise _fail(label, f"table {table.name}: deletes must be integer ids")
    codec = codec_for(table, tuple(columns))
    decoded = []
    for number, row in enumerate(upserts, 1):
        if type(row) is not list:
            raise _fail(label, f"table {table.name}: upsert {number} is not an array")
        try:
            decoded.append(codec.decode_in_place(row))
        except ValueError as error:
            raise _fail(label, f"table {table.name}, upsert {number}: {error}") from error
    return TableChanges(tuple(columns), decoded, list(deletes))


# --- apply ----------------------------------------------------------------------------------


def _upsert(connection: Connection, table: Table, columns: tuple[str, ...], rows: list[Any]) -> int:
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement: Any = dialect.insert(table)
    updates = {c: statement.excluded[c] for c in columns if c != "id"}
    statement = statement.on_conflict_do_update(index_elements=[table.c.id], set_=updates)
    touched = 0
    for start in range(0, len(rows), 1000):
        batch = [dict(zip(columns, row, strict=True)) for row in rows[start : start + 1000]]
        connection.execute(statement, batch)  # executemany: the driver's rowcount is -1
        touched += len(batch)
    return touched


def _park_unique_values(
    connection: Connection, table: Table, columns: tuple[str, ...], rows: list[Any]
) -> None:
    """Move the UNIQUE values of the rows about to be rewritten out of each other's way.

    Upserts run row by row, so two rows that exchange a unique value (two
    clients swapping their CIF) would collide on the first one. The existing
    rows among *rows* first get a placeholder in one column of each unique
    constraint (NULL where the column allows it, else ``~planctl~<id>``);
    their upserts then write the real values.
    """
    from sqlalchemy import String, UniqueConstraint, literal, null

    values: dict[str, Any] = {}
    for constraint in table.constraints:
        if not isinstance(constraint, UniqueConstraint):
            continue
        members = list(constraint.columns)
        if not all(c.name in columns for c in members):  # the upserts would not restore it
            continue
        nullable = [c for c in members if c.nullable]
        texts = [c for c in members if isinstance(c.type, String)]
        if nullable:
            values[nullable[0].name] = null()
        elif texts:
            values[texts[0].name] = literal("~planctl~") + table.c.id.cast(String)
    if not values:
        return
    for column in table.columns:  # keep updated_at & co. as they are (no onupdate)
        if column.onupdate is not None and column.name not in values:
            values[column.name] = column
    position = columns.index("id")
    ids = [row[position] for row in rows]
    for start in range(0, len(ids), FETCH):
        chunk = ids[start : start + FETCH]
        connection.execute(table.update().where(table.c.id.in_(chunk)).values(values))


def _delete(connection: Connection, table: Table, ids: list[int]) -> int:
    touched = 0
    for start in range(0, len(ids), FETCH):
        chunk = ids[start : start + FETCH]
        touched += connection.execute(table.delete().where(table.c.id.in_(chunk))).rowcount or 0
    return touched


def apply(connection: Connection, delta: Delta, name: str) -> int:
    """Apply *delta* inside *connection*'s transaction; the rows touched (upserted + deleted)."""
    from planctl.db.changelog import logged_table, logged_tables

    order = [t for t in logged_tables() if t in delta.tables]
    touched = 0
    for table_name in reversed(order):  # children first
        touched += _delete(connection, logged_table(table_name), delta.tables[table_name].deletes)
    for table_name in order:  # parents first
        changes = delta.tables[table_name]
        if changes.upserts:
            table = logged_table(table_name)
            _park_unique_values(connection, table, changes.columns, changes.upserts)
            touched += _upsert(connection, table, changes.columns, changes.upserts)
    if connection.dialect.name == "postgresql":
        table_ops.continue_sequences(connection, order)
    else:
        table_ops.check_foreign_keys(connection, name)
    return touched


def current_revision(connection: Connection) -> str | None:
    from sqlalchemy import inspect

    if "alembic_version" not in inspect(connection).get_table_names():
        return None
    value = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return None if value is None else str(value)


def apply_delta(target: Target, path: Path | str) -> int:
    """Apply one delta file to the database in one transaction; return the rows touched.

    The database must be at the delta's schema revision and hold its parent's
    state (restore the chain's full backup and the deltas before it first:
    ``planctl backup restore NAME`` does exactly that).
    """
    path = Path(path)
    delta = read(path)
    return apply_deltas(target, [(path.name, delta)])


def apply_deltas(target: Target, deltas: Iterable[tuple[str, Delta]]) -> int:
    """Apply deltas in order, in one transaction (all or nothing)."""
    from planctl.db.engine import connect

    with connect(target, foreign_keys=False, immediate=True) as connection:
        return apply_all(connection, deltas, target.masked)


def apply_all(connection: Connection, deltas: Iterable[tuple[str, Delta]], where: str) -> int:
    """Apply deltas in order inside *connection*'s transaction (*where*: the database as
    messages name it); the rows touched."""
    touched = 0
    revision = current_revision(connection)
    for name, delta in deltas:
        if delta.revision != revision:
            raise BackupError(
                f"delta {name} is at schema revision {delta.revision or '<none>'}; "
                f"{where} is at {revision or '<none>'}",
                f"run planctl db-upgrade {delta.revision} (or db-downgrade) on it first",
            )
        try:
            touched += apply(connection, delta, name)
        except DBAPIError as error:
            reason = " ".join(str(error.orig).split())[:300]
            raise BackupError(
                f"applying delta {name} to {where} failed: {reason}",
                "the database was left unchanged",
            ) from error
    return touched
