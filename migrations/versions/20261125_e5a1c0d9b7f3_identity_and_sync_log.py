"""database identity; the change log covers the sync tables

Each database gets a stable id (``planctl_database``), recorded in every
backup's metadata so a restore can refuse a backup of another database. The
change-log triggers now also cover the sync tables, so a delta restore brings
the sync state to the restore point with the rest (see planctl.db.identity and
planctl.db.changelog).

Revision ID: e5a1c0d9b7f3
Revises: b90989ae79cc
Create Date: 2026-11-25 17:20:00.000000+00:00

"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from planctl.db import changelog, identity

revision: str = 'e5a1c0d9b7f3'
down_revision: str | None = 'b90989ae79cc'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SYNC_TABLES = ('estados_sincronizacion', 'ejecuciones_sincronizacion')


def upgrade() -> None:
    connection = op.get_bind()
    identity.create_table(connection)
    changelog.install_triggers(connection, SYNC_TABLES)


def downgrade() -> None:
    connection = op.get_bind()
    changelog.drop_triggers(connection, SYNC_TABLES)
    # planctl_database stays: the database keeps its identity across a downgrade and
    # the next upgrade, so its backups remain its own (identity.create_table).
