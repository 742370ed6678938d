"""What every registry type (``CR_TYPE``) plug-in says: how it authenticates, how it lists.

The plain OCI distribution API covers pulling everywhere; types differ only in how a
credential turns into registry access (static Basic credentials, an ECR token obtained via
STS, ...) and in how repositories are listed where ``/v2/_catalog`` is missing or forbidden
(Docker Hub, GitHub, GitLab, DigitalOcean, Harbor and Quay have their own APIs). A type that
knows more about a tag than the distribution API tells (push time), or has key/value tags on
its repositories (ECR), may say so too.
"""

from __future__ import annotations

import ssl
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

import aiohttp

from cr_agent.registry.auth import RegistryAuth
from cr_agent.registry.errors import NotFoundError, PermissionDenied, RegistryError
from cr_agent.registry.pagination import ListingLimits
from shared.credentials import CredentialsError, RegistryCredentials

if TYPE_CHECKING:
    from cr_agent.registry.client import RegistryClient


@dataclass(frozen=True, slots=True)
class RegistryEndpoint:
    """Where the distribution API of a registry is and what to authenticate with."""

    base_url: str  # "https://host[:port][/path-prefix]"
    auth: RegistryAuth


@dataclass(frozen=True, slots=True)
class TagInfo:
    """One tag with what the registry says about it; ``None`` where it says nothing."""

    tag: str
    digest: str | None = None
    pushed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ResourceTag:
    """A key/value tag on the repository itself (ECR resource tags), not an image tag."""

    key: str
    value: str


@dataclass(slots=True)
class TypeContext:
    """What a registry type may use besides the credentials: HTTP, TLS trust, timeouts."""

    http: aiohttp.ClientSession
    timeout: float = 30.0
    ca_file: str | None = None
    insecure: bool = False
    aws_endpoint_url: str | None = None
    #: per-process caches a type may keep (ECR tokens); never holds a registry password
    caches: dict[str, object] = field(default_factory=dict)
    #: CR_ALLOWED_REGISTRIES as ``host[:port]`` entries; None = any registry
    allowed_registries: frozenset[str] | None = None
    #: bounds on one listing (catalog, tags, a vendor API's pages)
    listing: ListingLimits = field(default_factory=ListingLimits)

    def ssl_context(self) -> ssl.SSLContext | bool:
        if self.insecure:
            return False
        if self.ca_file:
            ctx = ssl.create_default_context()
            ctx.load_verify_locations(self.ca_file)
            return ctx
        return True


def parse_time(value: object) -> datetime | None:
    """An ISO 8601 time as vendor APIs write it (``Z`` or an offset); None if absent or bad."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def normalise_base(value: str, *, field_name: str = "registryBase") -> str:
    """``host[:port][/path]`` or a URL -> ``scheme://host[:port][/path]`` (https unless written).

    Plain ``http://`` is used only when the caller wrote it; anything else gets ``https://``.
    """
    text = value.strip().rstrip("/")
    if not text:
        raise CredentialsError(f"{field_name} is empty")
    if "://" not in text:
        text = "https://" + text
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise CredentialsError(f"{field_name} has unsupported scheme {parts.scheme!r}")
    if not parts.hostname:
        raise CredentialsError(f"{field_name} has no host")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise CredentialsError(f"{field_name} must be scheme://host[:port][/path] only")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise CredentialsError(f"{field_name} has an invalid port") from None
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def extra_value(creds: RegistryCredentials, name: str) -> str | None:
    """A type-specific field, either top level or under ``extra`` of the credential JSON."""
    top = (creds.model_extra or {}).get(name)
    if isinstance(top, str) and top.strip():
        return top.strip()
    if creds.extra is not None:
        nested = (creds.extra.model_extra or {}).get(name)
        if isinstance(nested, str) and nested.strip():
            return nested.strip()
    return None


class RegistryType:
    """Default behaviour: any OCI distribution registry with optional Basic credentials."""

    name: ClassVar[str] = "generic-cr"
    #: registry used when the credentials carry no ``registryBase``
    default_base: ClassVar[str | None] = None
    #: True when the registry lists through ``/v2/_catalog`` before any vendor API
    catalog_first: ClassVar[bool] = True

    def check(self, creds: RegistryCredentials) -> None:
        """Raise :class:`CredentialsError` naming the field this type cannot do without."""
        if not (creds.registryBase or self.default_base):
            raise CredentialsError(f"registryBase is required for type {self.name}")
        if creds.username and creds.password is None:
            raise CredentialsError(f"password is required with username for type {self.name}")

    def base_url(self, creds: RegistryCredentials) -> str:
        return normalise_base(creds.registryBase or self.default_base or "")

    async def endpoint(self, creds: RegistryCredentials, ctx: TypeContext) -> RegistryEndpoint:
        """Registry URL and authentication for these credentials."""
        self.check(creds)
        auth = RegistryAuth(username=creds.username or None, password=creds.password or None)
        return RegistryEndpoint(base_url=self.base_url(creds), auth=auth)

    async def list_repositories(
        self, creds: RegistryCredentials, ctx: TypeContext, client: RegistryClient
    ) -> list[str]:
        """Every repository the credentials may see, sorted."""
        if self.catalog_first:
            try:
                return sorted({name async for name in client.list_repositories()})
            except (PermissionDenied, NotFoundError) as exc:
                fallback = await self.list_repositories_via_api(creds, ctx, exc)
                if fallback is None:
                    raise
                return sorted(set(fallback))
        fallback = await self.list_repositories_via_api(creds, ctx, None)
        if fallback is None:
            raise RegistryError(f"type {self.name} has no way to list repositories", "list")
        return sorted(set(fallback))

    async def list_repositories_via_api(
        self, creds: RegistryCredentials, ctx: TypeContext, catalog_error: RegistryError | None
    ) -> list[str] | None:
        """Vendor listing where the catalog is missing or forbidden; ``None`` if there is none."""
        return None

    async def tag_metadata(
        self, creds: RegistryCredentials, ctx: TypeContext, repository: str
    ) -> list[TagInfo] | None:
        """Tags with digests and push times from a vendor API; ``None`` to use the registry."""
        return None

    async def repository_tags(
        self, creds: RegistryCredentials, ctx: TypeContext, repository: str
    ) -> list[ResourceTag] | None:
        """The repository's own key/value tags; ``None`` where the registry has no such thing."""
        return None
