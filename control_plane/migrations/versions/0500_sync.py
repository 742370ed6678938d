"""registry sync: policies, runs, observed tags

Revision ID: 0500
Revises: 0400
Create Date: 2026-12-06 04:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import control_plane.models

revision = "0500"
down_revision = "0400"
branch_labels = None
depends_on = None

UTC = control_plane.models.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "sync_policies",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("integration_id", sa.Uuid(), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("created_at", UTC(timezone=True), nullable=False),
        sa.Column("updated_at", UTC(timezone=True), nullable=False),
        sa.Column("next_run_at", UTC(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integrations.id"],
            name=op.f("fk_sync_policies_integration_id_integrations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["orgs.id"], name=op.f("fk_sync_policies_org_id_orgs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_policies")),
        sa.UniqueConstraint("integration_id", name=op.f("uq_sync_policies_integration_id")),
    )
    with op.batch_alter_table("sync_policies", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sync_policies_next_run_at"), ["next_run_at"], unique=False
        )

    op.create_table(
        "sync_runs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("integration_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("policy", sa.JSON(), nullable=False),
        sa.Column("policy_created_at", UTC(timezone=True), nullable=False),
        sa.Column("created_at", UTC(timezone=True), nullable=False),
        sa.Column("started_at", UTC(timezone=True), nullable=True),
        sa.Column("finished_at", UTC(timezone=True), nullable=True),
        sa.Column("claimed_by", sa.String(length=200), nullable=True),
        sa.Column("heartbeat_at", UTC(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("listed", sa.Integer(), nullable=False),
        sa.Column("imported", sa.Integer(), nullable=False),
        sa.Column("deleted", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("failed_step", sa.String(length=32), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integrations.id"],
            name=op.f("fk_sync_runs_integration_id_integrations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["orgs.id"], name=op.f("fk_sync_runs_org_id_orgs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_runs")),
    )
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.create_index("ix_sync_runs_status_id", ["status", "id"], unique=False)
        batch_op.create_index(
            "ix_sync_runs_integration_id_id", ["integration_id", "id"], unique=False
        )

    op.create_table(
        "sync_observed_tags",
        sa.Column("integration_id", sa.Uuid(), nullable=False),
        sa.Column("repository", sa.String(length=500), nullable=False),
        sa.Column("tag", sa.String(length=300), nullable=False),
        sa.Column("digest", sa.String(length=100), nullable=True),
        sa.Column("pushed_at", UTC(timezone=True), nullable=True),
        sa.Column("first_observed_at", UTC(timezone=True), nullable=False),
        sa.Column("baseline", sa.Boolean(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=True),
        sa.Column("imported_digest", sa.String(length=100), nullable=True),
        sa.Column("pruned", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integrations.id"],
            name=op.f("fk_sync_observed_tags_integration_id_integrations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_sync_observed_tags_project_id_projects"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint(
            "integration_id", "repository", "tag", name=op.f("pk_sync_observed_tags")
        ),
    )


def downgrade() -> None:
    op.drop_table("sync_observed_tags")
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_sync_runs_integration_id_id")
        batch_op.drop_index("ix_sync_runs_status_id")
    op.drop_table("sync_runs")
    with op.batch_alter_table("sync_policies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sync_policies_next_run_at"))
    op.drop_table("sync_policies")
