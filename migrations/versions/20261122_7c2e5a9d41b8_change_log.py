"""change log for incremental backups

Triggers on the ten planner tables record every inserted, updated or deleted
row id in planctl_change_log; planctl_backup_anchor names the backup that log
is relative to (see planctl.db.changelog).

Revision ID: 7c2e5a9d41b8
Revises: 4150a15fd00a
Create Date: 2026-11-22 14:50:00.000000+00:00

"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from planctl.db import changelog

revision: str = '7c2e5a9d41b8'
down_revision: str | None = '4150a15fd00a'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The planner's tables at this revision.
TABLES = (
    'clientes',
    'clientes_finales',
    'participantes',
    'temas',
    'contactos_cliente_final',
    'formaciones',
    'contrataciones',
    'sesiones',
    'adjuntos',
    'interacciones',
)


def upgrade() -> None:
    connection = op.get_bind()
    changelog.create_tables(connection)
    changelog.install_triggers(connection, TABLES)


def downgrade() -> None:
    changelog.drop_tables(op.get_bind(), TABLES)
