"""sync run log: result 'interrumpida' for a run killed or lost halfway

A run row left ``en_curso`` by a killed run is marked ``interrumpida`` by the
next run (which holds the sync lock, so no other run is in progress); the
CHECK constraint on ``ejecuciones_sincronizacion.resultado`` gains the value.

Revision ID: c4d8e2f6a1b3
Revises: e5a1c0d9b7f3
Create Date: 2026-12-07 01:00:00.000000+00:00

"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = 'c4d8e2f6a1b3'
down_revision: str | None = 'e5a1c0d9b7f3'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = 'ejecuciones_sincronizacion'
NAME = 'resultado'  # the naming convention makes it ck_ejecuciones_sincronizacion_resultado
OLD = ('en_curso', 'ok', 'conflictos', 'errores')
NEW = (*OLD, 'interrumpida')


def _check(values: tuple[str, ...]) -> None:
    listed = ', '.join(f"'{v}'" for v in values)
    with op.batch_alter_table(TABLE) as batch:
        batch.drop_constraint(op.f(f'ck_{TABLE}_{NAME}'), type_='check')
        batch.create_check_constraint(op.f(f'ck_{TABLE}_{NAME}'), f'resultado IN ({listed})')


def upgrade() -> None:
    _check(NEW)


def downgrade() -> None:
    op.execute(f"UPDATE {TABLE} SET resultado = 'errores' WHERE resultado = 'interrumpida'")
    _check(OLD)
