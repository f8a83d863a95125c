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

import sqlalchemy as sa
from alembic import op

revision: str = 'c4d8e2f6a1b3'
down_revision: str | None = 'e5a1c0d9b7f3'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = 'ejecuciones_sincronizacion'
NAME = 'resultado'  # the naming convention makes it ck_ejecuciones_sincronizacion_resultado
OLD = ('en_curso', 'ok', 'conflictos', 'errores')
NEW = (*OLD, 'interrumpida')


def _listed(values: tuple[str, ...]) -> str:
    return ', '.join(f"'{v}'" for v in values)


def _table(values: tuple[str, ...]) -> sa.Table:
    """The table before the change (SQLite batch mode copies it; `--sql` cannot reflect)."""
    return sa.Table(
        TABLE,
        sa.MetaData(),
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('backend', sa.String(length=40), nullable=False),
        sa.Column('modo', sa.String(length=10), nullable=False),
        sa.Column('inicio', sa.DateTime(timezone=True), nullable=False),
        sa.Column('fin', sa.DateTime(timezone=True), nullable=True),
        sa.Column('resultado', sa.String(length=20), nullable=False),
        *(
            sa.Column(name, sa.Integer(), server_default='0', nullable=False)
            for name in ('creados', 'actualizados', 'eliminados', 'sin_cambios', 'conflictos',
                         'errores')
        ),
        sa.CheckConstraint("modo IN ('sync', 'push', 'pull')", name=f'ck_{TABLE}_modo'),
        sa.CheckConstraint(f'resultado IN ({_listed(values)})', name=f'ck_{TABLE}_{NAME}'),
        sa.PrimaryKeyConstraint('id', name=f'pk_{TABLE}'),
        sa.Index(f'ix_{TABLE}_backend_inicio', 'backend', 'inicio'),
    )


def _check(values: tuple[str, ...], before: tuple[str, ...]) -> None:
    listed = _listed(values)
    with op.batch_alter_table(TABLE, copy_from=_table(before)) as batch:
        batch.drop_constraint(op.f(f'ck_{TABLE}_{NAME}'), type_='check')
        batch.create_check_constraint(op.f(f'ck_{TABLE}_{NAME}'), f'resultado IN ({listed})')


def upgrade() -> None:
    _check(NEW, OLD)


def downgrade() -> None:
    op.execute(f"UPDATE {TABLE} SET resultado = 'errores' WHERE resultado = 'interrumpida'")
    _check(OLD, NEW)
