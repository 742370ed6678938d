"""The control plane's tables (SQLAlchemy 2, typed).

Every table change goes in a new Alembic revision under ``control_plane/migrations/versions``;
the tests compare these models with the migrated schema, so the two cannot drift apart.

Ids are time-ordered UUIDs (:mod:`control_plane.ids`); timestamps are timezone-aware UTC.
Secrets are never stored in clear: API tokens as sha256, broker tokens and direct
integrations' credentials Fernet-encrypted (:mod:`control_plane.secrets`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from control_plane.ids import new_id

#: constraint names fixed by convention, so migrations on SQLite (batch mode) and
#: PostgreSQL refer to the same names
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC timestamp on every database (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.UTC)

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        dt.datetime: UTCDateTime(),
        uuid.UUID: Uuid(),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
    }


def _id() -> Mapped[uuid.UUID]:
    return mapped_column(primary_key=True, default=new_id)


def _created() -> Mapped[dt.datetime]:
    return mapped_column(default=utcnow)


def _updated() -> Mapped[dt.datetime]:
    return mapped_column(default=utcnow, onupdate=utcnow)


# --- accounts ------------------------------------------------------------------------------


class Org(Base):
    __tablename__ = "orgs"

    id: Mapped[uuid.UUID] = _id()
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(200), unique=True)
    group_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    is_personal: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _updated()


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = _id()
    name: Mapped[str] = mapped_column(String(200))
    username: Mapped[str] = mapped_column(String(200), unique=True)
    email: Mapped[str | None] = mapped_column(String(320), default=None)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    #: an admin sees and manages every org
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    #: argon2 hash of the console password (None: the user signs in with API tokens only)
    password_hash: Mapped[str | None] = mapped_column(String(300), default=None)
    created_at: Mapped[dt.datetime] = _created()


class Membership(Base):
    """Which orgs a user (and so each of the user's API tokens) may see."""

    __tablename__ = "memberships"

    org_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("orgs.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(32), default="collaborator")
    created_at: Mapped[dt.datetime] = _created()


class ApiToken(Base):
    """An API token (``Authorization: token <t>``), kept as the sha256 of its value."""

    __tablename__ = "api_tokens"

    id: Mapped[uuid.UUID] = _id()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = _created()
    last_used_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(default=None)

    user: Mapped[User] = relationship(lazy="joined")


# --- registries ----------------------------------------------------------------------------


class Integration(Base):
    """A registry connection, in the shape of Snyk's REST integrations resource.

    Brokered (``has_broker``): holds the broker token its customer's broker client uses; the
    registry credentials stay with that client. Direct: holds the registry host and the
    credentials, encrypted. Neither secret is ever rendered after creation.
    """

    __tablename__ = "integrations"

    id: Mapped[uuid.UUID] = _id()
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    #: a CR_TYPE name: ecr, docker-hub, artifactory-cr, harbor-cr, github-cr, ...
    integration_type: Mapped[str] = mapped_column(String(64))
    profile_name: Mapped[str] = mapped_column(String(200))
    has_broker: Mapped[bool] = mapped_column(Boolean)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    #: registry host with scheme (direct; optional and informative for brokered)
    registry_base: Mapped[str | None] = mapped_column(String(500), default=None)
    #: sha256 of the broker token: finds the integration a broker connection belongs to
    broker_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    #: Fernet token of the broker token (the control plane calls /broker/<token>/...)
    broker_token_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    #: Fernet token of the JSON credentials of a direct integration
    credentials_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    #: scans of this integration in flight at most (the queue's per-integration bound)
    max_in_flight: Mapped[int] = mapped_column(Integer, default=4)
    #: the last connection check: passed or not, and what the agent said (no secret in it)
    status_ok: Mapped[bool | None] = mapped_column(Boolean, default=None)
    status_message: Mapped[str | None] = mapped_column(Text, default=None)
    status_checked_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    #: when the registry's images were last listed into projects
    last_listed_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _updated()


class Target(Base):
    """A repository in a registry (Snyk's target); ``display_name`` is the repository name."""

    __tablename__ = "targets"
    __table_args__ = (UniqueConstraint("org_id", "integration_id", "repository"),)

    id: Mapped[uuid.UUID] = _id()
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    integration_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("integrations.id", ondelete="SET NULL"), default=None, index=True
    )
    repository: Mapped[str] = mapped_column(String(500))
    display_name: Mapped[str] = mapped_column(String(500))
    url: Mapped[str | None] = mapped_column(String(1000), default=None)
    #: repository resource tags in AWS's shape: [{"Key": ..., "Value": ...}] (ECR)
    tags: Mapped[list[Any]] = mapped_column(default=list)
    is_private: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _updated()
    #: deleted through the API (its projects are tombstoned with it); an import brings it back
    deleted_at: Mapped[dt.datetime | None] = mapped_column(default=None)

    integration: Mapped[Integration | None] = relationship(lazy="raise")


# --- projects and scans --------------------------------------------------------------------

PROJECT_TYPES = ("deb", "apk", "rpm", "linux")
SCAN_STATUSES = ("queued", "claimed", "running", "succeeded", "failed")


class Project(Base):
    """One image tag of a target: ``name`` is ``{repository}:{tag}``.

    The scan fields (``image_digest``, ``platform``, ``type``, ``latest_scan_id``) describe the
    latest scan that succeeded; a scan that is queued, running or failed changes none of them,
    so the previous result stays visible until a new one has landed. Deleting leaves a
    tombstone (``deleted_at``) that later automatic imports respect.
    """

    __tablename__ = "projects"
    __table_args__ = (
        UniqueConstraint("target_id", "target_reference"),
        Index("ix_projects_org_id_id", "org_id", "id"),
        Index("ix_projects_org_id_name", "org_id", "name"),
    )

    id: Mapped[uuid.UUID] = _id()
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    target_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("targets.id", ondelete="CASCADE"))
    integration_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("integrations.id", ondelete="SET NULL"), default=None, index=True
    )
    name: Mapped[str] = mapped_column(String(800))
    #: the image tag
    target_reference: Mapped[str] = mapped_column(String(300))
    #: the integration type at import time (Snyk's origin: ecr, docker-hub, ...)
    origin: Mapped[str] = mapped_column(String(64))
    #: deb / apk / rpm, linux when the image has no package manager; None until a scan lands
    type: Mapped[str | None] = mapped_column(String(32), default=None)
    image_digest: Mapped[str | None] = mapped_column(String(100), default=None)
    platform: Mapped[str | None] = mapped_column(String(100), default=None)
    #: active / inactive (Snyk's statuses)
    status: Mapped[str] = mapped_column(String(16), default="active")
    business_criticality: Mapped[list[Any]] = mapped_column(default=list)
    environment: Mapped[list[Any]] = mapped_column(default=list)
    lifecycle: Mapped[list[Any]] = mapped_column(default=list)
    test_frequency: Mapped[str] = mapped_column(String(16), default="daily")
    importer_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    owner_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    #: the latest succeeded scan (what the API shows); no foreign key, so projects and scans
    #: do not refer to each other in a cycle (scans go with their project)
    latest_scan_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    #: packages found by the latest succeeded scan (Snyk's latest_dependency_total)
    dependency_total: Mapped[int | None] = mapped_column(Integer, default=None)
    dependency_total_updated_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _updated()
    deleted_at: Mapped[dt.datetime | None] = mapped_column(default=None)

    target: Mapped[Target] = relationship(lazy="raise")
    tags: Mapped[list[ProjectTag]] = relationship(
        lazy="selectin",
        cascade="all, delete-orphan",
        order_by="ProjectTag.position",
    )


class ProjectTag(Base):
    """A project tag ``{key, value}``: a table of its own so ``tags=key:value`` is an index lookup."""

    __tablename__ = "project_tags"
    __table_args__ = (Index("ix_project_tags_key_value", "key", "value"),)

    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(200))
    value: Mapped[str] = mapped_column(String(500))


class ImportJob(Base):
    """One import request (Snyk's v1 import job): the caller polls it; its scans say how far it is."""

    __tablename__ = "import_jobs"

    id: Mapped[uuid.UUID] = _id()
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    integration_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("integrations.id", ondelete="SET NULL"), default=None
    )
    requested_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    #: pending / complete / failed (kept in step with the job's scans by the queue)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _updated()


class Scan(Base):
    """One scan of a project, kept forever (the project's history), and a row of the queue.

    Queue life: queued -> claimed (a control-plane process took it: ``claimed_by``,
    ``claimed_at``, ``attempts``) -> running (the agent accepted it) -> succeeded | failed.
    ``integration_id`` bounds how many of one integration's scans are in flight.
    """

    __tablename__ = "scans"
    __table_args__ = (
        Index("ix_scans_status_integration_id", "status", "integration_id"),
        Index("ix_scans_project_id_id", "project_id", "id"),
        Index("ix_scans_queue", "status", "priority", "id"),
    )

    id: Mapped[uuid.UUID] = _id()
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    integration_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("integrations.id", ondelete="SET NULL"), default=None
    )
    import_job_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("import_jobs.id", ondelete="SET NULL"), default=None, index=True
    )
    #: import / retest / schedule
    reason: Mapped[str] = mapped_column(String(32), default="import")
    #: higher runs first (ad-hoc before scheduled)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    requested_at: Mapped[dt.datetime] = _created()
    requested_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    #: not claimed before this time (retry back-off)
    run_after: Mapped[dt.datetime | None] = mapped_column(default=None)
    claimed_by: Mapped[str | None] = mapped_column(String(200), default=None)
    claimed_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    #: a claim not renewed by then is lost (its process died) and may be taken again
    lease_until: Mapped[dt.datetime | None] = mapped_column(default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    finished_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    #: the agent's idempotency key: a result arriving twice is stored once
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    #: the pipeline step that failed (credentials, manifest, layers, catalog, sbom, callback)
    failed_step: Mapped[str | None] = mapped_column(String(64), default=None)
    image_digest: Mapped[str | None] = mapped_column(String(100), default=None)
    platform: Mapped[str | None] = mapped_column(String(100), default=None)
    #: deb / apk / rpm / linux as found by this scan
    package_type: Mapped[str | None] = mapped_column(String(32), default=None)
    package_count: Mapped[int | None] = mapped_column(Integer, default=None)
    duration_ms: Mapped[int | None] = mapped_column(Integer, default=None)


class ScanSbom(Base):
    """An SBOM of a scan, stored compressed (zstandard)."""

    __tablename__ = "scan_sboms"
    __table_args__ = (UniqueConstraint("scan_id", "format"),)

    id: Mapped[uuid.UUID] = _id()
    scan_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("scans.id", ondelete="CASCADE"))
    #: cyclonedx / spdx
    format: Mapped[str] = mapped_column(String(16))
    media_type: Mapped[str] = mapped_column(String(100))
    compression: Mapped[str] = mapped_column(String(16), default="zstd")
    content: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = _created()


class ResultChunk(Base):
    """One body of a result the agent split (``chunk: {index, count, fields}``), kept until
    every body is in; in the database because the bodies may reach different replicas."""

    __tablename__ = "result_chunks"

    #: the agent's resultId (one result, split in ``count`` bodies)
    result_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    index: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    scan_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("scans.id", ondelete="CASCADE"), index=True
    )
    #: the body as received, zstd-compressed
    body: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[dt.datetime] = _created()


# Tables of domains that keep their models beside their code register on Base here, so that
# Alembic and the schema test see every table whichever module is imported first.
from control_plane.advisories import models as _advisory_models  # noqa: E402, F401
