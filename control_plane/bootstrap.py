"""Start-up of the control plane: settings -> database (migrated) -> key -> first org/admin."""

from __future__ import annotations

from dataclasses import dataclass

from control_plane.accounts.services import bootstrap
from control_plane.db import Database, open_database
from control_plane.encryption import SecretBox, load_box
from control_plane.settings import Settings
from shared.logging import get_logger, register_secrets

log = get_logger("control_plane")


@dataclass
class ControlPlane:
    settings: Settings
    db: Database
    box: SecretBox

    async def close(self) -> None:
        await self.db.close()


async def open_control_plane(settings: Settings) -> ControlPlane:
    """Open (and migrate) the database, load the key, make the first org and admin token.

    Safe on every start and on several replicas at once.
    """
    register_secrets(
        settings.CRBROKER_ADMIN_TOKEN,
        settings.CRBROKER_SECRET_KEY,
        settings.CRBROKER_ADMIN_PASSWORD,
    )
    box = load_box(settings.CRBROKER_SECRET_KEY, settings.secret_key_file)
    db = await open_database(settings.database_url, pool_size=settings.DATABASE_POOL_SIZE)
    try:
        async with db.sessions() as session, session.begin():
            org = await bootstrap(
                session,
                settings.CRBROKER_ORG_NAME,
                settings.CRBROKER_ADMIN_TOKEN,
                settings.CRBROKER_ADMIN_PASSWORD,
            )
    except Exception:
        await db.close()
        raise
    log.info("control plane ready", database=db.dialect, org=org.slug)
    return ControlPlane(settings, db, box)
