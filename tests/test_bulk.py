"""The bulk loader and the raw cursor, on both engines: rows read back, errors by code."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from planctl.db import migrate
from planctl.db.bulk import load_rows, raw_cursor
from planctl.db.engine import connect, make_engine
from planctl.db.schema import metadata
from planctl.errors import DatabaseError
from planctl.failures import Failure, classify

from .helpers import target_of

MADRID = ZoneInfo("Europe/Madrid")


def test_rows_loaded_in_batches_read_back_identically(db_url: str) -> None:
    migrate.upgrade(target_of(db_url))
    runs = metadata.tables["planctl_sync_runs"]
    columns = ("id", "backend", "mode", "started_at", "finished_at", "result")
    start = dt.datetime(2026, 3, 29, 1, 30, tzinfo=MADRID)  # the night Madrid skips 02:00
    rows = [
        (i, "simulated", "sync", start + dt.timedelta(hours=i), None if i % 2 else start, "ok")
        for i in range(1, 2501)
    ]
    batches = [rows[i : i + 1000] for i in range(0, len(rows), 1000)]
    with connect(target_of(db_url)) as connection:
        assert load_rows(connection, runs, columns, batches) == 2500
    with connect(target_of(db_url)) as connection:
        back = connection.execute(select(*(runs.c[c] for c in columns)).order_by(runs.c.id)).all()
        if connection.dialect.name == "sqlite":  # naive UTC text, like CURRENT_TIMESTAMP
            query = "SELECT started_at FROM planctl_sync_runs WHERE id = 1"
            stored = connection.execute(text(query)).scalar_one()
            utc = rows[0][3].astimezone(dt.UTC).replace(tzinfo=None)
            assert stored == utc.isoformat(" ")
    assert len(back) == 2500
    for got, want in zip(back, rows, strict=True):
        started = got.started_at
        started = started if started.tzinfo else started.replace(tzinfo=dt.UTC)
        assert (got.id, got.backend, got.mode, got.result) == (*want[:3], want[5])
        # PEP 495: a gap time never equals across zones
        assert started == want[3].astimezone(dt.UTC)


def test_a_failed_load_is_a_dbapi_error_classified_by_code_and_loads_nothing(db_url: str) -> None:
    migrate.upgrade(target_of(db_url))
    temas = metadata.tables["temas"]
    engine = make_engine(target_of(db_url))
    with pytest.raises(DBAPIError) as raised, engine.begin() as connection:
        load_rows(connection, temas, ("id", "nombre"), [[(1, "Excel"), (1, "Excel otra vez")]])
    engine.dispose()
    assert classify(raised.value) is Failure.OTHER  # a unique violation: not the user's disk
    assert "temas" in str(raised.value.statement)
    # through connect(), the same error is planctl's one-line DatabaseError
    with pytest.raises(DatabaseError) as described, connect(target_of(db_url)) as connection:
        load_rows(connection, temas, ("id", "nombre"), [[(1, "Excel"), (1, "Excel otra vez")]])
    assert described.value.failure is Failure.OTHER
    with connect(target_of(db_url)) as connection:
        assert connection.execute(text("SELECT count(*) FROM temas")).scalar_one() == 0


def test_raw_cursor_errors_come_out_like_sqlalchemy_ones(db_url: str) -> None:
    engine = make_engine(target_of(db_url))

    def query(connection: Connection) -> None:
        with raw_cursor(connection, "SELECT * FROM nope") as cursor:
            cursor.execute("SELECT * FROM nope")

    with pytest.raises(DBAPIError) as raised, engine.connect() as connection:
        query(connection)
    engine.dispose()
    assert classify(raised.value) is Failure.NO_TABLE
    with (
        pytest.raises(DatabaseError, match="has no planner schema"),
        connect(target_of(db_url), create=True) as connection,
    ):
        query(connection)
