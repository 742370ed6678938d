"""Talking to a registry through its agent, for the console: check the connection, list images,
and ask the relay whether a brokered integration's broker client is connected.

The agent is reached the way scans reach it (:func:`control_plane.queue.dispatch.agent_base`):
a brokered integration through ``/broker/<token>/...`` (its broker client fills in the
credentials), a direct one at ``CR_AGENT_URL`` with the decrypted credentials. "Test it" on
a registry not yet saved sends the credentials typed in the form to the co-located agent only.
Nothing here reads or writes the database.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from control_plane.encryption import SecretBox
from control_plane.errors import DomainError, InvalidInput
from control_plane.integrations import services as integrations
from control_plane.listed_names import PassedOver
from control_plane.models import Integration
from control_plane.queue.dispatch import AGENT_SECRET_HEADER, AgentBase, DispatchError, agent_base
from control_plane.server_settings import ServerSettings
from shared.credentials import encode_credentials

#: images one listing may add (the agent bounds its own listing as well)
MAX_LISTED_IMAGES = 20_000


class AgentUnavailable(DomainError):
    status = 502
    code = "agent-unavailable"
    title = "Agent unavailable"


@dataclass(frozen=True)
class Check:
    ok: bool
    message: str


@dataclass(frozen=True)
class BrokerConnection:
    connected: bool
    versions: tuple[str, ...] = ()
    filters: tuple[str, ...] = ()


def _check_message(status: int, answer: object, where: str) -> Check:
    if not isinstance(answer, dict):
        return Check(False, f"{where} answered {status} without a JSON body")
    if "steps" not in answer:
        error = answer.get("error")
        message = error.get("message") if isinstance(error, dict) else None
        return Check(False, f"{where}: {message or f'answered {status}'}")
    if answer.get("ok") is True:
        return Check(True, f"connected to {answer.get('registry') or 'the registry'}")
    failed = [s for s in answer.get("steps", []) if isinstance(s, dict) and not s.get("ok")]
    reason = answer.get("reason") or "failed"
    detail = "; ".join(f"{s.get('step')}: {s.get('message') or 'failed'}" for s in failed)
    return Check(False, f"{reason} at step {answer.get('failedStep')}: {detail}"[:800])


class RegistryAgent:
    """The console's way to an agent: one HTTP client, the server's settings and key."""

    def __init__(self, settings: ServerSettings, box: SecretBox, broker_url: str | None) -> None:
        self.settings = settings
        self.box = box
        self.broker_url = broker_url
        self._http: aiohttp.ClientSession | None = None

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    def base(self, integration: Integration) -> AgentBase:
        try:
            return agent_base(integration, self.box, self.settings, broker_url=self.broker_url)
        except DispatchError as exc:
            raise InvalidInput(f"registry {integration.profile_name}: {exc}") from None

    def base_for_unsaved(self, kind: str, credentials: dict[str, Any]) -> AgentBase:
        """The co-located agent with credentials typed in a form (never stored by this)."""
        if not self.settings.CR_AGENT_URL:
            raise InvalidInput("CR_AGENT_URL is not set: no agent to test the registry with")
        blob = encode_credentials(integrations.credentials_json(kind, credentials)).strip()
        headers = {"authorization": blob}
        if self.settings.CR_AGENT_SECRET:
            headers[AGENT_SECRET_HEADER] = self.settings.CR_AGENT_SECRET
        where = self.settings.CR_AGENT_URL
        return AgentBase(url=where, headers=headers, where=where, brokered=False)

    async def _get(self, base: AgentBase, path: str) -> tuple[int, object]:
        try:
            async with self.http.get(f"{base.url}{path}", headers=base.headers) as resp:
                raw = await resp.read()
                status = resp.status
                failure = resp.headers.get("x-broker-failure")
        except TimeoutError:
            raise AgentUnavailable(f"{base.where} did not answer in time") from None
        except aiohttp.ClientError as exc:
            raise AgentUnavailable(f"{base.where} unreachable: {type(exc).__name__}") from None
        if failure:
            raise AgentUnavailable(f"broker: {failure} (is the broker client connected?)")
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, None

    async def check(self, base: AgentBase) -> Check:
        """Authenticate with the registry and list it, as the agent's /validate-credentials."""
        try:
            status, answer = await self._get(base, "/validate-credentials")
        except AgentUnavailable as exc:
            return Check(False, exc.detail)
        return _check_message(status, answer, base.where)

    async def list_images(self, base: AgentBase) -> list[tuple[str, str]]:
        """Every ``(repository, tag)`` of the registry, as the agent lists them."""
        status, answer = await self._get(base, "/list")
        if status != 200 or not isinstance(answer, dict):
            raise AgentUnavailable(
                f"listing repositories: {_check_message(status, answer, base.where).message}"
            )
        images: list[tuple[str, str]] = []
        passed_over = PassedOver(base.where)
        for repository in passed_over.repositories(_list_of(answer.get("repositories"))):
            status, tags = await self._get(base, f"/list/{quote(repository, safe='/')}")
            if status != 200 or not isinstance(tags, dict):
                continue  # a repository deleted between the two calls
            listed = passed_over.tags(repository, _list_of(tags.get("tags")))
            images.extend((repository, tag) for tag in listed)
            if len(images) > MAX_LISTED_IMAGES:
                raise InvalidInput(f"the registry holds more than {MAX_LISTED_IMAGES} images")
        passed_over.report()
        return images

    async def broker_connection(self, integration: Integration) -> BrokerConnection:
        """Whether the relay holds a connection of this integration's broker client."""
        if not integration.has_broker or not self.broker_url:
            return BrokerConnection(False)
        token = integrations.broker_token(self.box, integration)
        try:
            async with self.http.get(f"{self.broker_url}/connection-status/{token}") as resp:
                answer = await resp.json(content_type=None) if resp.status == 200 else None
        except (TimeoutError, aiohttp.ClientError, ValueError):
            return BrokerConnection(False)
        clients = answer.get("clients", []) if isinstance(answer, dict) else []
        if not clients:
            return BrokerConnection(False)
        versions = tuple(sorted({str(c.get("version")) for c in clients if c.get("version")}))
        filters = tuple(
            sorted({json.dumps(c.get("filters"))[:200] for c in clients if c.get("filters")})
        )
        return BrokerConnection(True, versions, filters)


def _list_of(value: object) -> list[object]:
    """An answer's list member; anything else lists nothing."""
    return value if isinstance(value, list) else []
