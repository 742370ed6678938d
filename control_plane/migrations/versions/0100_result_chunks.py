"""result chunks: bodies of a split agent result, kept until every body is in

Revision ID: 0100
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import control_plane.models

revision = "0100"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "result_chunks",
        sa.Column("result_id", sa.String(length=200), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("scan_id", sa.Uuid(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", control_plane.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["scan_id"],
            ["scans.id"],
            name=op.f("fk_result_chunks_scan_id_scans"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("result_id", "index", name=op.f("pk_result_chunks")),
    )
    with op.batch_alter_table("result_chunks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_result_chunks_scan_id"), ["scan_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("result_chunks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_result_chunks_scan_id"))
    op.drop_table("result_chunks")
