"""advisories: imported advisory records, the packages and releases they affect, and the
issue counts and compact inventories of matched scans

Revision ID: 0200
Revises: 0100
Create Date: 2026-12-06 03:13:33.963208
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import control_plane.models

revision = "0200"
down_revision = "0100"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "advisories",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("scope", sa.String(length=200), nullable=False),
        sa.Column("advisory_id", sa.String(length=200), nullable=False),
        sa.Column("aliases", sa.JSON(), nullable=False),
        sa.Column("modified", control_plane.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("published", control_plane.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("withdrawn", control_plane.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("severity", sa.JSON(), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("imported_at", control_plane.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", control_plane.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_advisories")),
        sa.UniqueConstraint(
            "source", "scope", "advisory_id", name=op.f("uq_advisories_source_scope_advisory_id")
        ),
    )
    with op.batch_alter_table("advisories", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_advisories_advisory_id"), ["advisory_id"], unique=False
        )

    op.create_table(
        "advisory_packages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("advisory_pk", sa.Uuid(), nullable=False),
        sa.Column("ecosystem", sa.String(length=200), nullable=False),
        sa.Column("family", sa.String(length=32), nullable=False),
        sa.Column("release", sa.String(length=32), nullable=False),
        sa.Column("package", sa.String(length=200), nullable=False),
        sa.Column("fixed", sa.String(length=200), nullable=True),
        sa.Column("introduced", sa.String(length=200), nullable=True),
        sa.Column("last_affected", sa.String(length=200), nullable=True),
        sa.Column("severity", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["advisory_pk"],
            ["advisories.id"],
            name=op.f("fk_advisory_packages_advisory_pk_advisories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_advisory_packages")),
    )
    with op.batch_alter_table("advisory_packages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_advisory_packages_advisory_pk"), ["advisory_pk"], unique=False
        )
        batch_op.create_index(
            "ix_advisory_packages_stream_package", ["family", "release", "package"], unique=False
        )

    op.create_table(
        "scan_inventories",
        sa.Column("scan_id", sa.Uuid(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", control_plane.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["scan_id"],
            ["scans.id"],
            name=op.f("fk_scan_inventories_scan_id_scans"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("scan_id", name=op.f("pk_scan_inventories")),
    )
    op.create_table(
        "scan_issue_counts",
        sa.Column("scan_id", sa.Uuid(), nullable=False),
        sa.Column("critical", sa.Integer(), nullable=False),
        sa.Column("high", sa.Integer(), nullable=False),
        sa.Column("medium", sa.Integer(), nullable=False),
        sa.Column("low", sa.Integer(), nullable=False),
        sa.Column("unknown", sa.Integer(), nullable=False),
        sa.Column("fixable", sa.Integer(), nullable=False),
        sa.Column("matched_at", control_plane.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["scan_id"],
            ["scans.id"],
            name=op.f("fk_scan_issue_counts_scan_id_scans"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("scan_id", name=op.f("pk_scan_issue_counts")),
    )


def downgrade() -> None:
    op.drop_table("scan_issue_counts")
    op.drop_table("scan_inventories")
    with op.batch_alter_table("advisory_packages", schema=None) as batch_op:
        batch_op.drop_index("ix_advisory_packages_stream_package")
        batch_op.drop_index(batch_op.f("ix_advisory_packages_advisory_pk"))

    op.drop_table("advisory_packages")
    with op.batch_alter_table("advisories", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_advisories_advisory_id"))

    op.drop_table("advisories")
