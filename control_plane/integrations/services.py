"""What the integrations domain can do.

A brokered integration holds the broker token its customer's broker client connects with
(generated here unless the caller brings one); the registry credentials stay in that client.
A direct integration holds the registry credentials in the ``CR_CREDENTIALS`` JSON shape the
agent takes (:func:`shared.credentials.build_credentials_json`), Fernet-encrypted. The token
and credentials are handed back only by :func:`broker_token` / :func:`credentials`, for the
code that calls the broker or the agent; the API never renders them after creation.
"""

from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.accounts.tokens import hash_token
from control_plane.encryption import SecretBox
from control_plane.errors import Conflict, InvalidInput, NotFound
from control_plane.models import Integration, utcnow
from control_plane.pagination import Page, PageRequest, fetch_page
from shared.credentials import KNOWN_TYPES, CredentialsError, build_credentials_json
from shared.logging import register_secrets

CREDENTIALS = "/data/attributes/credentials"

#: credential members each integration type needs (Snyk's POST shapes, one per type family)
REQUIRED_CREDENTIALS: dict[str, tuple[str, ...]] = {
    "ecr": ("role_arn", "region"),
    "docker-hub": ("username", "password"),
    "gcr": ("password", "registry_base"),
    "google-artifact-cr": ("password", "registry_base"),
    "digitalocean-cr": ("token",),
}
#: the lengths of Integration's columns: longer is refused naming the member, not a 500
PROFILE_NAME_LENGTH = 200
REGISTRY_BASE_LENGTH = 500
DEFAULT_REQUIRED = ("username", "password", "registry_base")
OPTIONAL_CREDENTIALS = {"external_id", "username", "registry_base"}


@dataclass(frozen=True)
class IntegrationInput:
    """What a caller may set on an integration (None: leave as is / not given)."""

    integration_type: str | None = None
    profile_name: str | None = None
    has_broker: bool | None = None
    is_active: bool | None = None
    registry_base: str | None = None
    credentials: dict[str, Any] | None = None
    broker_token: str | None = None
    max_in_flight: int | None = None


def credentials_json(kind: str, given: dict[str, Any]) -> dict[str, Any]:
    required = REQUIRED_CREDENTIALS.get(kind, DEFAULT_REQUIRED)
    for name, value in given.items():
        if name not in required and name not in OPTIONAL_CREDENTIALS:
            raise InvalidInput(
                f"credentials member {name} is not used by {kind} integrations",
                pointer=f"{CREDENTIALS}/{name}",
            )
        if not isinstance(value, str):
            raise InvalidInput(f"{name} must be a string", pointer=f"{CREDENTIALS}/{name}")
        if name == "registry_base" and len(value) > REGISTRY_BASE_LENGTH:
            raise InvalidInput(
                f"registry_base must be at most {REGISTRY_BASE_LENGTH} characters",
                pointer=f"{CREDENTIALS}/{name}",
            )
    for name in required:
        if not given.get(name):
            raise InvalidInput(
                f"{name} is required for {kind} integrations", pointer=f"{CREDENTIALS}/{name}"
            )
    try:
        return build_credentials_json(
            kind,
            base=given.get("registry_base"),
            username=given.get("username", "_json_key" if kind.startswith("g") else None),
            password=given.get("password"),
            token=given.get("token"),
            role_arn=given.get("role_arn"),
            region=given.get("region"),
            external_id=given.get("external_id"),
        )
    except CredentialsError as exc:  # message names fields, never values
        raise InvalidInput(str(exc), pointer=CREDENTIALS) from None


def _check_lengths(given: IntegrationInput) -> IntegrationInput:
    """Values longer than their columns are refused naming the member (the API and the
    console alike), not left to fail in the database."""
    for name, value, most in (
        ("profile_name", given.profile_name, PROFILE_NAME_LENGTH),
        ("registry_base", given.registry_base, REGISTRY_BASE_LENGTH),
    ):
        if value is not None and len(value) > most:
            raise InvalidInput(
                f"{name} must be at most {most} characters, not {len(value)}",
                pointer=f"/data/attributes/{name}",
            )
    return given


def _check_broker_token(token: str) -> str:
    if len(token) < 8 or any(ch in token for ch in "/?# ") or not token.isprintable():
        raise InvalidInput(
            "broker_token must be at least 8 printable characters without / ? # or space",
            pointer="/data/attributes/broker_token",
        )
    return token.lower()  # snyk-broker routes on the lower-cased token


async def _claim_broker_token(
    session: AsyncSession, integration: Integration, box: SecretBox, token: str
) -> None:
    digest = hash_token(token)
    taken = await session.scalar(
        select(Integration.id).where(
            Integration.broker_token_hash == digest, Integration.id != integration.id
        )
    )
    if taken is not None:
        raise Conflict("that broker token belongs to another integration")
    integration.broker_token_hash = digest
    integration.broker_token_encrypted = box.encrypt(token.encode())


async def create_integration(
    session: AsyncSession, box: SecretBox, org_id: uuid.UUID, given: IntegrationInput
) -> tuple[Integration, str | None]:
    """A new integration; also the broker token (brokered), the one time it is shown."""
    _check_lengths(given)
    kind = given.integration_type
    if kind not in KNOWN_TYPES:
        raise InvalidInput(
            f"integration_type must be one of {', '.join(KNOWN_TYPES)}",
            pointer="/data/attributes/integration_type",
        )
    brokered = bool(given.has_broker)
    integration = Integration(
        org_id=org_id,
        integration_type=kind,
        profile_name=(given.profile_name or kind).strip(),
        has_broker=brokered,
        is_active=True if given.is_active is None else given.is_active,
        registry_base=given.registry_base,
        max_in_flight=given.max_in_flight or 4,
    )
    token: str | None = None
    if brokered:
        if given.credentials is not None:
            raise InvalidInput(
                "a brokered integration keeps its registry credentials in the broker client",
                pointer=CREDENTIALS,
            )
        token = _check_broker_token(
            given.broker_token or str(uuid.UUID(bytes=secrets.token_bytes(16), version=4))
        )
        register_secrets(token)
        await _claim_broker_token(session, integration, box, token)
    else:
        if given.broker_token is not None:
            raise InvalidInput(
                "broker_token is only for brokered integrations (has_broker: true)",
                pointer="/data/attributes/broker_token",
            )
        if given.credentials is None:
            raise InvalidInput(
                "credentials are required for a direct integration", pointer=CREDENTIALS
            )
        blob = credentials_json(kind, given.credentials)
        integration.registry_base = integration.registry_base or blob.get("registryBase") or None
        integration.credentials_encrypted = box.encrypt(json.dumps(blob).encode())
    session.add(integration)
    await session.flush()
    return integration, token


async def get_integration(
    session: AsyncSession, org_id: uuid.UUID, integration_id: uuid.UUID
) -> Integration:
    integration = await session.get(Integration, integration_id)
    if integration is None or integration.org_id != org_id:
        raise NotFound("integration", integration_id)
    return integration


async def list_integrations(
    session: AsyncSession,
    org_id: uuid.UUID,
    page: PageRequest,
    *,
    integration_types: list[str] | None = None,
) -> Page[Integration]:
    query = select(Integration).where(Integration.org_id == org_id)
    if integration_types:
        query = query.where(Integration.integration_type.in_(integration_types))
    return await fetch_page(session, query, Integration.id, page)


async def update_integration(
    session: AsyncSession,
    box: SecretBox,
    org_id: uuid.UUID,
    integration_id: uuid.UUID,
    given: IntegrationInput,
) -> Integration:
    _check_lengths(given)
    integration = await get_integration(session, org_id, integration_id)
    if (
        given.integration_type is not None
        and given.integration_type != integration.integration_type
    ):
        raise InvalidInput(
            "integration_type cannot be changed", pointer="/data/attributes/integration_type"
        )
    if given.has_broker is not None and given.has_broker != integration.has_broker:
        raise InvalidInput("has_broker cannot be changed", pointer="/data/attributes/has_broker")
    if given.profile_name is not None:
        integration.profile_name = given.profile_name.strip()
    if given.is_active is not None:
        integration.is_active = given.is_active
    if given.registry_base is not None:
        integration.registry_base = given.registry_base
    if given.max_in_flight is not None:
        integration.max_in_flight = given.max_in_flight
    if given.credentials is not None:
        if integration.has_broker:
            raise InvalidInput(
                "a brokered integration keeps its registry credentials in the broker client",
                pointer=CREDENTIALS,
            )
        blob = credentials_json(integration.integration_type, given.credentials)
        integration.credentials_encrypted = box.encrypt(json.dumps(blob).encode())
    if given.broker_token is not None:
        if not integration.has_broker:
            raise InvalidInput(
                "broker_token is only for brokered integrations",
                pointer="/data/attributes/broker_token",
            )
        await _claim_broker_token(
            session, integration, box, _check_broker_token(given.broker_token)
        )
    integration.updated_at = utcnow()
    await session.flush()
    return integration


async def delete_integration(
    session: AsyncSession, org_id: uuid.UUID, integration_id: uuid.UUID
) -> None:
    """Removes the integration; its targets and projects stay, no longer tied to it."""
    integration = await get_integration(session, org_id, integration_id)
    await session.delete(integration)
    await session.flush()


async def record_check(
    session: AsyncSession, integration: Integration, ok: bool, message: str
) -> Integration:
    """Store the outcome of a connection check (the message names no secret)."""
    integration.status_ok = ok
    integration.status_message = message[:1000]
    integration.status_checked_at = utcnow()
    await session.flush()
    return integration


async def find_by_broker_token(session: AsyncSession, token: str) -> Integration | None:
    """The brokered integration a broker client's token belongs to."""
    return await session.scalar(
        select(Integration).where(Integration.broker_token_hash == hash_token(token.lower()))
    )


def broker_token(box: SecretBox, integration: Integration) -> str:
    """The broker token, for calling ``/broker/<token>/...`` (never for an answer or a log)."""
    if integration.broker_token_encrypted is None:
        raise InvalidInput(f"integration {integration.id} is not brokered")
    token = box.decrypt(integration.broker_token_encrypted).decode()
    register_secrets(token)
    return token


def credentials(box: SecretBox, integration: Integration) -> dict[str, Any]:
    """A direct integration's ``CR_CREDENTIALS`` JSON (for the co-located agent only)."""
    if integration.credentials_encrypted is None:
        raise InvalidInput(f"integration {integration.id} has no stored credentials")
    value: dict[str, Any] = json.loads(box.decrypt(integration.credentials_encrypted))
    register_secrets(*_secret_strings(value))
    return value


def _secret_strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        # host names and regions are not secrets: logs must say which registry failed
        public = {"type", "registryBase", "region"}
        return [s for k, v in value.items() if k not in public for s in _secret_strings(v)]
    return [value] if isinstance(value, str) else []
