"""CSV stays RFC 4180 whatever another program stored in a dynamically typed SQLite table.

Hostile values of every storage class (text with commas, quotes and line breaks,
integers, reals, blobs, NULL, formula look-alikes) are written into every column
of every table with the sqlite3 module, as the planner app could; the export is
parsed back with Python's csv module (strict), and each cell is compared with
what an independent Python rendering of the stored value expects.
"""

from __future__ import annotations

import csv
import io
import re
import sqlite3
from pathlib import Path

import pytest

from planctl.db import migrate
from planctl.db.schema import TABLE_NAMES
from planctl.db.seed import seed
from planctl.export.csv import export_table
from planctl.export.csv_common import FORMULA_STARTS, TABLES, CsvOptions

from .helpers import target_of

HOSTILE: list[object] = [
    'a,b"c\r\nd',
    "=1+2",
    "＝SUM(A1)",
    "＋34 600",
    "－5",
    "＠cmd",
    "-5",
    "\tx",
    "2026-11-01,x",
    "2026-11-01\n",
    "10:00:00,5",
    '2026-11-22 10:15:00"',
    "",
    " ",
    "12",
    12345,
    0,
    1,
    -7,
    3.5,
    -0.25,
    b'\x00\xff,"\n',
    None,
]
DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
TIME = re.compile(r"[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{6})?")
MOMENT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{6})?")


def kind_of(declared: str) -> tuple[str, int]:
    text = declared.upper()
    if text == "BOOLEAN":
        return "boolean", 0
    if text == "DATETIME":
        return "datetime", 0
    if text in ("DATE", "TIME", "INTEGER"):
        return text.lower(), 0
    if text.startswith("NUMERIC"):
        return "numeric", int(text.split(",")[1].strip(" )"))
    return "text", 0


def as_text(storage: str, value: object, raw: bool) -> str:
    """Any stored value as plain text, formula-like text neutralised."""
    if storage == "blob":
        assert isinstance(value, bytes)
        return value.hex().upper()
    if storage == "real":
        return repr(value)
    text = str(value)
    if storage == "text" and not raw and text[:1] in FORMULA_STARTS:
        return "'" + text
    return text


def expected(kind: str, scale: int, storage: str, value: object, raw: bool = False) -> str:
    if storage == "null":
        return ""
    if kind == "integer" and storage == "integer":
        return str(value)
    if kind == "numeric" and storage in ("integer", "real"):
        return f"{value:.{scale}f}"
    if kind == "boolean" and storage == "integer" and value in (0, 1):
        return "true" if value else "false"
    if storage == "text" and isinstance(value, str):
        if kind == "date" and DATE.fullmatch(value):
            return value
        if kind == "time" and TIME.fullmatch(value):
            return value.removesuffix(".000000")
        if kind == "datetime" and MOMENT.fullmatch(value):
            return value.removesuffix(".000000") + "+00:00"
    return as_text(storage, value, raw)


@pytest.fixture(scope="module")
def hostile_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded database plus, per table, one row per (column, hostile value) it accepts."""
    path = tmp_path_factory.mktemp("hostile") / "planner.db"
    url = f"sqlite:///{path}"
    migrate.upgrade(target_of(url))
    seed(target_of(url), scale=40)
    con = sqlite3.connect(path, isolation_level=None)  # foreign keys off, as the app may have
    for table in TABLES:
        columns = [row[1] for row in con.execute(f"PRAGMA table_info({table})")]
        base = con.execute(f"SELECT * FROM {table} ORDER BY id LIMIT 1").fetchone()
        assert base is not None, table
        next_id = con.execute(f"SELECT max(id) FROM {table}").fetchone()[0] + 1
        for column in columns[1:]:
            for value in HOSTILE:
                row = list(base)
                row[0] = next_id
                row[columns.index(column)] = value
                if insert_row(con, table, columns, column, row):
                    next_id += 1
    con.close()
    return path


def insert_row(
    con: sqlite3.Connection, table: str, columns: list[str], hostile: str, row: list[object]
) -> bool:
    """Insert *row*; a UNIQUE clash on another column gets a fresh value there and a retry."""
    marks = ", ".join("?" * len(row))
    for _ in range(4):
        try:
            con.execute(f"INSERT INTO {table} VALUES ({marks})", row)
            return True
        except sqlite3.IntegrityError as error:  # a CHECK, NOT NULL or UNIQUE said no
            clash = re.search(r"UNIQUE constraint failed: (.*)", str(error))
            if clash is None:
                return False
            names = [part.split(".")[1] for part in clash.group(1).split(", ")]
            if hostile in names:
                names.remove(hostile)
                if not names:
                    return False
            for name in names:
                row[columns.index(name)] = f"unique-{row[0]}"
    return False


def test_tables_constant_matches_the_models() -> None:
    assert tuple(TABLE_NAMES) == TABLES


@pytest.mark.parametrize("delimiter", [",", "\t", "-", "."])
@pytest.mark.parametrize("raw", [False, True])
def test_hostile_values_in_every_column_stay_rfc_4180(
    hostile_db: Path, delimiter: str, raw: bool
) -> None:
    con = sqlite3.connect(hostile_db)
    con.row_factory = None
    checked_columns = 0
    for table in TABLES:
        info = con.execute(f"PRAGMA table_info({table})").fetchall()
        names = [row[1] for row in info]
        kinds = [kind_of(row[2]) for row in info]
        stored = con.execute(
            f"SELECT {', '.join(f'typeof({n}), {n}' for n in names)} FROM {table} ORDER BY id"
        ).fetchall()
        out = io.BytesIO()
        count = export_table(con, table, out, CsvOptions(delimiter=delimiter, raw=raw))
        data = out.getvalue().decode("utf-8")
        assert data.endswith("\r\n")
        rows = list(csv.reader(io.StringIO(data, newline=""), delimiter=delimiter, strict=True))
        assert rows[0] == names
        assert count == len(rows) - 1 == len(stored)
        for got, db_row in zip(rows[1:], stored, strict=True):
            assert len(got) == len(names), (table, got)
            want = [
                expected(kind, scale, db_row[2 * i], db_row[2 * i + 1], raw)
                for i, (kind, scale) in enumerate(kinds)
            ]
            assert got == want, (table, db_row)
        checked_columns += len(names)
    assert checked_columns > 90
    # Hostile values really landed in typed columns (the app's dynamic typing).
    oddities = con.execute(
        "SELECT count(*) FROM sesiones WHERE typeof(fecha) != 'text' OR fecha LIKE '%,%'"
    ).fetchone()[0]
    assert oddities > 3
    con.close()


def test_full_width_formula_characters_are_neutralised(hostile_db: Path) -> None:
    con = sqlite3.connect(hostile_db)
    out = io.BytesIO()
    export_table(con, "clientes", out, CsvOptions(columns=["id", "empresa"]))
    cells = {row[1] for row in csv.reader(io.StringIO(out.getvalue().decode(), newline=""))}
    assert {"'＝SUM(A1)", "'＋34 600", "'－5", "'＠cmd", "'=1+2"} <= cells
    assert not {"＝SUM(A1)", "＋34 600", "－5", "＠cmd"} & cells
    con.close()


def test_postgres_neutralises_full_width_too(pg_database: str) -> None:
    from sqlalchemy import insert

    from planctl.db.engine import connect
    from planctl.db.schema import clientes

    migrated_url = pg_database
    migrate.upgrade(target_of(migrated_url))
    with connect(target_of(migrated_url)) as connection:
        connection.execute(
            insert(clientes),
            [
                {"empresa": "＝SUM(A1)", "cif": "Q1", "notas": "＠x"},
                {"empresa": "－5", "cif": "Q2", "notas": "＋1"},
            ],
        )
    for fast in (True, False):
        out = io.StringIO(newline="")
        with connect(target_of(migrated_url)) as connection:
            export_table(connection, "clientes", out, fast_path=fast)
        rows = list(csv.DictReader(io.StringIO(out.getvalue(), newline="")))
        assert [(r["empresa"], r["notas"]) for r in rows] == [
            ("'＝SUM(A1)", "'＠x"),
            ("'－5", "'＋1"),
        ]


def test_postgres_copy_path_writes_the_exact_paths_bytes_on_hostile_values(
    pg_database: str,
) -> None:
    """COPY (the fast path) and csv.writer over the same SELECT (the exact path): the same
    bytes for every table, delimiter and --raw, with hostile text in every text column,
    timestamps with and without fractions, prices at the edge of their scale."""
    import datetime as dt
    from decimal import Decimal

    from sqlalchemy import insert, update

    from planctl.db.engine import connect
    from planctl.db.schema import clientes, contrataciones, formaciones, sesiones, temas

    migrate.upgrade(target_of(pg_database))
    seed(target_of(pg_database))
    texts = [v for v in HOSTILE if isinstance(v, str)] + ["a\rb", '"', "x\n", "ñ,\u2028"]
    moments = [
        dt.datetime(2026, 11, 22, 10, 15, tzinfo=dt.UTC),
        dt.datetime(2026, 11, 22, 10, 15, 0, 500_000, tzinfo=dt.UTC),
        dt.datetime(2026, 11, 22, 10, 15, 0, 1, tzinfo=dt.UTC),
        dt.datetime(1, 1, 1, 0, 0, 0, 123_456, tzinfo=dt.UTC),
        dt.datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=dt.UTC),
    ]
    with connect(target_of(pg_database)) as connection:
        tema = connection.execute(
            insert(temas).returning(temas.c.id), [{"nombre": "hostil"}]
        ).scalar_one()
        for index, text in enumerate(texts):
            connection.execute(
                insert(clientes),
                [{"empresa": f"{text}#{index}", "cif": f"H{index}", "notas": text or None}],
            )
            connection.execute(
                insert(formaciones),
                [{"tema_id": tema, "nombre": text + str(index), "descripcion": text}],
            )
        ids = [row[0] for row in connection.execute(sesiones.select().limit(len(moments)))]
        for session, moment in zip(ids, moments, strict=True):
            connection.execute(
                update(sesiones)
                .where(sesiones.c.id == session)
                .values(created_at=moment, updated_at=moment, notas=texts[session % len(texts)])
            )
        for price in (Decimal("0.00"), Decimal("0.01"), Decimal("99999999.99")):
            connection.execute(
                update(contrataciones)
                .where(contrataciones.c.id == int(price * 100) % 5 + 1)
                .values(precio_hora=price)
            )
    for delimiter in (",", "\t", ";", "-"):
        for raw in (False, True):
            options = CsvOptions(delimiter=delimiter, raw=raw)
            for table in TABLES:
                written = {}
                for fast in (True, False):
                    out = io.BytesIO()
                    with connect(target_of(pg_database)) as connection:
                        export_table(connection, table, out, options, fast_path=fast)
                    written[fast] = out.getvalue()
                assert written[True] == written[False], (table, delimiter, raw)
