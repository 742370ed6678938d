"""A registry's images list and status, as the console's "Update images list" and "Refresh
status" buttons ask: the agent lists or checks, the result is stored.

Listing creates a project (not scanned) for each image not yet known, the way an automatic
import does: images deleted by a user stay deleted. An inactive registry is never listed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.errors import InvalidInput
from control_plane.integrations import services as integrations
from control_plane.integrations.registry_agent import Check, RegistryAgent
from control_plane.models import Integration, utcnow
from control_plane.projects.image_list import image_counts
from control_plane.projects.services import import_project
from control_plane.targets.services import get_or_create_target


@dataclass(frozen=True)
class ListingReport:
    listed: int
    added: int


async def add_listed_images(
    session: AsyncSession, integration: Integration, images: list[tuple[str, str]]
) -> ListingReport:
    """Projects for listed ``(repository, tag)`` pairs; known or deleted ones are left alone."""
    if not integration.is_active:
        raise InvalidInput(
            f"registry {integration.profile_name} is inactive: its images are not listed"
        )
    before = (await image_counts(session, [integration.id])).get(integration.id, 0)
    targets: dict[str, Any] = {}
    for repository, tag in images:
        target = targets.get(repository)
        if target is None:
            target = await get_or_create_target(
                session, integration.org_id, integration, repository
            )
            targets[repository] = target
        await import_project(
            session, target, tag, integration=integration, importer_id=None, automatic=True
        )
    added = (await image_counts(session, [integration.id])).get(integration.id, 0) - before
    integration.last_listed_at = utcnow()
    await session.flush()
    return ListingReport(listed=len(images), added=added)


async def update_images_list(
    session: AsyncSession, agent: RegistryAgent, org_id: uuid.UUID, integration_id: uuid.UUID
) -> ListingReport:
    """List the registry through its agent and add the images not known yet."""
    integration = await integrations.get_integration(session, org_id, integration_id)
    if not integration.is_active:
        raise InvalidInput(
            f"registry {integration.profile_name} is inactive: its images are not listed"
        )
    images = await agent.list_images(agent.base(integration))
    return await add_listed_images(session, integration, images)


async def refresh_status(
    session: AsyncSession, agent: RegistryAgent, org_id: uuid.UUID, integration_id: uuid.UUID
) -> Check:
    """Check the registry's connection through its agent and store the outcome."""
    integration = await integrations.get_integration(session, org_id, integration_id)
    check = await agent.check(agent.base(integration))
    await integrations.record_check(session, integration, check.ok, check.message)
    return check


async def try_credentials(agent: RegistryAgent, kind: str, credentials: dict[str, Any]) -> Check:
    """ "Test it" on a registry not saved yet: the co-located agent tries the credentials."""
    return await agent.check(agent.base_for_unsaved(kind, credentials))
