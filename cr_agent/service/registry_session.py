"""One request's view of one registry: type plug-in + registry client + what the API asks.

Opening a session turns the credentials into an endpoint (the type's job: ECR goes through
STS, the rest use the credentials as they are) and a :class:`RegistryClient`. The methods
answer the API's questions (repositories, tags, tag metadata, image metadata, state id) in
the terms of :mod:`cr_agent.service.models`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import urllib.parse
from datetime import datetime
from typing import Any

import aiohttp

from cr_agent.registry.aiohttp_transport import AiohttpTransport
from cr_agent.registry.client import RegistryClient, ResolvedImage
from cr_agent.registry.errors import (
    InvalidReference,
    NotFoundError,
    PermissionDenied,
    UnsupportedManifest,
)
from cr_agent.registry.manifest import ImageIndex
from cr_agent.registry.reference import ImageReference
from cr_agent.registry.transport import USER_AGENT, tls_context
from cr_agent.registry_types import RegistryType
from cr_agent.registry_types.base import TypeContext
from cr_agent.service.allowed_registries import check_credentials, check_host, url_host
from cr_agent.service.models import (
    ImageMetadataResponse,
    LayerInfo,
    PlatformManifest,
    RepositoryTag,
    StepResult,
    TagMetadata,
)
from shared.credentials import RegistryCredentials
from shared.logging import get_logger

log = get_logger(__name__)

#: HEAD requests in flight at once when a registry has no tag-metadata API
HEAD_CONCURRENCY = 8


class RegistrySession:
    """``async with RegistrySession(creds, kind, ctx) as reg: await reg.list_repositories()``."""

    def __init__(self, creds: RegistryCredentials, kind: RegistryType, ctx: TypeContext) -> None:
        self.creds = creds
        self.kind = kind
        self.ctx = ctx
        self._client: RegistryClient | None = None
        self._http: aiohttp.ClientSession | None = None
        self.host: str | None = None

    @property
    def client(self) -> RegistryClient:
        assert self._client is not None, "use the session as an async context manager"
        return self._client

    async def __aenter__(self) -> RegistrySession:
        allowed = self.ctx.allowed_registries
        check_credentials(self.creds, self.kind, allowed)
        endpoint = await self.kind.endpoint(self.creds, self.ctx)
        self.host = urllib.parse.urlsplit(endpoint.base_url).netloc
        # the endpoint may come from elsewhere than the credentials (ECR's proxy endpoint)
        check_host(url_host(endpoint.base_url), allowed)
        if logging.getLogger().isEnabledFor(logging.DEBUG):
            # LOG_LEVEL=debug: one line per HTTP exchange with the registry (method, URL
            # without query, status, time); headers are never logged
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=self.ctx.timeout,
                    sock_connect=self.ctx.timeout,
                    sock_read=self.ctx.timeout,
                ),
                headers={"User-Agent": USER_AGENT},
                auto_decompress=False,  # layers are streamed and hashed compressed
                trace_configs=[_http_trace()],
            )
        transport = AiohttpTransport(
            tls_context(endpoint.base_url, ca_file=self.ctx.ca_file, insecure=self.ctx.insecure),
            self.ctx.timeout,
            self._http,
        )
        self._client = RegistryClient(
            endpoint.base_url,
            endpoint.auth,
            transport=transport,
            insecure=self.ctx.insecure,
            timeout=self.ctx.timeout,
            # a hanging registry must fail the request in bounded time, not after minutes
            retries=2,
            max_retry_wait=min(5.0, self.ctx.timeout),
            listing_limits=self.ctx.listing,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.close()
        if self._http is not None:
            await self._http.close()

    # ------------------------------------------------------------------ names

    def parse_image(self, text: str) -> ImageReference:
        """``repository[:tag][@digest]`` (a leading registry host must be this registry's)."""
        default = "docker.io" if self.kind.name == "docker-hub" else (self.host or "registry")
        ref = ImageReference.parse(text, default_registry=default)
        if _bare_host(ref.registry) not in {_bare_host(default), _bare_host(self.host or "")}:
            raise InvalidReference(
                f"image {text!r} names registry {ref.registry}, but the credentials are for {self.host}"
            )
        return ref

    def repository_name(self, text: str) -> str:
        name = text.strip().strip("/")
        if not name:
            raise InvalidReference("repository name is empty")
        return self.parse_image(name).repository

    # ------------------------------------------------------------------ questions

    async def validate(self, steps: list[StepResult]) -> None:
        """Authenticate, then list one page, appending each passed step; raises on failure."""
        await self.client.ping()
        steps.append(StepResult(step="authenticate", ok=True))
        repos = await self.list_repositories(first_page_only=True)
        steps.append(StepResult(step="list", ok=True, message=f"{len(repos)} repositories visible"))

    async def list_repositories(self, *, first_page_only: bool = False) -> list[str]:
        if first_page_only and self.kind.catalog_first:
            try:
                async for name in self.client.list_repositories(page_size=100):
                    return [name]
                return []
            except (PermissionDenied, NotFoundError):
                pass  # the type's own fallback (or the same error again) decides below
        return await self.kind.list_repositories(self.creds, self.ctx, self.client)

    async def list_tags(self, repository: str) -> list[str]:
        return await self.client.list_tags(self.repository_name(repository))

    async def tags_with_metadata(
        self, repository: str, *, created: bool = False, platform: str = "linux/amd64"
    ) -> list[TagMetadata]:
        """Tags with digests, push times where the registry type knows them, and (asked
        for with ``created``) each image's config ``created`` time as a stand-in."""
        repo = self.repository_name(repository)
        known = await self.kind.tag_metadata(self.creds, self.ctx, repo)
        if known is not None:
            tags = [TagMetadata(tag=t.tag, digest=t.digest, pushedAt=t.pushed_at) for t in known]
        else:
            names = await self.client.list_tags(repo)
            tags = await self._bounded(names, lambda tag: self._head(repo, tag))
        if created:
            tags = await self._bounded(tags, lambda t: self._with_created(repo, t, platform))
        return sorted(tags, key=lambda t: t.tag)

    async def repository_tags(self, repository: str) -> list[RepositoryTag] | None:
        """The repository's resource tags where its registry type has them (ECR)."""
        try:
            found = await self.kind.repository_tags(
                self.creds, self.ctx, self.repository_name(repository)
            )
        except PermissionDenied as exc:
            # a read-only role without ecr:ListTagsForResource still lists its images
            log.warning("repository tags not readable", step=exc.step, error=str(exc))
            return None
        if found is None:
            return None
        return [RepositoryTag(Key=t.key, Value=t.value) for t in found]

    async def _bounded(self, items: list[Any], work: Any) -> list[Any]:
        limit = asyncio.Semaphore(HEAD_CONCURRENCY)

        async def one(item: Any) -> Any:
            async with limit:
                return await work(item)

        return list(await asyncio.gather(*(one(i) for i in items)))

    async def _head(self, repo: str, tag: str) -> TagMetadata:
        try:
            head = await self.client.head_manifest(repo, tag)
        except NotFoundError:
            return TagMetadata(tag=tag)  # deleted between listing and asking
        return TagMetadata(tag=tag, digest=head.digest)

    async def _with_created(self, repo: str, meta: TagMetadata, platform: str) -> TagMetadata:
        try:
            resolved = await self.client.resolve_image(repo, meta.digest or meta.tag, platform)
        except (NotFoundError, UnsupportedManifest):
            return meta  # gone, or not an image for this platform: nothing to add
        return meta.model_copy(
            update={"created": _time(_config_json(resolved.config.raw).get("created"))}
        )

    async def resolve(self, image: str, platform: str) -> tuple[ImageReference, ResolvedImage]:
        ref = self.parse_image(image)
        return ref, await self.client.resolve_image(ref.repository, ref.reference, platform)

    async def image_metadata(self, image: str, platform: str) -> ImageMetadataResponse:
        ref, resolved = await self.resolve(image, platform)
        manifests: list[PlatformManifest] = []
        if resolved.index_digest is not None:
            top = await self.client.get_manifest(ref.repository, resolved.index_digest)
            if isinstance(top, ImageIndex):
                manifests = [
                    PlatformManifest(digest=d.digest, platform=str(d.platform))
                    for d in top.manifests
                    if d.platform is not None
                ]
        config = _config_json(resolved.config.raw)
        labels = (config.get("config") or {}).get("Labels") or {}
        return ImageMetadataResponse(
            repository=ref.repository,
            reference=ref.reference,
            digest=resolved.index_digest or resolved.digest,
            manifestDigest=resolved.digest,
            mediaType=resolved.manifest.media_type or None,
            platform=str(resolved.platform),
            configDigest=resolved.manifest.config.digest,
            created=_time(config.get("created")),
            layers=[
                LayerInfo(digest=d.digest, size=d.size, mediaType=d.media_type or None)
                for d in resolved.manifest.layers
            ],
            size=sum(d.size for d in resolved.manifest.layers),
            labels={str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {},
            manifests=manifests,
        )

    async def state_identifier(self, image: str) -> tuple[str, str]:
        """(state id, digest): a hash of the digest the tag points at.

        The manifest (or index) digest covers the config and every layer digest, so it
        changes exactly when the content does; hashing it with the repository keeps the id
        opaque and distinct per repository.
        """
        ref = self.parse_image(image)
        if ref.digest:
            digest = ref.digest
        else:
            head = await self.client.head_manifest(ref.repository, ref.reference)
            digest = (
                head.digest
                or (await self.client.get_manifest(ref.repository, ref.reference)).digest
            )
        state = hashlib.sha256(f"{ref.repository}@{digest}".encode()).hexdigest()
        return f"sha256:{state}", digest


def _http_trace() -> aiohttp.TraceConfig:
    trace = aiohttp.TraceConfig()

    async def start(
        _s: aiohttp.ClientSession, ctx: Any, params: aiohttp.TraceRequestStartParams
    ) -> None:
        ctx.started = time.monotonic()

    async def end(
        _s: aiohttp.ClientSession, ctx: Any, params: aiohttp.TraceRequestEndParams
    ) -> None:
        log.debug(
            "registry http",
            method=params.method,
            url=str(params.url.with_query(None)),
            status=params.response.status,
            ms=round((time.monotonic() - ctx.started) * 1000, 1),
        )

    async def failed(
        _s: aiohttp.ClientSession, ctx: Any, params: aiohttp.TraceRequestExceptionParams
    ) -> None:
        log.debug(
            "registry http failed",
            method=params.method,
            url=str(params.url.with_query(None)),
            error=params.exception.__class__.__name__,
        )

    trace.on_request_start.append(start)
    trace.on_request_end.append(end)
    trace.on_request_exception.append(failed)
    return trace


def _bare_host(host: str) -> str:
    """``host[:port]`` without the default HTTPS/HTTP port, lower-case, for comparing."""
    host = host.lower()
    for default_port in (":443", ":80"):
        host = host.removesuffix(default_port)
    return host


def _config_json(raw: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(raw)
    except ValueError:
        return {}
    return obj if isinstance(obj, dict) else {}


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
