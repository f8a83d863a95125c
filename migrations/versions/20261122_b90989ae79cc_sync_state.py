"""sync state

Calendar sync's bookkeeping: one state row per (backend, session) with the
remote id/href, etag and the content hashes of both sides, and one row per
sync run. Self-contained (create/drop only), so it can be re-chained after
other revisions.

Revision ID: b90989ae79cc
Revises: 7c2e5a9d41b8
Create Date: 2026-11-22 14:30:13.202148+00:00

"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'b90989ae79cc'
down_revision: str | None = '7c2e5a9d41b8'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('estados_sincronizacion',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('backend', sa.String(length=40), nullable=False),
    sa.Column('sesion_id', sa.Integer(), nullable=False),
    sa.Column('id_remoto', sa.String(length=1000), nullable=False),
    sa.Column('etag', sa.String(length=200), nullable=True),
    sa.Column('hash_local', sa.String(length=64), nullable=False),
    sa.Column('hash_remoto', sa.String(length=64), nullable=False),
    sa.Column('sincronizado_en', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_estados_sincronizacion')),
    sa.UniqueConstraint('backend', 'sesion_id', name=op.f('uq_estados_sincronizacion_backend_sesion_id'))
    )
    op.create_index(op.f('ix_estados_sincronizacion_backend_id_remoto'), 'estados_sincronizacion', ['backend', 'id_remoto'], unique=False)

    op.create_table('ejecuciones_sincronizacion',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('backend', sa.String(length=40), nullable=False),
    sa.Column('modo', sa.String(length=10), nullable=False),
    sa.Column('inicio', sa.DateTime(timezone=True), nullable=False),
    sa.Column('fin', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resultado', sa.String(length=20), nullable=False),
    sa.Column('creados', sa.Integer(), server_default='0', nullable=False),
    sa.Column('actualizados', sa.Integer(), server_default='0', nullable=False),
    sa.Column('eliminados', sa.Integer(), server_default='0', nullable=False),
    sa.Column('sin_cambios', sa.Integer(), server_default='0', nullable=False),
    sa.Column('conflictos', sa.Integer(), server_default='0', nullable=False),
    sa.Column('errores', sa.Integer(), server_default='0', nullable=False),
    sa.CheckConstraint("modo IN ('sync', 'push', 'pull')", name=op.f('ck_ejecuciones_sincronizacion_modo')),
    sa.CheckConstraint("resultado IN ('en_curso', 'ok', 'conflictos', 'errores')", name=op.f('ck_ejecuciones_sincronizacion_resultado')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ejecuciones_sincronizacion'))
    )
    op.create_index(op.f('ix_ejecuciones_sincronizacion_backend_inicio'), 'ejecuciones_sincronizacion', ['backend', 'inicio'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_ejecuciones_sincronizacion_backend_inicio'), table_name='ejecuciones_sincronizacion')
    op.drop_table('ejecuciones_sincronizacion')
    op.drop_index(op.f('ix_estados_sincronizacion_backend_id_remoto'), table_name='estados_sincronizacion')
    op.drop_table('estados_sincronizacion')
