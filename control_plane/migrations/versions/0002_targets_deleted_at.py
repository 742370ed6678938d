"""targets deleted_at

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06 03:03:59.254524
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import control_plane.models

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("targets", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("deleted_at", control_plane.models.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("targets", schema=None) as batch_op:
        batch_op.drop_column("deleted_at")
