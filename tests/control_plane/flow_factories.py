"""Rows the scan-flow tests need, built through the models (not through HTTP)."""

from __future__ import annotations

import json
from typing import Any

from cryptography.fernet import Fernet
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.encryption import SecretBox
from control_plane.models import Integration, Org, Project, Target


def new_box() -> SecretBox:
    return SecretBox(Fernet.generate_key())


async def integration(
    session: AsyncSession, *, max_in_flight: int = 4, org: Org | None = None
) -> Integration:
    if org is None:
        org = Org(name="Flow", slug=f"flow-{id(session)}-{max_in_flight}")
        session.add(org)
        await session.flush()
    row = Integration(
        org_id=org.id,
        integration_type="docker-hub",
        profile_name="hub",
        has_broker=True,
        max_in_flight=max_in_flight,
    )
    session.add(row)
    await session.flush()
    return row


async def project(session: AsyncSession, integ: Integration, repository: str, tag: str) -> Project:
    target = Target(
        org_id=integ.org_id, integration_id=integ.id, repository=repository, display_name=repository
    )
    session.add(target)
    await session.flush()
    row = Project(
        org_id=integ.org_id,
        target_id=target.id,
        integration_id=integ.id,
        name=f"{repository}:{tag}",
        target_reference=tag,
        origin=integ.integration_type,
        tags=[],
    )
    session.add(row)
    await session.flush()
    return row


def cyclonedx(packages: list[tuple[str, str, str]], *, image: str = "app") -> dict[str, Any]:
    """A CycloneDX document shaped like the agent's: (purl type, name, version) per package."""
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "metadata": {
            "timestamp": "2026-01-01T00:00:00Z",
            "component": {"type": "container", "name": image, "version": "sha256:" + "a" * 64},
        },
        "components": [
            {"type": "operating-system", "bom-ref": "os:debian:12", "name": "debian"},
            *(
                {
                    "type": "library",
                    "bom-ref": f"pkg:{n}",
                    "name": name,
                    "version": version,
                    "purl": f"pkg:{kind}/debian/{name}@{version}",
                    "licenses": [{"license": {"id": "MIT"}}],
                }
                for n, (kind, name, version) in enumerate(packages)
            ),
        ],
    }


def result_body(
    scan_id: str, ticket: str, *, sbom: dict[str, Any] | None, result_id: str, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "jobId": "job-" + result_id,
        "resultId": result_id,
        "image": "app:1",
        "status": "success" if sbom is not None else "error",
        "digest": "sha256:" + "b" * 64,
        "platform": "linux/amd64",
        "format": "cyclonedx-json",
        "packageCount": len([c for c in (sbom or {}).get("components", []) if c.get("purl")]),
        "context": {"scan": scan_id, "ticket": ticket},
    }
    if sbom is not None:
        body["sbom"] = sbom
    body.update(extra)
    return body


def raw(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()
