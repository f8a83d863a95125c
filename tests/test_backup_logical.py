"""The logical (JSON Lines) backup engine: round trips, cross-engine moves, damage, memory."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, text

from planctl.backup import codec
from planctl.backup.compress import Compression
from planctl.backup.logical_engine import LogicalEngine, read_header
from planctl.backup.options import BackupOptions
from planctl.backup.store import BackupError
from planctl.db import migrate
from planctl.db.engine import connect
from planctl.db.schema import TABLE_NAMES, metadata
from planctl.db.seed import seed
from planctl.errors import VerificationError
from planctl.hooks import Hooks

from .helpers import table_contents, target_of

NAME = "20261122-023000-full"
Contents = dict[str, list[tuple[Any, ...]]]


def _dump(
    url: str, path: Path, compressed: Compression = Compression.NONE
) -> tuple[str | None, dict[str, int]]:
    path.touch()  # the caller (the backup service) hands over an existing empty file
    dumped = LogicalEngine().dump(target_of(url), path, compressed=compressed, verify=False)
    return dumped.result.revision, dumped.result.row_counts


def _restore(url: str, path: Path, compressed: Compression = Compression.NONE) -> None:
    with open(path, "rb") as source:
        LogicalEngine().restore(target_of(url), source, compressed, NAME)


def _check(path: Path, compressed: Compression) -> None:
    with open(path, "rb") as source:
        LogicalEngine().check(source, compressed, NAME)


def _sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def _in_utc(contents: Contents) -> Contents:
    """Timestamps as aware UTC: SQLite gives naive UTC, PostgreSQL aware ones."""

    def utc(value: Any) -> Any:
        if isinstance(value, dt.datetime):
            return (
                value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
            )
        return value

    return {name: [tuple(map(utc, row)) for row in rows] for name, rows in contents.items()}


def _change_everything(url: str) -> None:
    with connect(target_of(url)) as connection:
        connection.execute(text("DELETE FROM sesiones WHERE id % 3 = 0"))
        connection.execute(text("UPDATE clientes SET notas = 'cambiado, después' WHERE id = 1"))
        connection.execute(text("INSERT INTO temas (nombre) VALUES ('Tema nuevo')"))
        connection.execute(text("UPDATE contrataciones SET precio_hora = 1 WHERE id = 2"))


def _lines(path: Path, compressed: Compression = Compression.NONE) -> list[Any]:
    data = path.read_bytes()
    if compressed is Compression.GZIP:
        data = gzip.decompress(data)
    return [json.loads(line) for line in data.split(b"\n") if line]


def _write(path: Path, values: list[Any]) -> None:
    """Write parsed lines back as a logical file, with a fresh end-marker digest."""
    body = b"".join(
        (json.dumps(v, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        for v in values[:-1]
    )
    end = dict(values[-1], sha256=hashlib.sha256(body).hexdigest())
    path.write_bytes(body + (json.dumps(end) + "\n").encode())


def _section(values: list[Any], table: str) -> tuple[int, int]:
    """Indexes of a table's start line and footer line."""
    start = next(i for i, v in enumerate(values) if isinstance(v, dict) and v.get("table") == table)
    end = next(i for i, v in enumerate(values) if isinstance(v, dict) and v.get("end") == table)
    return start, end


# --- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize("compressed", [Compression.NONE, Compression.GZIP], ids=["plain", "gzip"])
def test_dump_change_restore_gives_back_every_row(
    seeded_url: str, tmp_path: Path, compressed: Compression
) -> None:
    before = table_contents(seeded_url)
    path = tmp_path / ("dump" + LogicalEngine().data_suffix(compressed))
    revision, counts = _dump(seeded_url, path, compressed)
    assert revision == migrate.head_revision()
    assert counts == {name: len(rows) for name, rows in before.items()}
    assert counts["sesiones"] == 320
    _check(path, compressed)

    _change_everything(seeded_url)
    assert table_contents(seeded_url) != before
    _restore(seeded_url, path, compressed)
    assert table_contents(seeded_url) == before


def test_data_suffix() -> None:
    assert LogicalEngine().data_suffix(Compression.GZIP) == ".jsonl.gz"
    assert LogicalEngine().data_suffix(Compression.NONE) == ".jsonl"


def test_sqlite_to_postgresql_and_back(tmp_path: Path, pg_database: str, pg_admin_url: str) -> None:
    """A move between engines keeps every row; the file does not depend on its source."""
    import psycopg

    source = _sqlite_url(tmp_path / "source.db")
    migrate.upgrade(target_of(source))
    seed(target_of(source))
    # A server in another time zone hands out +05:30 datetimes: the file must still say UTC.
    database = pg_database.rsplit("/", 1)[1]
    with psycopg.connect(pg_admin_url.replace("+psycopg", ""), autocommit=True) as admin:
        admin.execute(f"ALTER DATABASE \"{database}\" SET timezone = 'Asia/Kolkata'")
    original = table_contents(source)
    from_sqlite = tmp_path / "from-sqlite.jsonl"
    _dump(source, from_sqlite)

    migrate.upgrade(target_of(pg_database))
    _restore(pg_database, from_sqlite)
    on_postgres = table_contents(pg_database)
    assert _in_utc(on_postgres) == _in_utc(original)
    for name in TABLE_NAMES:  # row by row, so a failure names the first differing row
        for moved, kept in zip(_in_utc(on_postgres)[name], _in_utc(original)[name], strict=True):
            assert moved == kept, name
    assert on_postgres["sesiones"][0][-1].utcoffset() == dt.timedelta(hours=5, minutes=30)

    from_postgres = tmp_path / "from-postgres.jsonl"
    _dump(pg_database, from_postgres)
    target = _sqlite_url(tmp_path / "target.db")
    migrate.upgrade(target_of(target))
    _restore(target, from_postgres)
    assert table_contents(target) == original  # naive UTC again, exactly the source's values
    # Engine-neutral: the same data gives the same rows whichever engine wrote them.
    assert _lines(from_postgres)[1:-1] == _lines(from_sqlite)[1:-1]


def test_postgresql_to_sqlite_keeps_microseconds(tmp_path: Path, pg_database: str) -> None:
    migrate.upgrade(target_of(pg_database))
    seed(
        target_of(pg_database)
    )  # PostgreSQL's CURRENT_TIMESTAMP has microseconds, SQLite's has none
    with connect(target_of(pg_database)) as connection:
        connection.execute(
            text("UPDATE sesiones SET updated_at = '2026-03-29 00:59:59.999999+00' WHERE id = 7")
        )
    original = table_contents(pg_database)
    path = tmp_path / "pg.jsonl.gz"
    _dump(pg_database, path, compressed=Compression.GZIP)
    target = _sqlite_url(tmp_path / "target.db")
    migrate.upgrade(target_of(target))
    _restore(target, path, compressed=Compression.GZIP)
    moved = table_contents(target)
    assert _in_utc(moved) == _in_utc(original)
    assert moved["sesiones"][6][-1] == dt.datetime(2026, 3, 29, 0, 59, 59, 999999)


def test_new_rows_continue_after_the_restored_ids(tmp_path: Path, pg_database: str) -> None:
    """PostgreSQL sequences are moved past the restored ids (SQLite does that by itself)."""
    source = _sqlite_url(tmp_path / "source.db")
    migrate.upgrade(target_of(source))
    seed(target_of(source))
    path = tmp_path / "dump.jsonl"
    _, counts = _dump(source, path)
    migrate.upgrade(target_of(pg_database))  # a fresh database: every sequence would start at 1
    _restore(pg_database, path)
    temas = metadata.tables["temas"]
    with connect(target_of(pg_database)) as connection:
        new_id = connection.execute(
            insert(temas).values(nombre="Tema nuevo").returning(temas.c.id)
        ).scalar_one()
        assert new_id == counts["temas"] + 1
        for name in TABLE_NAMES:
            highest = connection.execute(text(f"SELECT coalesce(max(id), 0) FROM {name}")).scalar()
            following = connection.execute(
                text(f"SELECT nextval(pg_get_serial_sequence('{name}', 'id'))")
            ).scalar()
            assert highest is not None and following == highest + 1, name


@pytest.fixture
def edge_url(migrated_url: str) -> str:
    """A database holding the values most likely to be bent on the way between engines."""
    text_value = "Sesión «práctica» 😀 \"dobles\" 'simples'\nnueva línea\ttab \\ barra \u2028 fin"
    stamp = dt.datetime(2026, 3, 29, 0, 59, 59, 999999, tzinfo=dt.UTC)
    rows: dict[str, list[dict[str, Any]]] = {
        "clientes": [
            {"id": 1, "empresa": "Sólo obligatorio"},
            {"id": 2, "empresa": text_value, "notas": text_value, "color_hex": "#ffffff"},
        ],
        "temas": [{"id": 1, "nombre": "Tema"}],
        "formaciones": [
            {"id": 1, "tema_id": 1, "nombre": "Nula"},
            {"id": 2, "tema_id": 1, "nombre": "Grande", "horas_referencia": Decimal("9999.99")},
        ],
        "contrataciones": [
            {
                "id": 1,
                "cliente_id": 1,
                "formacion_id": 1,
                "expediente": "EXP-1",
                "precio_hora": Decimal("0.01"),
                "horas_previstas": Decimal("99999.99"),
            },
            {
                "id": 2,
                "cliente_id": 2,
                "formacion_id": 2,
                "expediente": "EXP-2",
                "precio_hora": Decimal("99999999.99"),
                "fecha_inicio_prevista": dt.date(2026, 2, 28),
                "fecha_fin_prevista": dt.date(2028, 2, 29),
            },
        ],
        "sesiones": [
            {
                "id": 1,
                "contratacion_id": 1,
                "fecha": dt.date(2026, 12, 31),
                "hora_inicio": dt.time(0, 0),
                "hora_fin": dt.time(23, 59, 59, 999999),
                "notas": text_value,
                "created_at": stamp,
                "updated_at": stamp,
            },
            {
                "id": 1000,
                "contratacion_id": 2,
                "fecha": dt.date(2027, 1, 1),
                "hora_inicio": dt.time(9, 30, 0, 123456),
                "hora_fin": dt.time(10, 0),
            },
        ],
        "interacciones": [
            {"id": 1, "cliente_id": 1, "fecha": dt.date(2026, 1, 1), "crear_recordatorio": True},
            {"id": 2, "cliente_id": 2, "fecha": dt.date(2026, 1, 2)},  # server default: false
        ],
    }
    with connect(target_of(migrated_url)) as connection:
        for name, values in rows.items():
            for row in values:  # one by one: the rows set different columns
                connection.execute(insert(metadata.tables[name]).values(row))
    return migrated_url


def test_edge_values_round_trip(
    edge_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    before = table_contents(edge_url)
    path = tmp_path / "edge.jsonl"
    _dump(edge_url, path)

    lines = _lines(path)
    start, _ = _section(lines, "contrataciones")
    columns = lines[start]["columns"]
    precio = columns.index("precio_hora")
    assert [lines[start + 1][precio], lines[start + 2][precio]] == ["0.01", "99999999.99"]
    assert lines[start + 1][columns.index("cliente_final_id")] is None
    start, _ = _section(lines, "sesiones")
    sesion = dict(zip(lines[start]["columns"], lines[start + 1], strict=True))
    assert sesion["hora_fin"] == "23:59:59.999999"
    assert sesion["created_at"] == "2026-03-29T00:59:59.999999+00:00"
    assert "😀" in sesion["notas"] and "\u2028" in sesion["notas"]
    assert b"\xf0\x9f\x98\x80" in path.read_bytes()  # UTF-8 as is, not \\u escapes
    start, _ = _section(lines, "interacciones")
    recordatorio = lines[start]["columns"].index("crear_recordatorio")
    assert [lines[start + 1][recordatorio], lines[start + 2][recordatorio]] == [True, False]
    start, _ = _section(lines, "clientes")
    assert lines[start + 1].count(None) == 7  # every nullable column of a bare client

    with connect(target_of(edge_url)) as connection:  # wipe it: restore must bring everything back
        for name in reversed(TABLE_NAMES):
            connection.execute(text(f"DELETE FROM {name}"))
    _restore(edge_url, path)
    assert table_contents(edge_url) == before

    # …and into the other engine
    if edge_url.startswith("sqlite"):
        other = str(request.getfixturevalue("pg_database"))
    else:
        other = _sqlite_url(tmp_path / "other.db")
    migrate.upgrade(target_of(other))
    _restore(other, path)
    assert _in_utc(table_contents(other)) == _in_utc(before)


def test_dump_is_one_snapshot(
    seeded_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writes committed while the dump runs are not in it (PostgreSQL RR, SQLite WAL reader)."""
    if seeded_url.startswith("sqlite"):
        raw = sqlite3.connect(seeded_url.removeprefix("sqlite:///"))
        raw.execute("PRAGMA journal_mode=WAL")  # so a writer may commit during the read
        raw.close()
    before = table_contents(seeded_url)
    written: list[str] = []

    def write_meanwhile(stage: str) -> None:
        if stage == "logical-table-dumped" and not written:
            with connect(target_of(seeded_url)) as other:
                other.execute(text("DELETE FROM sesiones WHERE id <= 10"))
                other.execute(text("INSERT INTO temas (nombre) VALUES ('Durante el volcado')"))
            written.append(stage)

    path = tmp_path / "dump.jsonl"
    path.touch()
    engine = LogicalEngine(Hooks(checkpoint=write_meanwhile))
    dumped = engine.dump(target_of(seeded_url), path, compressed=Compression.NONE, verify=False)
    counts = dumped.result.row_counts
    assert written  # the other connection did commit in the middle of the dump
    assert counts["sesiones"] == 320 and counts["temas"] == len(before["temas"])
    _restore(seeded_url, path)
    assert table_contents(seeded_url) == before


def test_file_is_json_lines_and_no_pickle(seeded_url: str, tmp_path: Path) -> None:
    plain, packed = tmp_path / "d.jsonl", tmp_path / "d.jsonl.gz"
    revision, counts = _dump(seeded_url, plain)
    _dump(seeded_url, packed, compressed=Compression.GZIP)
    raw = plain.read_bytes()
    assert raw.endswith(b"\n") and not raw.startswith(b"\x80")  # pickle starts with PROTO
    lines = raw.split(b"\n")[:-1]
    values = [json.loads(line) for line in lines]  # every line is one JSON value
    header = values[0]
    assert header["format"] == "planctl-logical" and header["version"] == 1
    assert header["revision"] == revision
    assert header["tables"] == list(TABLE_NAMES)
    assert dt.datetime.fromisoformat(header["created"]).utcoffset() == dt.timedelta(0)
    position = 1
    for name in TABLE_NAMES:
        table_columns = [c.name for c in metadata.tables[name].columns]
        assert values[position] == {"table": name, "columns": table_columns}
        rows = values[position + 1 : position + 1 + counts[name]]
        assert all(isinstance(row, list) and len(row) == len(table_columns) for row in rows)
        assert [row[0] for row in rows] == sorted(row[0] for row in rows)  # ordered by id
        assert values[position + 1 + counts[name]] == {"end": name, "rows": counts[name]}
        position += counts[name] + 2
    body = b"".join(line + b"\n" for line in lines[:-1])
    assert values[-1] == {"end": True, "sha256": hashlib.sha256(body).hexdigest()}
    assert position == len(values) - 1
    # the gzipped file holds the same rows (a gzip header without the temp file's name)
    assert (
        _lines(packed, compressed=Compression.GZIP)[1:-1] == values[1:-1]
    )  # all but created, digest
    assert packed.read_bytes()[3] & 0x08 == 0  # FNAME flag unset
    assert read_header(packed, Compression.GZIP, NAME).tables == TABLE_NAMES


# --- codec ------------------------------------------------------------------------------------


def test_encode_decode_row_round_trip() -> None:
    table = metadata.tables["sesiones"]
    stamp = dt.datetime(2026, 11, 22, 11, 15, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    naive_utc = dt.datetime(2026, 11, 22, 10, 15)  # what SQLite hands back
    notas = 'Café, "olé"\n'
    row = [7, 3, dt.date(2026, 11, 24), dt.time(9, 0), dt.time(13, 30, 0, 5), None, None]
    row += [notas, "programada", stamp, naive_utc]
    encoded = codec.encode_row(table, row)
    assert encoded == [
        *[7, 3, "2026-11-24", "09:00:00", "13:30:00.000005", None, None, notas, "programada"],
        *["2026-11-22T10:15:00+00:00", "2026-11-22T10:15:00+00:00"],
    ]
    decoded = codec.decode_row(table, json.loads(json.dumps(encoded)))
    assert list(decoded) == [c.name for c in table.columns]
    assert decoded["created_at"] == stamp and decoded["created_at"].tzinfo == dt.UTC
    assert decoded["hora_fin"] == dt.time(13, 30, 0, 5)
    contratacion = metadata.tables["contrataciones"]
    values = codec.encode_row(
        contratacion,
        [1, 1, None, 1, "E", Decimal("1E+2"), Decimal("0.01")] + [None] * 9
        + ["tentativo", "media", dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 1)],
    )  # fmt: skip
    assert values[5:7] == ["100", "0.01"]
    assert codec.decode_row(contratacion, values)["horas_previstas"] == Decimal("0.01")


@pytest.mark.parametrize(
    ("column", "value", "problem"),
    [
        ("precio_hora", 60.0, "precio_hora must be a string or null, not a number"),
        ("precio_hora", "NaN", "not a finite decimal"),
        ("precio_hora", "sesenta", "precio_hora"),
        ("fecha_inicio_prevista", "2026-02-30", "fecha_inicio_prevista"),
        ("created_at", "2026-11-22T10:15:00", "has no UTC offset"),
        ("id", True, "id must be an integer, not a boolean"),
        ("expediente", None, "expediente is null but the column is NOT NULL"),
        ("estado", 3, "estado must be a string, not an integer"),
    ],
)
def test_decode_row_rejects_values_that_do_not_fit(column: str, value: Any, problem: str) -> None:
    table = metadata.tables["contrataciones"]
    good = codec.encode_row(
        table,
        [1, 1, None, 1, "E", Decimal("60.00"), None] + [None] * 9
        + ["tentativo", "media", dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 1)],
    )  # fmt: skip
    codec.decode_row(table, good)
    bad = list(good)
    bad[[c.name for c in table.columns].index(column)] = value
    with pytest.raises(ValueError, match=problem):
        codec.decode_row(table, bad)
    with pytest.raises(ValueError, match="expected 20 values"):
        codec.decode_row(table, good[:-1])


# --- refusals and damage -----------------------------------------------------------------------


def test_restore_refuses_another_revision(seeded_url: str, tmp_path: Path) -> None:
    path = tmp_path / "dump.jsonl"
    revision, _ = _dump(seeded_url, path)
    migrate.stamp(
        target_of(seeded_url), "base"
    )  # same tables, but no longer at the file's revision
    _change_everything(seeded_url)
    changed = table_contents(seeded_url)
    with pytest.raises(BackupError) as caught:
        _restore(seeded_url, path)
    assert f"backup {NAME} is at schema revision {revision}" in caught.value.message
    assert "is at <none>" in caught.value.message
    assert caught.value.hint == f"run planctl db-upgrade {revision} first"
    assert table_contents(seeded_url) == changed

    migrate.stamp(target_of(seeded_url), "head")
    future = tmp_path / "future.jsonl"
    values = _lines(path)
    values[0]["revision"] = "ffffffffffff"
    _write(future, values)
    with pytest.raises(BackupError) as caught:
        _restore(seeded_url, future)
    assert "schema revision ffffffffffff" in caught.value.message
    assert caught.value.hint is not None and "upgrade planctl" in caught.value.hint
    assert table_contents(seeded_url) == changed


def test_restore_into_an_empty_database_says_migrate_first(
    seeded_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    path = tmp_path / "dump.jsonl"
    revision, _ = _dump(seeded_url, path)
    if seeded_url.startswith("sqlite"):
        empty = str(request.getfixturevalue("pg_database"))
    else:
        empty = _sqlite_url(tmp_path / "empty.db")
        sqlite3.connect(tmp_path / "empty.db").close()
    with pytest.raises(BackupError, match="is at <none>") as caught:
        _restore(empty, path)
    assert caught.value.hint == f"run planctl db-upgrade {revision} first"


def test_a_logical_backup_from_before_the_english_bookkeeping_restores(
    seeded_url: str, tmp_path: Path
) -> None:
    """A logical backup taken before revision 31d0f0df5b58 (sync tables still Spanish) holds
    the planner's tables only; into the upgraded database it names the way back to its
    revision (db-downgrade), restores there, and the database upgrades again."""
    from planctl.backup import create_backup, restore_backup
    from planctl.db import legacy

    before = migrate.script_directory().get_revision(legacy.REVISION).down_revision
    assert isinstance(before, str)
    migrate.downgrade(target_of(seeded_url), before)
    backups = tmp_path / "backups"
    info = create_backup(target_of(seeded_url), backups, BackupOptions(fmt="logical")).info
    assert info.revision == before and set(info.row_counts) == set(TABLE_NAMES)
    expected = table_contents(seeded_url)
    migrate.upgrade(target_of(seeded_url))
    _change_everything(seeded_url)
    changed = table_contents(seeded_url)
    with pytest.raises(BackupError) as caught:
        restore_backup(target_of(seeded_url), backups, info.name)
    assert caught.value.hint == f"run planctl db-downgrade {before} first"
    assert table_contents(seeded_url) == changed
    migrate.downgrade(target_of(seeded_url), before)
    restore_backup(target_of(seeded_url), backups, info.name)
    migrate.upgrade(target_of(seeded_url))
    assert table_contents(seeded_url) == expected
    assert migrate.check(target_of(seeded_url)).ok


def test_dump_needs_the_schema(db_url: str, tmp_path: Path) -> None:
    if db_url.startswith("sqlite"):
        sqlite3.connect(db_url.removeprefix("sqlite:///")).close()
    with pytest.raises(BackupError, match="has no planner schema") as caught:
        _dump(db_url, tmp_path / "dump.jsonl")
    assert caught.value.hint == "run planctl db-upgrade first"


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain and a gzipped dump of the demo data (SQLite), shared by the damage tests."""
    directory = tmp_path_factory.mktemp("sample")
    url = _sqlite_url(directory / "demo.db")
    migrate.upgrade(target_of(url))
    seed(target_of(url))
    _dump(url, directory / "demo.jsonl")
    _dump(url, directory / "demo.jsonl.gz", compressed=Compression.GZIP)
    return directory


def _truncate_gzip(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip_gzip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _alter_text(path: Path) -> None:
    data = path.read_bytes()  # one session's estado changed: still valid JSON and a valid row
    at = data.index(b'"programada"', len(data) // 2)
    path.write_bytes(data[:at] + b'"propuesta"' + data[at + len(b'"programada"') :])


def _drop_end_marker(path: Path) -> None:
    lines = path.read_bytes().split(b"\n")
    path.write_bytes(b"\n".join(lines[:-2]) + b"\n")


def _cut_at_a_line(path: Path) -> None:
    lines = path.read_bytes().split(b"\n")
    path.write_bytes(b"\n".join(lines[: len(lines) // 2]) + b"\n")


def _break_a_row(path: Path) -> None:
    lines = path.read_bytes().split(b"\n")
    lines[200] = lines[200][:-5]
    path.write_bytes(b"\n".join(lines))


def _edit(change: Callable[[list[Any]], None]) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        values = _lines(path)
        change(values)
        _write(path, values)

    return apply


def _wrong_count(values: list[Any]) -> None:
    values[_section(values, "sesiones")[1]]["rows"] = 321


def _unknown_table(values: list[Any]) -> None:
    values[0]["tables"][-1] = "sesion"
    values[_section(values, "sesiones")[0]]["table"] = "sesion"


def _unknown_column(values: list[Any]) -> None:
    start, _ = _section(values, "sesiones")
    values[start]["columns"][7] = "nota"


def _decimal_as_float(values: list[Any]) -> None:
    start, _ = _section(values, "contrataciones")
    values[start + 1][5] = 60.0


def _duplicate_row(values: list[Any]) -> None:  # well-formed, but the database refuses it
    start, end = _section(values, "temas")
    values.insert(start + 1, values[start + 1])
    values[end + 1]["rows"] += 1


def _dangling_reference(values: list[Any]) -> None:  # also well-formed
    start, _ = _section(values, "sesiones")
    values[start + 1][1] = 999_999  # contratacion_id of a contract that does not exist


GZIP, PLAIN = Compression.GZIP, Compression.NONE
DAMAGE = {
    "truncated gzip": (GZIP, _truncate_gzip, "cannot be decompressed"),
    "flipped byte in gzip": (GZIP, _flip_gzip_byte, "cannot be decompressed"),
    "altered text": (PLAIN, _alter_text, "does not match the end marker's sha256"),
    "missing end marker": (PLAIN, _drop_end_marker, "ends early, before the end marker"),
    "cut at a line": (PLAIN, _cut_at_a_line, "ends early, inside table"),
    "broken row": (PLAIN, _break_a_row, "bad JSON"),
    "wrong row count": (PLAIN, _edit(_wrong_count), "has 320 rows, its footer says 321"),
    "unknown table": (PLAIN, _edit(_unknown_table), "unknown table 'sesion'"),
    "unknown column": (
        Compression.NONE,
        _edit(_unknown_column),
        "unknown column 'nota' in table sesiones",
    ),
    "decimal as float": (
        Compression.NONE,
        _edit(_decimal_as_float),
        "precio_hora must be a string",
    ),
}


@pytest.mark.parametrize("case", DAMAGE)
def test_check_catches_damage(sample: Path, tmp_path: Path, case: str) -> None:
    compressed, damage, problem = DAMAGE[case]
    path = tmp_path / ("copy.jsonl.gz" if compressed is Compression.GZIP else "copy.jsonl")
    shutil.copy(sample / path.name.replace("copy", "demo"), path)
    _check(path, compressed)  # intact
    damage(path)
    with pytest.raises(VerificationError) as caught:
        _check(path, compressed)
    assert f"backup {NAME}" in caught.value.message
    assert problem in caught.value.message
    assert caught.value.hint


@pytest.mark.parametrize(
    ("damage", "error", "problem"),
    [
        (_edit(_wrong_count), VerificationError, "footer says 321"),  # found after every row
        (_alter_text, VerificationError, "sha256"),
        (_edit(_duplicate_row), BackupError, "failed"),  # the database's own refusal
        (_edit(_dangling_reference), BackupError, "foreign key"),
    ],
    ids=["wrong row count", "altered text", "duplicate id", "dangling foreign key"],
)
def test_failed_restore_leaves_the_database_unchanged(
    seeded_url: str, tmp_path: Path, damage: Callable[[Path], None], error: type, problem: str
) -> None:
    path = tmp_path / "dump.jsonl"
    _dump(seeded_url, path)
    damage(path)
    _change_everything(seeded_url)
    changed = table_contents(seeded_url)
    with pytest.raises(error, match=problem):
        _restore(seeded_url, path)
    assert table_contents(seeded_url) == changed


def test_killed_restore_leaves_the_database_unchanged(seeded_url: str, tmp_path: Path) -> None:
    """SIGKILL after every row is loaded, before COMMIT: nothing of the restore survives."""
    path = tmp_path / "dump.jsonl"
    _dump(seeded_url, path)
    _change_everything(seeded_url)
    changed = table_contents(seeded_url)
    code = (
        "import os, signal, sys; from pathlib import Path; "
        "from planctl.backup.logical_engine import LogicalEngine; "
        "from planctl.target import Target; from planctl.hooks import Hooks; "
        "from planctl.backup.compress import Compression; "
        "crash = lambda stage: stage == 'logical-restored' and os.kill(os.getpid(), 9); "
        "LogicalEngine(Hooks(crash)).restore(Target.parse(sys.argv[1]), open(sys.argv[2], 'rb'), "
        "Compression.NONE, 'x')"
    )
    done = subprocess.run([sys.executable, "-c", code, seeded_url, str(path)], capture_output=True)
    assert done.returncode == -9, done.stderr
    assert table_contents(seeded_url) == changed


# --- memory -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_dump_memory_stays_flat(tmp_path: Path) -> None:
    """Peak RSS of a real dump process barely moves between 20k and 200k sessions."""
    peaks = []
    for scale in (20_000, 200_000):
        url = _sqlite_url(tmp_path / f"s{scale}.db")
        migrate.upgrade(target_of(url))
        seed(target_of(url), scale=scale)
        target = tmp_path / f"s{scale}.jsonl.gz"
        target.touch()
        code = (
            "import resource, sys; from pathlib import Path; "
            "from planctl.backup.logical_engine import LogicalEngine; "
            "from planctl.target import Target; "
            "from planctl.backup.compress import Compression; "
            "target = Target.parse(sys.argv[1]); "
            "done = LogicalEngine().dump(target, Path(sys.argv[2]), compressed=Compression.GZIP, "
            "verify=False); print(done.result.row_counts['sesiones']); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
        )
        done = subprocess.run(
            [sys.executable, "-c", code, url, str(target)],
            capture_output=True,
            text=True,
            check=True,
        )
        dumped, peak = (int(v) for v in done.stdout.split())
        assert dumped == scale
        peaks.append(peak)
        _check(target, Compression.GZIP)
    assert peaks[1] < peaks[0] * 1.15, peaks  # kB; 10x the rows, about the same memory
