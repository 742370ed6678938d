"""Stored advisories: one row per advisory, one per package and release it affects, and
the issue counts of matched scans.

The affected rows are what matching reads, by (family, release, package); the advisory row
keeps what the import compares (``modified``, ``content_sha256``) and what issues show.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from control_plane.ids import new_id
from control_plane.models import Base, utcnow


class StoredAdvisory(Base):
    __tablename__ = "advisories"
    __table_args__ = (UniqueConstraint("source", "scope", "advisory_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    #: osv / alpine-secdb / debian-tracker
    source: Mapped[str] = mapped_column(String(32))
    #: separates one source's records that share an id (secdb: "alpine 3.20 main")
    scope: Mapped[str] = mapped_column(String(200), default="")
    advisory_id: Mapped[str] = mapped_column(String(200), index=True)
    aliases: Mapped[list[Any]] = mapped_column(default=list)
    modified: Mapped[dt.datetime | None] = mapped_column(default=None)
    published: Mapped[dt.datetime | None] = mapped_column(default=None)
    withdrawn: Mapped[dt.datetime | None] = mapped_column(default=None)
    summary: Mapped[str] = mapped_column(Text, default="")
    #: [[kind, value], ...]: CVSS vectors and distro ratings of the whole advisory
    severity: Mapped[list[Any]] = mapped_column(default=list)
    #: of the normalised record: formats without ``modified`` update only when this changes
    content_sha256: Mapped[str] = mapped_column(String(64))
    imported_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    packages: Mapped[list[AffectedPackage]] = relationship(
        lazy="raise", cascade="all, delete-orphan", passive_deletes=True
    )


class AffectedPackage(Base):
    __tablename__ = "advisory_packages"
    __table_args__ = (Index("ix_advisory_packages_stream_package", "family", "release", "package"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    advisory_pk: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("advisories.id", ondelete="CASCADE"), index=True
    )
    #: as the source wrote it ("Debian:12", "Red Hat:enterprise_linux:9::appstream")
    ecosystem: Mapped[str] = mapped_column(String(200))
    family: Mapped[str] = mapped_column(String(32))
    release: Mapped[str] = mapped_column(String(32))
    package: Mapped[str] = mapped_column(String(200))
    fixed: Mapped[str | None] = mapped_column(String(200), default=None)
    introduced: Mapped[str | None] = mapped_column(String(200), default=None)
    last_affected: Mapped[str | None] = mapped_column(String(200), default=None)
    severity: Mapped[list[Any]] = mapped_column(default=list)


class ScanIssueCounts(Base):
    """How many issues a scan's packages have against the advisories in force, by severity.

    Written when a scan lands and again for every project's latest scan when advisories
    change; the issue list itself is computed from the stored SBOM when asked for.
    """

    __tablename__ = "scan_issue_counts"

    scan_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("scans.id", ondelete="CASCADE"), primary_key=True
    )
    critical: Mapped[int] = mapped_column(Integer, default=0)
    high: Mapped[int] = mapped_column(Integer, default=0)
    medium: Mapped[int] = mapped_column(Integer, default=0)
    low: Mapped[int] = mapped_column(Integer, default=0)
    unknown: Mapped[int] = mapped_column(Integer, default=0)
    fixable: Mapped[int] = mapped_column(Integer, default=0)
    matched_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ScanInventory(Base):
    """What matching needs of a scan, read once from its SBOM and kept compact (zstd JSON),
    so re-matching thousands of stored scans does not parse their SBOMs again."""

    __tablename__ = "scan_inventories"

    scan_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("scans.id", ondelete="CASCADE"), primary_key=True
    )
    content: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
