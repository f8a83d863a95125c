"""The row codec of logical backups and deltas: a column's value as plain JSON and back.

Values follow the column's SQLAlchemy type: integers and text as JSON numbers
and strings, booleans as true/false, NULL as null, Numeric as a string
("60.00", never a float), Date "YYYY-MM-DD", Time "HH:MM:SS[.ffffff]",
DateTime(timezone=True) as ISO 8601 in UTC with its offset. Plain JSON, never
pickle: reading a backup cannot run code.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Boolean, Column, Date, DateTime, Float, Integer, Numeric, String, Table, Time

from planctl.db.bulk import MEMO_LIMIT, isoformat, memoized

Row = list[Any]
Convert = Callable[[Any], Any]

JSON = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False, check_circular=False
)
UTC = dt.UTC

# --- values ---------------------------------------------------------------------------------

JSON_NAMES = {
    int: "an integer",
    str: "a string",
    bool: "a boolean",
    float: "a number",
    list: "an array",
    dict: "an object",
    type(None): "null",
}


def _encode_decimal(value: Any) -> str:
    if isinstance(value, float):  # a raw SQLite REAL: its shortest repr is the stored number
        value = Decimal(repr(value))
    return format(value, "f")


def _encode_timestamp(value: dt.datetime) -> str:
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.isoformat()


def _decode_decimal(value: str) -> Decimal:
    number = Decimal(value)
    if not number.is_finite():
        raise ValueError(f"not a finite decimal: {value!r}")
    return number


def _decode_timestamptz(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp {value!r} has no UTC offset")
    return parsed.astimezone(UTC)


def _decode_timestamp(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value)
    if parsed.tzinfo is not None:
        raise ValueError(f"timestamp {value!r} has an offset; the column has no time zone")
    return parsed


@dataclass(frozen=True)
class _Kind:
    """How one column type travels: JSON type, Python → JSON, JSON → Python."""

    json_type: type
    encode: Convert | None = None  # None: the Python value is JSON already
    decode: Convert | None = None  # None: the JSON value is the Python value


def _kind(column: Column[Any]) -> _Kind:
    kind = column.type
    if isinstance(kind, Boolean):
        return _Kind(bool, bool)
    if isinstance(kind, DateTime):
        if kind.timezone:
            return _Kind(str, memoized(_encode_timestamp), memoized(_decode_timestamptz))
        return _Kind(str, memoized(isoformat), memoized(_decode_timestamp))
    if isinstance(kind, Date):
        return _Kind(str, memoized(isoformat), memoized(dt.date.fromisoformat))
    if isinstance(kind, Time):
        return _Kind(str, memoized(isoformat), memoized(dt.time.fromisoformat))
    if isinstance(kind, Numeric) and not isinstance(kind, Float):
        return _Kind(str, _encode_decimal, memoized(_decode_decimal))
    if isinstance(kind, Integer):
        return _Kind(int)
    if isinstance(kind, String):
        return _Kind(str)
    raise TypeError(f"column {column} has a type the logical format does not carry: {kind}")


@dataclass(frozen=True)
class Codec:
    """Encodes and decodes the values of some columns of one table, in a fixed order."""

    table: Table
    columns: tuple[str, ...]
    encoders: tuple[tuple[int, Convert], ...]
    decoders: tuple[tuple[int, Convert], ...]
    allowed: tuple[frozenset[type], ...]  # JSON types per column (NoneType if nullable)
    signatures: set[tuple[type, ...]] = field(default_factory=set)  # rows' types seen valid

    def encode(self, row: Sequence[Any]) -> Row:
        values = list(row)
        if len(values) != len(self.columns):
            raise ValueError(f"{self.table.name}: expected {len(self.columns)} values")
        for i, encode in self.encoders:
            value = values[i]
            if value is not None:
                values[i] = encode(value)
        return values

    def decode_in_place(self, row: Row) -> Row:
        """Check the JSON types of *row* and turn its values into Python values."""
        signature = tuple(map(type, row))
        if signature not in self.signatures:
            self._check_signature(signature)
        for i, decode in self.decoders:
            value = row[i]
            if value is not None:
                try:
                    row[i] = decode(value)
                except (ValueError, ArithmeticError) as error:
                    raise ValueError(f"{self.columns[i]}: {error}") from error
        return row

    def _check_signature(self, signature: tuple[type, ...]) -> None:
        if len(signature) != len(self.columns):
            raise ValueError(f"expected {len(self.columns)} values, got {len(signature)}")
        for name, allowed, found in zip(self.columns, self.allowed, signature, strict=True):
            if found not in allowed:
                if found is type(None):
                    raise ValueError(f"{name} is null but the column is NOT NULL")
                wanted = " or ".join(sorted(JSON_NAMES[t] for t in allowed))
                raise ValueError(f"{name} must be {wanted}, not {JSON_NAMES.get(found, found)}")
        if len(self.signatures) < MEMO_LIMIT:
            self.signatures.add(signature)


@functools.cache
def codec_for(table: Table, columns: tuple[str, ...] | None = None) -> Codec:
    names = tuple(c.name for c in table.columns) if columns is None else columns
    encoders, decoders, allowed = [], [], []
    for i, name in enumerate(names):
        column = table.c[name]
        kind = _kind(column)
        if kind.encode is not None:
            encoders.append((i, kind.encode))
        if kind.decode is not None:
            decoders.append((i, kind.decode))
        allowed.append(
            frozenset({kind.json_type, type(None)} if column.nullable else {kind.json_type})
        )
    return Codec(table, names, tuple(encoders), tuple(decoders), tuple(allowed))


def encode_row(table: Table, row: Sequence[Any]) -> list[Any]:
    """A row's values (in ``table.columns`` order) as JSON-ready values, same order."""
    return codec_for(table).encode(row)


def decode_row(table: Table, values: Sequence[Any]) -> dict[str, Any]:
    """JSON values (in ``table.columns`` order) back to Python values, keyed by column.

    Raises ValueError when a value does not fit its column (wrong JSON type,
    malformed date, null in a NOT NULL column). Timestamps come back aware, in UTC.
    """
    codec = codec_for(table)
    return dict(zip(codec.columns, codec.decode_in_place(list(values)), strict=True))
