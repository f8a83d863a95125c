"""The schema enforces its rules in the database itself, on both engines."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Connection, insert, select, text
from sqlalchemy.exc import IntegrityError

from planctl.db.engine import connect
from planctl.db.schema import TABLE_NAMES, clientes, contrataciones, metadata, sesiones, temas
from planctl.errors import DatabaseError

from .helpers import target_of


@contextmanager
def violates() -> Iterator[None]:
    """The block fails with an integrity error raised by the database itself."""
    with pytest.raises(DatabaseError) as raised:
        yield
    assert isinstance(raised.value.__cause__, IntegrityError)


def test_all_ten_tables_and_named_constraints() -> None:
    assert sorted(TABLE_NAMES) == sorted(
        [
            "clientes",
            "clientes_finales",
            "contactos_cliente_final",
            "participantes",
            "temas",
            "formaciones",
            "contrataciones",
            "sesiones",
            "adjuntos",
            "interacciones",
        ]
    )
    for table in metadata.tables.values():
        for constraint in table.constraints:
            assert constraint.name, f"unnamed constraint on {table.name}"
    index_columns = {
        tuple(c.name for c in ix.columns) for ix in metadata.tables["sesiones"].indexes
    }
    assert ("contratacion_id", "fecha", "hora_inicio") in index_columns


def _base_rows(connection: Connection) -> None:
    connection.execute(insert(clientes), [{"id": 1, "empresa": "Ñandú, S.A.", "cif": "B1"}])
    connection.execute(insert(temas), [{"id": 1, "nombre": "Ofimática"}])
    connection.execute(text("INSERT INTO formaciones (id, tema_id, nombre) VALUES (1, 1, 'Excel')"))
    connection.execute(
        insert(contrataciones), [{"id": 1, "cliente_id": 1, "formacion_id": 1, "expediente": "E1"}]
    )


SESSION = {
    "contratacion_id": 1,
    "fecha": dt.date(2026, 3, 29),
    "hora_inicio": dt.time(9),
    "hora_fin": dt.time(13),
}


@pytest.mark.parametrize(
    "bad",
    [
        {"hora_fin": dt.time(8)},  # ends before it starts
        {"hora_fin": dt.time(9)},  # zero length
        {"estado": "terminada"},  # not an estado
        {"contratacion_id": 99},  # no such contract
    ],
)
def test_session_constraints(migrated_url: str, bad: dict[str, object]) -> None:
    with connect(target_of(migrated_url)) as connection:
        _base_rows(connection)
    with violates(), connect(target_of(migrated_url)) as connection:
        connection.execute(insert(sesiones), [{**SESSION, **bad}])
    with connect(target_of(migrated_url)) as connection:
        assert connection.execute(select(sesiones.c.id)).all() == []


def test_defaults_and_timestamps(migrated_url: str) -> None:
    with connect(target_of(migrated_url)) as connection:
        _base_rows(connection)
        connection.execute(insert(sesiones), [SESSION])
        row = connection.execute(select(sesiones)).one()
        contract = connection.execute(select(contrataciones)).one()
    assert row.estado == "programada"
    assert contract.estado == "tentativo" and contract.prioridad == "media"
    assert isinstance(row.created_at, dt.datetime)


def test_unique_cif_and_expediente(migrated_url: str) -> None:
    with connect(target_of(migrated_url)) as connection:
        _base_rows(connection)
    with violates(), connect(target_of(migrated_url)) as connection:
        connection.execute(insert(clientes), [{"empresa": "Otra", "cif": "B1"}])
    with violates(), connect(target_of(migrated_url)) as connection:
        connection.execute(
            insert(contrataciones), [{"cliente_id": 1, "formacion_id": 1, "expediente": "E1"}]
        )


def test_on_delete_behaviour(migrated_url: str) -> None:
    with connect(target_of(migrated_url)) as connection:
        _base_rows(connection)
        connection.execute(insert(sesiones), [SESSION])
        connection.execute(text("INSERT INTO clientes_finales (id, empresa) VALUES (1, 'Final')"))
        connection.execute(
            text("INSERT INTO participantes (cliente_final_id, nombre) VALUES (1, 'Ana')")
        )
        connection.execute(text("UPDATE contrataciones SET cliente_final_id = 1"))
    # RESTRICT: a client with contracts cannot be deleted.
    with violates(), connect(target_of(migrated_url)) as connection:
        connection.execute(text("DELETE FROM clientes WHERE id = 1"))
    with connect(target_of(migrated_url)) as connection:
        # SET NULL: the contract survives its end client; CASCADE: participants go.
        connection.execute(text("DELETE FROM clientes_finales WHERE id = 1"))
        assert (
            connection.execute(text("SELECT cliente_final_id FROM contrataciones")).scalar_one()
            is None
        )
        assert connection.execute(text("SELECT count(*) FROM participantes")).scalar_one() == 0
        # CASCADE: sessions go with their contract.
        connection.execute(text("DELETE FROM contrataciones WHERE id = 1"))
        assert connection.execute(text("SELECT count(*) FROM sesiones")).scalar_one() == 0


def test_sqlite_connections_enforce_foreign_keys(tmp_path: Path) -> None:
    from planctl.db import migrate

    url = f"sqlite:///{tmp_path / 'fk.db'}"
    migrate.upgrade(target_of(url))
    with connect(target_of(url)) as connection:
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1


def test_the_one_table_list_must_name_the_schema_tables_parents_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """planctl.db.names.TABLES is the only list of the planner's tables: the schema
    refuses one that misses a table or puts a child before its parent."""
    from planctl.db import schema
    from planctl.db.seed import COLUMNS

    assert schema.TABLE_NAMES == schema.TABLES and tuple(COLUMNS) == schema.TABLE_NAMES
    assert COLUMNS["sesiones"][:5] == ("id", "contratacion_id", "fecha", "hora_inicio", "hora_fin")
    monkeypatch.setattr(schema, "TABLES", tuple(reversed(schema.TABLES)))
    with pytest.raises(RuntimeError, match=r"lists \w+ before"):
        schema._check_table_order()
    monkeypatch.setattr(schema, "TABLES", schema.TABLE_NAMES[1:])
    with pytest.raises(RuntimeError, match="differs from the schema's tables"):
        schema._check_table_order()
