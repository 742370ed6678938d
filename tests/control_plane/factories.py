"""Build the control plane's domain through its services (not through HTTP)."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.accounts.services import add_member, create_org, create_token, create_user
from control_plane.encryption import SecretBox
from control_plane.integrations.services import IntegrationInput, create_integration
from control_plane.models import Integration, Org, Project, User
from control_plane.projects.services import import_project
from control_plane.scans.services import ScanOutcome, enqueue_scan, record_success
from control_plane.targets.services import get_or_create_target

_seq = itertools.count(1)


@dataclass
class Account:
    org: Org
    user: User
    token: str


async def account(
    session: AsyncSession, org_name: str | None = None, *, admin: bool = False
) -> Account:
    n = next(_seq)
    org = await create_org(session, org_name or f"Org {n}")
    user = await create_user(session, f"user{n}", email=f"user{n}@example.test", is_admin=admin)
    await add_member(session, org, user)
    _, token = await create_token(session, user, "test")
    return Account(org, user, token)


async def integration(
    session: AsyncSession,
    box: SecretBox,
    org: Org,
    kind: str = "docker-hub",
    *,
    brokered: bool = True,
    broker_token: str | None = None,
) -> Integration:
    given = IntegrationInput(
        integration_type=kind,
        profile_name=f"{kind} registry",
        has_broker=brokered,
        broker_token=broker_token,
        credentials=None
        if brokered
        else {
            "username": "reader",
            "password": "s3cret-registry-pass",
            "registry_base": "https://registry.example.test",
        },
    )
    made, _ = await create_integration(session, box, org.id, given)
    return made


def cyclonedx(name: str, packages: int) -> bytes:
    components = [{"type": "library", "name": f"pkg{i}", "version": "1.0"} for i in range(packages)]
    return json.dumps(
        {
            "bomFormat": "CycloneDX",
            "specVersion": "1.6",
            "metadata": {"component": {"name": name}},
            "components": components,
        }
    ).encode()


async def scanned_project(
    session: AsyncSession,
    org: Org,
    integration_: Integration | None,
    repository: str,
    tag: str = "latest",
    *,
    package_type: str | None = "deb",
    package_count: int = 12,
    importer: User | None = None,
    tags: list[tuple[str, str]] | None = None,
    target_tags: list[dict[str, str]] | None = None,
) -> Project:
    """A project imported through ``integration_`` whose scan has landed (no scan when
    ``package_type`` is None)."""
    target = await get_or_create_target(session, org.id, integration_, repository, tags=target_tags)
    project = await import_project(
        session,
        target,
        tag,
        integration=integration_,
        importer_id=importer.id if importer else None,
        tags=tags,
    )
    assert project is not None
    if package_type is not None:
        scan = await enqueue_scan(session, project, requested_by=importer.id if importer else None)
        name = f"{repository}:{tag}"
        await record_success(
            session,
            scan.id,
            ScanOutcome(
                image_digest="sha256:" + f"{next(_seq):064x}",
                platform="linux/amd64",
                package_type=package_type,
                package_count=package_count,
                duration_ms=150,
                sboms={"cyclonedx": cyclonedx(name, package_count)},
            ),
        )
    return project


async def project_in_new_org(
    session: AsyncSession, box: SecretBox, repository: str = "app", tag: str = "1", **kw: Any
) -> tuple[Account, Integration, Project]:
    """A new org with a Docker Hub integration and one project of ``repository:tag``."""
    acct = await account(session)
    hub = await integration(session, box, acct.org)
    project = await scanned_project(session, acct.org, hub, repository, tag, **kw)
    return acct, hub, project
