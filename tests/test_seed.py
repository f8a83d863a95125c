"""Demo data: deterministic, realistic, bulk-loaded, refusing to double-load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from planctl.db.engine import connect
from planctl.db.schema import ESTADOS_SESION, TABLE_NAMES, metadata
from planctl.db.seed import DEMO_SESSIONS, seed
from planctl.errors import SeedError

from .conftest import Cli
from .helpers import target_of

TIMESTAMPS = {"created_at", "updated_at"}


def _contents(url: str) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    with connect(target_of(url)) as connection:
        for name in TABLE_NAMES:
            table = metadata.tables[name]
            columns = [c for c in table.c if c.name not in TIMESTAMPS]
            out[name] = [
                tuple(r) for r in connection.execute(select(*columns).order_by(table.c.id))
            ]
    return out


def test_demo_data_is_realistic(seeded_url: str) -> None:
    data = _contents(seeded_url)
    assert len(data["sesiones"]) == DEMO_SESSIONS
    estados = {row[-1] for row in data["sesiones"]}
    assert estados == set(ESTADOS_SESION)
    empresas = [row[1] for row in data["clientes"]]
    assert any("," in e for e in empresas) and any("ñ" in e.lower() for e in empresas)
    fechas = sorted(row[2] for row in data["sesiones"])
    assert (fechas[-1] - fechas[0]).days > 90  # spread over months
    assert all(len(data[name]) > 0 for name in TABLE_NAMES)


def test_seed_is_deterministic_across_engines(seeded_url: str, tmp_path: Path) -> None:
    from planctl.db import migrate

    reference = f"sqlite:///{tmp_path / 'reference.db'}"
    migrate.upgrade(target_of(reference))
    seed(target_of(reference))
    assert _contents(seeded_url) == _contents(reference)


def test_seed_refuses_a_non_empty_database(seeded_url: str, cli: Cli) -> None:
    before = _contents(seeded_url)
    run = cli("db-seed", url=seeded_url)
    assert run.exit_code == 1
    assert "already has data" in run.stderr and "--force" in run.stderr
    assert _contents(seeded_url) == before


def test_force_replaces_the_data(seeded_url: str, cli: Cli) -> None:
    with connect(target_of(seeded_url)) as connection:
        connection.execute(text("UPDATE clientes SET notas = 'cambiado'"))
    run = cli("db-seed", "--force", url=seeded_url)
    assert run.exit_code == 0, run.stderr
    with connect(target_of(seeded_url)) as connection:
        assert (
            connection.execute(
                text("SELECT count(*) FROM clientes WHERE notas = 'cambiado'")
            ).scalar()
            == 0
        )
        assert connection.execute(text("SELECT count(*) FROM sesiones")).scalar() == DEMO_SESSIONS


def test_scale_generates_n_sessions_with_proportional_contracts(
    migrated_url: str, cli: Cli
) -> None:
    run = cli("db-seed", "--scale", "5000", url=migrated_url)
    assert run.exit_code == 0, run.stderr
    with connect(target_of(migrated_url)) as connection:
        counts = {
            n: connection.execute(text(f"SELECT count(*) FROM {n}")).scalar() for n in TABLE_NAMES
        }
        bad = connection.execute(
            text("SELECT count(*) FROM sesiones WHERE hora_fin <= hora_inicio")
        ).scalar()
    assert counts["sesiones"] == 5000
    assert counts["contrataciones"] == 5000 // 16 + 1
    assert bad == 0


def test_ids_continue_after_seeding(seeded_url: str) -> None:
    with connect(target_of(seeded_url)) as connection:
        new_id = connection.execute(
            text("INSERT INTO temas (nombre) VALUES ('Nuevo tema') RETURNING id")
        ).scalar_one()
        assert new_id == connection.execute(text("SELECT max(id) FROM temas")).scalar_one()
        assert new_id > 1


def test_seed_needs_the_schema(db_url: str) -> None:
    with pytest.raises(SeedError, match="no schema"):
        seed(target_of(db_url)) if not db_url.startswith("sqlite") else _seed_sqlite_empty(db_url)


def _seed_sqlite_empty(url: str) -> None:
    with connect(target_of(url), create=True):
        pass
    seed(target_of(url))


@pytest.mark.parametrize("scale", ["0", "-3"])
def test_scale_must_be_positive(migrated_url: str, cli: Cli, scale: str) -> None:
    run = cli("db-seed", "--scale", scale, url=migrated_url)
    assert run.exit_code == 2


def test_an_unbounded_scale_is_refused_up_front_naming_the_limit(
    migrated_url: str, cli: Cli
) -> None:
    import time

    started = time.monotonic()
    run = cli("db-seed", "--scale", str(10**20), url=migrated_url)
    assert time.monotonic() - started < 5
    assert run.exit_code == 2
    assert run.stderr.startswith("error: --scale 100,000,000,000,000,000,000 is over the limit")
    assert "10,000,000 sessions" in run.stderr and len(run.stderr.splitlines()) == 1
    with connect(target_of(migrated_url)) as connection:
        assert connection.execute(text("SELECT count(*) FROM sesiones")).scalar() == 0


def test_if_empty_leaves_existing_data_alone(seeded_url: str, cli: Cli) -> None:
    with connect(target_of(seeded_url)) as connection:
        connection.execute(text("UPDATE temas SET descripcion = 'mía' WHERE id = 1"))
    run = cli("db-seed", "--if-empty", url=seeded_url)
    assert run.exit_code == 0, run.stderr
    assert "left as it is" in run.stdout
    with connect(target_of(seeded_url)) as connection:
        assert (
            connection.execute(text("SELECT descripcion FROM temas WHERE id = 1")).scalar() == "mía"
        )
