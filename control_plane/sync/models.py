"""Stored sync state: one policy per integration, the runs (real and dry), and the tags the
control plane has observed (first-seen time, digest, the project the sync made).

Run rows are the work queue of :mod:`control_plane.sync.scheduler`: ``pending`` ->
``running`` (claimed by one process: ``claimed_by``, ``heartbeat_at``) -> ``completed`` |
``failed``. A claim whose heartbeat stopped (its process died) is taken again.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.ids import new_id
from control_plane.models import Base, utcnow


class SyncPolicyRow(Base):
    """The import policy of one integration (Snyk's container_registry_import_policy)."""

    __tablename__ = "sync_policies"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    integration_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"), unique=True
    )
    #: the validated policy JSON (``control_plane.sync.policy.SyncPolicy.document``)
    document: Mapped[dict[str, Any]] = mapped_column()
    #: ImportAllNew counts from here; a replaced policy starts again
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: the scheduler makes a run when this has passed
    next_run_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)


class SyncRun(Base):
    """A run or a dry run of a policy (a dry run's id is Snyk's ``dry_run_job`` id)."""

    __tablename__ = "sync_runs"
    __table_args__ = (
        Index("ix_sync_runs_status_id", "status", "id"),
        Index("ix_sync_runs_integration_id_id", "integration_id", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    integration_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE")
    )
    #: run / dry_run
    kind: Mapped[str] = mapped_column(String(16))
    #: schedule / manual / policy (a new or replaced policy) / dry_run
    trigger: Mapped[str] = mapped_column(String(16))
    #: pending / running / completed / failed
    status: Mapped[str] = mapped_column(String(16), default="pending")
    #: the policy evaluated (a dry run's own; a run's copy at its start)
    policy: Mapped[dict[str, Any]] = mapped_column()
    #: the policy's creation time (ImportAllNew); a dry run's is its own creation
    policy_created_at: Mapped[dt.datetime] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    finished_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    claimed_by: Mapped[str | None] = mapped_column(String(200), default=None)
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    listed: Mapped[int] = mapped_column(Integer, default=0)
    imported: Mapped[int] = mapped_column(Integer, default=0)
    deleted: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    #: the step that failed (list-repositories, list-tags, evaluate, import, delete)
    failed_step: Mapped[str | None] = mapped_column(String(32), default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    #: a dry run's answer: images_to_import, images_to_delete, total_images_processed
    result: Mapped[dict[str, Any] | None] = mapped_column(default=None)


class ObservedTag(Base):
    """A ``repository:tag`` of an integration as the sync last listed it."""

    __tablename__ = "sync_observed_tags"

    integration_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True
    )
    repository: Mapped[str] = mapped_column(String(500), primary_key=True)
    tag: Mapped[str] = mapped_column(String(300), primary_key=True)
    digest: Mapped[str | None] = mapped_column(String(100), default=None)
    pushed_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    first_observed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: listed at the integration's first listing (no push time: not "new" for the policies)
    baseline: Mapped[bool] = mapped_column(Boolean, default=False)
    #: the project the sync made for it, and the digest it last queued a scan for
    project_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("projects.id", ondelete="SET NULL"), default=None
    )
    imported_digest: Mapped[str | None] = mapped_column(String(100), default=None)
    #: the sync deleted that project (``delete_images``): not a person's tombstone, so a
    #: later match brings it back
    pruned: Mapped[bool] = mapped_column(Boolean, default=False)
