"""

Revision ID: 9b0339ea79ba
Revises: dd1992be80e9
Create Date: 2026-12-07 01:04:34.642188+00:00

"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '9b0339ea79ba'
down_revision: str | None = 'dd1992be80e9'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
