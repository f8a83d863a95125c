"""nan

Revision ID: dd1992be80e9
Revises: e5a1c0d9b7f3
Create Date: 2026-12-07 01:04:34.091336+00:00

"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = 'dd1992be80e9'
down_revision: str | None = 'e5a1c0d9b7f3'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
