"""change log readers: a position per reader, delta backups mark rather than delete

Delta backups used to empty ``planctl_change_log``; sync could not rely on
it. Now a delta marks the rows it took (``backed_up``), sync keeps its
position per backend in ``planctl_change_readers``, and a row is deleted once
it is backed up and at or below every reader's position. Rows already in the
log are not backed up (the next delta takes them, as before).

Revision ID: d7f3a9c2b5e1
Revises: c4d8e2f6a1b3
Create Date: 2026-12-07 02:10:00.000000+00:00

"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from planctl.db import changelog

revision: str = 'd7f3a9c2b5e1'
down_revision: str | None = 'c4d8e2f6a1b3'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    changelog.create_readers(op.get_bind())


def downgrade() -> None:
    changelog.drop_readers(op.get_bind())
