"""What the advisories domain can do with the database: import read advisories incrementally,
and load the ones in force for matching.

Import compares each record with the stored one of the same (source, scope, id): a record
whose ``modified`` is not newer, or (for formats without ``modified``) whose content is the
same, is left alone; a newer one replaces the stored record and its affected packages. The
report counts new, updated, withdrawn and unchanged records, and lists every skipped one with
its reason.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.advisories.models import AffectedPackage, StoredAdvisory
from control_plane.advisories.records import Advisory, Affected, Severity, Skipped, Stream
from control_plane.ids import new_id
from control_plane.models import utcnow

BATCH = 1000
# Core tables, not the ORM classes, for the bulk statements: a plain executemany, without the
# ORM's per-row bookkeeping (and RETURNING of generated keys) that made PostgreSQL imports
# several times slower.
_ADVISORIES = cast(Table, StoredAdvisory.__table__)
_PACKAGES = cast(Table, AffectedPackage.__table__)


class ImportReport:
    __slots__ = ("new", "skipped", "unchanged", "updated", "withdrawn")

    def __init__(self) -> None:
        self.new = 0
        self.updated = 0
        self.withdrawn = 0
        self.unchanged = 0
        self.skipped: list[Skipped] = []

    @property
    def changed(self) -> bool:
        """True if matching results may differ after this import."""
        return bool(self.new or self.updated or self.withdrawn)

    def summary(self) -> str:
        return (
            f"{self.new} new, {self.updated} updated, {self.withdrawn} withdrawn, "
            f"{self.unchanged} unchanged, {len(self.skipped)} skipped"
        )


def _key(advisory: Advisory) -> tuple[str, str, str]:
    return (advisory.source, advisory.scope, advisory.id)


def _time(text: str | None) -> dt.datetime | None:
    # the readers normalise to "YYYY-MM-DDTHH:MM:SS[.ffffff]Z"
    return dt.datetime.fromisoformat(text) if text else None


def content_sha256(advisory: Advisory) -> str:
    """A digest of the normalised record: equal digests, nothing to update."""
    text = json.dumps(advisory, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _severity_json(severity: tuple[Severity, ...]) -> list[list[str]]:
    return [[s.kind, s.value] for s in severity]


def _row(advisory: Advisory, pk: Any, now: dt.datetime) -> dict[str, Any]:
    return {
        "id": pk,
        "source": advisory.source,
        "scope": advisory.scope,
        "advisory_id": advisory.id,
        "aliases": list(advisory.aliases),
        "modified": _time(advisory.modified),
        "published": _time(advisory.published),
        "withdrawn": _time(advisory.withdrawn),
        "summary": advisory.summary,
        "severity": _severity_json(advisory.severity),
        "content_sha256": content_sha256(advisory),
        "updated_at": now,
    }


def _package_rows(advisory: Advisory, pk: Any) -> list[dict[str, Any]]:
    return [
        {
            "advisory_pk": pk,
            "ecosystem": entry.ecosystem,
            "family": entry.stream.family,
            "release": entry.stream.release,
            "package": entry.package,
            "fixed": entry.fixed,
            "introduced": entry.introduced,
            "last_affected": entry.last_affected,
            "severity": _severity_json(entry.severity),
        }
        for entry in advisory.affected
    ]


def _newest_copies(advisories: Iterable[Advisory], report: ImportReport) -> list[Advisory]:
    """One advisory per key: the same record read twice (two files, two mirrors) once."""
    kept: dict[tuple[str, str, str], Advisory] = {}
    for advisory in advisories:
        key = _key(advisory)
        other = kept.get(key)
        if other is None:
            kept[key] = advisory
            continue
        older, newer = (other, advisory)
        if (other.modified or "") > (advisory.modified or ""):
            older, newer = advisory, other
        kept[key] = newer
        report.skipped.append(
            Skipped(
                f"{older.source} {older.id}",
                "modified",
                "another copy in this import is as new or newer",
            )
        )
    return list(kept.values())


async def _import_batch(
    session: AsyncSession, batch: Sequence[Advisory], report: ImportReport
) -> None:
    ids = {advisory.id for advisory in batch}
    stored = {
        (row.source, row.scope, row.advisory_id): row
        for row in (
            await session.execute(
                select(
                    StoredAdvisory.id,
                    StoredAdvisory.source,
                    StoredAdvisory.scope,
                    StoredAdvisory.advisory_id,
                    StoredAdvisory.modified,
                    StoredAdvisory.withdrawn,
                    StoredAdvisory.content_sha256,
                ).where(StoredAdvisory.advisory_id.in_(ids))
            )
        ).all()
    }
    now = utcnow()
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    packages: list[dict[str, Any]] = []
    for advisory in batch:
        old = stored.get(_key(advisory))
        if old is None:
            pk = new_id()
            inserts.append({**_row(advisory, pk, now), "imported_at": now})
            packages.extend(_package_rows(advisory, pk))
            if advisory.withdrawn:
                report.withdrawn += 1
            else:
                report.new += 1
            continue
        modified = _time(advisory.modified)
        if modified is not None and old.modified is not None and modified <= old.modified:
            report.unchanged += 1
            continue
        row = _row(advisory, old.id, now)
        if row["content_sha256"] == old.content_sha256:
            report.unchanged += 1
            continue
        updates.append(row)
        packages.extend(_package_rows(advisory, old.id))
        if advisory.withdrawn and old.withdrawn is None:
            report.withdrawn += 1
        else:
            report.updated += 1
    if updates:
        await session.execute(
            delete(AffectedPackage).where(
                AffectedPackage.advisory_pk.in_([u["id"] for u in updates])
            )
        )
        fields = [name for name in updates[0] if name != "id"]
        statement = (
            update(_ADVISORIES)
            .where(_ADVISORIES.c.id == bindparam("stored_pk"))
            .values({name: bindparam(name) for name in fields})
        )
        await session.execute(statement, [{"stored_pk": u["id"], **u} for u in updates])
    if inserts:
        await session.execute(insert(_ADVISORIES), inserts)
    if packages:
        await session.execute(insert(_PACKAGES), packages)


async def import_advisories(
    session: AsyncSession,
    advisories: Iterable[Advisory],
    skipped: Iterable[Skipped] = (),
    *,
    batch_size: int = BATCH,
) -> ImportReport:
    """Store ``advisories`` (as the readers returned them) in the caller's transaction."""
    report = ImportReport()
    report.skipped.extend(skipped)
    todo = _newest_copies(advisories, report)
    for start in range(0, len(todo), batch_size):
        await _import_batch(session, todo[start : start + batch_size], report)
    return report


def _severities(value: Any) -> tuple[Severity, ...]:
    return tuple(Severity(kind, text) for kind, text in value or ())


def _iso(moment: dt.datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(dt.UTC).replace(tzinfo=None).isoformat() + "Z"


async def load_advisories(session: AsyncSession) -> list[Advisory]:
    """Every advisory in force (not withdrawn), with its affected packages, for matching."""
    affected: dict[Any, list[Affected]] = {}
    rows = await session.execute(
        select(
            AffectedPackage.advisory_pk,
            AffectedPackage.ecosystem,
            AffectedPackage.family,
            AffectedPackage.release,
            AffectedPackage.package,
            AffectedPackage.fixed,
            AffectedPackage.introduced,
            AffectedPackage.last_affected,
            AffectedPackage.severity,
        )
        .join(StoredAdvisory, StoredAdvisory.id == AffectedPackage.advisory_pk)
        .where(StoredAdvisory.withdrawn.is_(None))
        .order_by(AffectedPackage.id)
    )
    for pk, ecosystem, family, release, package, fixed, introduced, last, severity in rows:
        affected.setdefault(pk, []).append(
            Affected(
                ecosystem,
                Stream(family, release),
                package,
                fixed,
                introduced,
                last,
                _severities(severity),
            )
        )
    rows = await session.execute(
        select(
            StoredAdvisory.id,
            StoredAdvisory.advisory_id,
            StoredAdvisory.source,
            StoredAdvisory.scope,
            StoredAdvisory.aliases,
            StoredAdvisory.modified,
            StoredAdvisory.published,
            StoredAdvisory.summary,
            StoredAdvisory.severity,
        )
        .where(StoredAdvisory.withdrawn.is_(None))
        .order_by(StoredAdvisory.id)
    )
    return [
        Advisory(
            id=advisory_id,
            source=source,
            affected=tuple(affected.get(pk, ())),
            aliases=tuple(aliases),
            modified=_iso(modified),
            published=_iso(published),
            withdrawn=None,
            summary=summary,
            severity=_severities(severity),
            scope=scope,
        )
        for pk, advisory_id, source, scope, aliases, modified, published, summary, severity in rows
    ]
