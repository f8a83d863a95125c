"""CSV export: any table, read back with the csv module, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import insert, text

from planctl.db.engine import connect
from planctl.db.schema import TABLE_NAMES, clientes, metadata
from planctl.errors import UnknownTableError, UsageError
from planctl.export.csv import CsvOptions, export_table

from .conftest import Cli
from .helpers import table_contents, target_of


def export(
    url: str,
    table: str,
    options: CsvOptions = CsvOptions(),
    *,
    fast_path: bool = True,
) -> str:
    out = io.StringIO(newline="")
    with connect(target_of(url)) as connection:
        export_table(connection, table, out, options, fast_path=fast_path)
    return out.getvalue()


def parse(data: str, delimiter: str = ",") -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data, newline=""), delimiter=delimiter))


def expected_cell(value: object) -> str:
    """How the export renders a Python value read from the database."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:  # SQLite keeps UTC without an offset
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r", "\n"):
        return "'" + value
    return str(value)


@pytest.mark.parametrize("table", TABLE_NAMES)
def test_every_table_round_trips(seeded_url: str, table: str) -> None:
    rows = parse(export(seeded_url, table))
    columns = [c.name for c in metadata.tables[table].columns]
    db_rows = table_contents(seeded_url)[table]
    assert len(rows) == len(db_rows) > 0
    for got, want in zip(rows, db_rows, strict=True):
        assert list(got) == columns
        assert [same_cell(got[c], v) for c, v in zip(columns, want, strict=True)] == [True] * len(
            want
        )


def same_cell(cell: str, value: object) -> bool:
    """Times and timestamps compare by value: ISO text may drop fraction digits."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:  # SQLite keeps UTC without an offset
            value = value.replace(tzinfo=dt.UTC)
        parsed = dt.datetime.fromisoformat(cell)
        return parsed == value and parsed.utcoffset() == dt.timedelta(0) and cell.endswith("+00:00")
    if isinstance(value, dt.time):
        return dt.time.fromisoformat(cell) == value
    return cell == expected_cell(value)


def rendered(value: object) -> str:
    """How the CSV shows a value read through SQLAlchemy (independent of the SQL renderers)."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:  # SQLite keeps UTC without an offset
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).isoformat(sep=" ")
    return expected_cell(value)


def csv_writer_output(url: str, table: str, options: CsvOptions) -> str:
    """What ``csv.writer`` writes for the table's rows, rendered in Python."""
    columns = list(options.columns or metadata.tables[table].columns.keys())
    index = [list(metadata.tables[table].columns.keys()).index(c) for c in columns]
    rows = table_contents(url)[table]
    out = io.StringIO(newline="")
    if options.excel:
        out.write("\ufeff")
    writer = csv.writer(out, delimiter=options.delimiter, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        cells = [row[i] for i in index]
        if options.raw:
            writer.writerow(
                [
                    ""
                    if v is None
                    else rendered(v).lstrip("'")
                    if isinstance(v, str)
                    else rendered(v)
                    for v in cells
                ]
            )
        else:
            writer.writerow([rendered(v) for v in cells])
    return out.getvalue()


def test_every_path_writes_what_csv_writer_writes(seeded_url: str) -> None:
    """SQLite's SQL-rendered lines, PostgreSQL's COPY and its csv.writer path all give
    exactly the bytes Python's csv.writer gives for the same values."""
    options_list = [
        CsvOptions(),
        CsvOptions(raw=True),
        CsvOptions(excel=True),
        # delimiters that also occur inside numbers, dates, times and booleans
        *(CsvOptions(delimiter=d) for d in (";", "\t", " ", "-", ":", ".", "0", "e", "+", "€")),
    ]
    for table in TABLE_NAMES:
        columns = ["id", "empresa"] if table == "clientes" else ["empresa"]
        for options in [*options_list, CsvOptions(columns=columns)]:
            if options.columns and table != "clientes":
                continue
            want = csv_writer_output(seeded_url, table, options)
            assert export(seeded_url, table, options) == want, (table, options)
            if seeded_url.startswith("postgresql"):
                assert export(seeded_url, table, options, fast_path=False) == want
    lone = CsvOptions(columns=["notas"])  # a lone empty cell is "" (csv.writer's rule)
    assert export(seeded_url, "clientes", lone) == csv_writer_output(seeded_url, "clientes", lone)


def test_formula_injection_is_neutralised_but_numbers_are_not(migrated_url: str) -> None:
    with connect(target_of(migrated_url)) as connection:
        connection.execute(
            insert(clientes),
            [
                {
                    "id": 1,
                    "empresa": "=1+2",
                    "persona_contacto": "+34 600",
                    "telefono": "-5",
                    "email": "@cmd",
                    "notas": "\tx",
                    "direccion": "\ry",
                    "cif": "\nz",
                },
            ],
        )
        connection.execute(text("INSERT INTO temas (id, nombre) VALUES (1, 'T')"))
        connection.execute(
            text(
                "INSERT INTO formaciones (id, tema_id, nombre, horas_referencia) "
                "VALUES (1, 1, 'F', 1.5)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO contrataciones (id, cliente_id, formacion_id, expediente,"
                " precio_hora) VALUES (1, 1, 1, 'E', 0)"
            )
        )
    [row] = parse(export(migrated_url, "clientes"))
    assert row["empresa"] == "'=1+2" and row["persona_contacto"] == "'+34 600"
    assert row["telefono"] == "'-5" and row["email"] == "'@cmd"
    assert row["notas"] == "'\tx" and row["direccion"] == "'\ry" and row["cif"] == "'\nz"
    [raw] = parse(export(migrated_url, "clientes", CsvOptions(raw=True)))
    assert raw["empresa"] == "=1+2"
    [contract] = parse(export(migrated_url, "contrataciones"))
    assert contract["precio_hora"] == "0.00" and contract["id"] == "1"
    [course] = parse(export(migrated_url, "formaciones"))
    assert course["horas_referencia"] == "1.50"


def test_columns_delimiter_and_dates(seeded_url: str) -> None:
    data = export(
        seeded_url,
        "sesiones",
        CsvOptions(
            columns=["fecha", "id", "estado"],
            delimiter=";",
            since=dt.date(2026, 11, 1),
            until=dt.date(2026, 11, 30),
        ),
    )
    rows = parse(data, ";")
    assert data.splitlines()[0] == "fecha;id;estado"
    with connect(target_of(seeded_url)) as connection:
        want = (
            connection.execute(
                text(
                    "SELECT id FROM sesiones WHERE fecha BETWEEN '2026-11-01' AND '2026-11-30'"
                    " ORDER BY id"
                )
            )
            .scalars()
            .all()
        )
    assert [int(r["id"]) for r in rows] == want and want
    assert all("2026-11-01" <= r["fecha"] <= "2026-11-30" for r in rows)


def test_excel_dialect_has_bom_and_crlf(seeded_url: str) -> None:
    data = export(seeded_url, "temas", CsvOptions(excel=True))
    assert data.startswith("\ufeffid,nombre,")
    assert data.count("\r\n") == len(parse(data.removeprefix("\ufeff"))) + 1
    assert "Ofimática" in data


@pytest.mark.parametrize("name", ["sesion", "sesiones; DROP TABLE clientes", "alembic_version"])
def test_unknown_table_is_refused_and_nothing_changes(seeded_url: str, name: str) -> None:
    before = table_contents(seeded_url)
    with pytest.raises(UnknownTableError) as raised:
        export(seeded_url, name)
    if name != "alembic_version":
        assert "did you mean 'sesiones'?" in str(raised.value)
    assert table_contents(seeded_url) == before


def test_bad_options(seeded_url: str) -> None:
    with pytest.raises(UsageError, match=r"unknown column 'fechas'.*did you mean 'fecha'"):
        export(seeded_url, "sesiones", CsvOptions(columns=["fechas"]))
    with pytest.raises(UsageError, match="has no date"):
        export(seeded_url, "temas", CsvOptions(since=dt.date(2026, 1, 1)))
    with pytest.raises(UsageError, match="invalid delimiter"):
        export(seeded_url, "temas", CsvOptions(delimiter=";;"))


def test_cli_csv_to_stdout_and_file(seeded_url: str, cli: Cli, tmp_path: Path) -> None:
    run = cli("export", "csv", "temas", url=seeded_url)
    assert run.exit_code == 0, run.stderr
    assert parse(run.stdout)[0]["nombre"] == "Ofimática"
    assert run.stderr == ""  # nothing but data on stdout, nothing on stderr
    target = tmp_path / "s.csv"
    run = cli("export", "csv", "sesiones", "-o", str(target), url=seeded_url)
    assert run.exit_code == 0, run.stderr
    assert len(parse(target.read_text(encoding="utf-8"))) == 320
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".s.csv")] == []


def test_cli_all_tables(seeded_url: str, cli: Cli, tmp_path: Path) -> None:
    run = cli(
        "export", "csv", "--all", str(tmp_path / "out"), "--since", "2026-10-01", url=seeded_url
    )
    assert run.exit_code == 0, run.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        f"{t}.csv" for t in TABLE_NAMES
    )
    sessions = parse((tmp_path / "out" / "sesiones.csv").read_text(encoding="utf-8"))
    assert sessions and all(r["fecha"] >= "2026-10-01" for r in sessions)
    assert len(parse((tmp_path / "out" / "temas.csv").read_text(encoding="utf-8"))) == 8


def test_cli_errors(seeded_url: str, cli: Cli, tmp_path: Path) -> None:
    run = cli("export", "csv", "sesiones; DROP TABLE clientes", url=seeded_url)
    assert run.exit_code == 1
    assert run.stderr.strip() == (
        "error: unknown table 'sesiones; DROP TABLE clientes' — "
        "did you mean 'sesiones'? (planctl db-info lists tables)"
    )
    assert run.stdout == ""
    run = cli("export", "csv", "sesiones", "--since", "2026-13-01", url=seeded_url)
    assert run.exit_code == 2 and "invalid date '2026-13-01' for --since" in run.stderr
    run = cli(
        "export", "csv", "sesiones", "-o", str(tmp_path / "missing" / "x.csv"), url=seeded_url
    )
    assert run.exit_code == 1 and "does not exist" in run.stderr
    run = cli("export", "csv", url=seeded_url)
    assert run.exit_code == 2 and "name one TABLE or pass --all DIR" in run.stderr
    run = cli("export", "csv", "sesiones", "--jobs", "2", url=seeded_url)
    assert run.exit_code == 2 and "No such option" in run.stderr  # one reader, no workers


def test_exports_are_logged(seeded_url: str, cli: Cli, tmp_path: Path) -> None:
    from planctl.logs import close_service_loggers

    assert (
        cli("export", "csv", "temas", "-o", str(tmp_path / "t.csv"), url=seeded_url).exit_code == 0
    )
    close_service_loggers()
    log = (tmp_path / "logs" / "exportacion.log").read_text(encoding="utf-8")
    assert "| INFO | planctl.export | exported temas: 8 rows" in log


def test_memory_stays_flat(tmp_path: Path) -> None:
    """Peak RSS of a real export process barely moves between 20k and 200k rows."""
    import os
    import subprocess
    import sys

    from planctl.db import migrate
    from planctl.db.seed import seed

    peaks = []
    for scale in (20_000, 200_000):
        url = f"sqlite:///{tmp_path / f's{scale}.db'}"
        migrate.upgrade(target_of(url))
        seed(target_of(url), scale=scale)
        code = (
            "import resource, sys; from planctl.cli import main; sys.argv=['planctl','-q','export',"
            f"'csv','sesiones','-o',{str(tmp_path / 'out.csv')!r}]\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
        )
        env = {**os.environ, "DATABASE_URL": url, "PLANCTL_LOG_DIR": str(tmp_path / "logs")}
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        peaks.append(int(done.stdout.strip().splitlines()[-1]))
        with open(tmp_path / "out.csv", encoding="utf-8") as written:
            assert sum(1 for _ in written) > scale
    assert peaks[1] < peaks[0] * 1.15, peaks  # kB; 10× the rows, about the same memory


def test_progress_bar_goes_to_a_terminal_stderr_only(tmp_path: Path) -> None:
    """A real terminal on stderr (a pty): the bar shows there, the file gets only CSV."""
    import os
    import pty
    import subprocess
    import sys

    from planctl.db import migrate
    from planctl.db.seed import seed

    url = f"sqlite:///{tmp_path / 'p.db'}"
    migrate.upgrade(target_of(url))
    seed(target_of(url), scale=120_000)
    target = tmp_path / "out.csv"
    master, slave = pty.openpty()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "PLANCTL_LOG_DIR": str(tmp_path / "logs"),
        "COLUMNS": "100",
        "TERM": "xterm",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "planctl", "export", "csv", "sesiones", "-o", str(target)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=slave,
    )
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    assert process.wait(timeout=120) == 0
    os.close(master)
    assert b"exporting sesiones" in seen
    with open(target, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert len(rows) == 120_001 and rows[0][0] == "id"


def test_output_mistakes_are_one_line_errors(seeded_url: str, cli: Cli, tmp_path: Path) -> None:
    run = cli("export", "csv", "temas", "-o", str(tmp_path), url=seeded_url)
    assert run.exit_code == 1 and "is a directory" in run.stderr and "Traceback" not in run.stderr
    (tmp_path / "afile").write_text("x")
    run = cli("export", "csv", "--all", str(tmp_path / "afile"), url=seeded_url)
    assert run.exit_code == 1 and "is not a directory" in run.stderr
    run = cli("export", "csv", "--all", str(tmp_path / "out"), "--columns", "id", url=seeded_url)
    assert run.exit_code == 2 and "--columns does not go with --all" in run.stderr
    run = cli("export", "csv", "--all", str(tmp_path / "out2"), "--delimiter", ";;", url=seeded_url)
    assert run.exit_code == 2
    leftovers = [p for p in tmp_path.rglob("*") if p.name.startswith(".")]
    assert leftovers == []


def test_reexport_keeps_the_file_mode(seeded_url: str, cli: Cli, tmp_path: Path) -> None:
    target = tmp_path / "c.csv"
    target.write_text("old")
    target.chmod(0o600)
    assert cli("export", "csv", "clientes", "-o", str(target), url=seeded_url).exit_code == 0
    assert target.stat().st_mode & 0o777 == 0o600
    assert target.read_text(encoding="utf-8").startswith("id,empresa")


def sqlite_sessions(tmp_path: Path, scale: int) -> str:
    from planctl.db import migrate
    from planctl.db.seed import seed

    url = f"sqlite:///{tmp_path / 'planner.db'}"
    migrate.upgrade(target_of(url))
    seed(target_of(url), scale=scale)
    return url


def test_export_reports_progress_for_every_row(tmp_path: Path) -> None:
    url = sqlite_sessions(tmp_path, 12_000)
    steps: list[int] = []
    out = io.StringIO(newline="")
    with connect(target_of(url)) as connection:
        count = export_table(connection, "sesiones", out, progress=steps.append)
    assert count == sum(steps) == len(parse(out.getvalue())) == 12_000
    assert len(steps) >= 3


def test_postgres_copy_is_utf8_on_a_latin1_database(pg_admin_url: str) -> None:
    """COPY hands over bytes in the client encoding: the export asks for UTF-8."""
    import uuid

    import psycopg

    from planctl.db import migrate

    name = f"planctl_test_{uuid.uuid4().hex[:12]}"
    admin = pg_admin_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            f"CREATE DATABASE \"{name}\" ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'"
            " TEMPLATE template0"
        )
    url = pg_admin_url.rpartition("/")[0] + "/" + name
    try:
        migrate.upgrade(target_of(url))
        with connect(target_of(url)) as connection:
            connection.execute(insert(clientes), [{"empresa": "Ñandú Formación", "cif": "Q1"}])
        fast = export(url, "clientes", fast_path=True)
        assert fast == export(url, "clientes", fast_path=False)
        assert parse(fast)[0]["empresa"] == "Ñandú Formación"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_sqlite_read_error_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Cli
) -> None:
    from planctl.export import csv_sqlite

    url = sqlite_sessions(tmp_path, 500)

    def broken(*args: object) -> tuple[str, list[object]]:
        return "SELECT CAST(x AS BLOB) FROM missing_table", []

    monkeypatch.setattr(csv_sqlite, "lines_sql", broken)
    run = cli("export", "csv", "sesiones", "-o", str(tmp_path / "s.csv"), url=url)
    assert run.exit_code == 1
    assert run.stderr.strip().splitlines() == [
        "error: reading table 'sesiones' failed: no such table: missing_table "
        "— check the database file (planctl db-info) and retry"
    ]
    assert not (tmp_path / "s.csv").exists()


def test_a_fraction_ending_in_zero_is_written_whole(seeded_url: str) -> None:
    """PostgreSQL's text form trims '.152230' to '.15223'; the CSV never does."""
    from sqlalchemy import text

    from planctl.db.engine import connect

    stamp = "2026-11-25 18:54:16.152230"
    with connect(target_of(seeded_url)) as c:
        value = stamp + ("+00" if c.dialect.name == "postgresql" else "")
        c.execute(text("UPDATE adjuntos SET created_at = :v"), {"v": value})
    options = CsvOptions(columns=["id", "created_at"])
    out = export(seeded_url, "adjuntos", options)
    assert out == csv_writer_output(seeded_url, "adjuntos", options)
    assert f"{stamp}+00:00" in out
