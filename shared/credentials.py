"""The ``CR_CREDENTIALS`` blob: built by the broker client, read by the agent.

snyk-broker's container-registry-agent image turns the ``CR_*`` variables into base64 of a
JSON object followed by a newline. We build the same shapes, but with real JSON escaping, and
parse any of the variants in circulation (with or without the newline, spacing differences,
legacy type names).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

#: Registry types the product knows (snyk's ``CRA_COMPATIBLE_TYPES`` plus ``generic-cr``).
#: The registry-type plug-ins (``cr_agent.registry_types``) are the source of truth, but this
#: list cannot be read from them: the broker client validates ``CR_TYPE`` with it and its image
#: ships ``shared`` without ``cr_agent`` (Dockerfile.broker), so ``shared`` must not import
#: ``cr_agent``. tests/cr_agent/registry_types pins the two to the same names instead.
KNOWN_TYPES: tuple[str, ...] = (
    "acr",
    "artifactory-cr",
    "digitalocean-cr",
    "docker-hub",
    "ecr",
    "gcr",
    "generic-cr",
    "github-cr",
    "gitlab-cr",
    "google-artifact-cr",
    "harbor-cr",
    "nexus-cr",
    "quay-cr",
)

#: Types with no well-known registry address: ``CR_BASE`` must say where the registry is.
BASE_REQUIRED: frozenset[str] = frozenset(
    {"acr", "artifactory-cr", "generic-cr", "google-artifact-cr", "harbor-cr", "nexus-cr"}
)

#: Names used by old snyk docs and images, mapped to today's.
LEGACY_TYPES = {
    "DockerHub": "docker-hub",
    "GoogleCR": "gcr",
    "ArtifactoryCR": "artifactory-cr",
    "ElasticCR": "ecr",
    "AzureCR": "acr",
    "HarborCR": "harbor-cr",
    "QuayCR": "quay-cr",
    "NexusCR": "nexus-cr",
    "GitHubCR": "github-cr",
    "GitLabCR": "gitlab-cr",
    "DigitalOceanCR": "digitalocean-cr",
}


class CredentialsError(ValueError):
    """The credential blob or the ``CR_*`` settings are unusable; the message says why."""


def normalise_type(cr_type: str) -> str:
    value = cr_type.strip()
    return LEGACY_TYPES.get(value, value)


class EcrExtra(BaseModel):
    model_config = ConfigDict(extra="allow")
    region: str | None = None
    externalId: str | None = None


class RegistryCredentials(BaseModel):
    """What ``CR_CREDENTIALS`` decodes to. Secret fields never appear in ``repr``."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    type: str
    username: str | None = Field(default=None, repr=False)
    password: str | None = Field(default=None, repr=False)
    registryBase: str | None = None
    roleArn: str | None = Field(default=None, repr=False)
    extra: EcrExtra | None = None

    def secret_values(self) -> list[str]:
        """Every value the logs must never show (not the registry's address nor its region:
        host names are not secrets, and an error must say which registry failed)."""
        values = [self.username, self.password, self.roleArn]
        if self.extra is not None:
            values.append(self.extra.externalId)
        return [v for v in values if v]


def build_credentials_json(
    cr_type: str,
    *,
    base: str | None = None,
    username: str | None = None,
    password: str | None = None,
    token: str | None = None,
    role_arn: str | None = None,
    region: str | None = None,
    external_id: str | None = None,
) -> dict[str, Any]:
    """The JSON object snyk-broker's entrypoint writes for these ``CR_*`` values.

    Raises :class:`CredentialsError` naming the missing variable.
    """
    kind = normalise_type(cr_type)
    if not kind:
        raise CredentialsError("CR_TYPE is empty")
    if kind == "ecr":
        missing = [n for n, v in (("CR_ROLE_ARN", role_arn), ("CR_REGION", region)) if not v]
        if missing:
            raise CredentialsError(f"{' and '.join(missing)} required when CR_TYPE=ecr")
        extra: dict[str, Any] = {"region": region}
        if external_id:
            extra["externalId"] = external_id
        return {"type": "ecr", "roleArn": role_arn, "extra": extra}
    if kind == "digitalocean-cr":
        if not token:
            raise CredentialsError("CR_TOKEN required when CR_TYPE=digitalocean-cr")
        return {"type": kind, "username": token, "password": token, "registryBase": base or ""}
    if kind in BASE_REQUIRED and not (base or "").strip():
        raise CredentialsError(f"CR_BASE required when CR_TYPE={kind} (the registry's address)")
    missing = [n for n, v in (("CR_USERNAME", username), ("CR_PASSWORD", password)) if v is None]
    if missing:
        raise CredentialsError(f"{' and '.join(missing)} required when CR_TYPE={kind}")
    return {"type": kind, "username": username, "password": password, "registryBase": base or ""}


def encode_credentials(obj: dict[str, Any]) -> str:
    """base64 of the compact JSON plus a newline, as snyk-broker's entrypoint does."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False) + "\n"
    return base64.b64encode(text.encode()).decode()


def decode_credentials(blob: str) -> RegistryCredentials:
    """Parse a ``CR_CREDENTIALS`` blob (optionally ``Basic``/``Bearer``-prefixed).

    Raises :class:`CredentialsError` saying which step failed, never echoing the blob.
    """
    text = blob.strip()
    for prefix in ("Basic ", "Bearer ", "Token "):
        if text[: len(prefix)].lower() == prefix.lower():
            text = text[len(prefix) :].strip()
    if not text:
        raise CredentialsError("credentials are empty")
    padded = text + "=" * (-len(text) % 4)
    try:
        raw = base64.b64decode(padded, altchars=b"-_" if ("-" in text or "_" in text) else None)
    except (binascii.Error, ValueError):
        raise CredentialsError("credentials are not valid base64") from None
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CredentialsError("credentials do not decode to JSON") from None
    if not isinstance(obj, dict):
        raise CredentialsError("credentials JSON is not an object")
    if not isinstance(obj.get("type"), str) or not obj["type"].strip():
        raise CredentialsError("credentials JSON has no 'type'")
    obj["type"] = normalise_type(obj["type"])
    try:
        return RegistryCredentials.model_validate(obj)
    except ValueError as exc:
        fields = ", ".join(str(e.get("loc", ("?",))[0]) for e in getattr(exc, "errors", list)())
        raise CredentialsError(
            f"credentials JSON has invalid fields: {fields or 'unknown'}"
        ) from None
