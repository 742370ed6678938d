"""Async client for the OCI distribution API: the calls.

One :class:`RegistryClient` talks to one registry over the :mod:`~cr_agent.registry.transport`
its caller chose (the agent service: aiohttp; ``cr-agent scan``: the lean stream transport). It
pings ``/v2/``, lists repositories and tags with ``Link`` pagination, fetches and verifies
manifests and configs, and streams blobs while hashing them. Redirects are followed by hand so
the registry's ``Authorization`` header never leaves the registry's origin; which header a
request carries is the :mod:`~cr_agent.registry.token_flow`'s business, retries the
:mod:`~cr_agent.registry.exchange`'s.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from cr_agent.registry import json_depth
from cr_agent.registry.auth import (
    CATALOG_SCOPE,
    RegistryAuth,
    parse_www_authenticate,
    repository_scope,
)
from cr_agent.registry.blob_stream import BlobStream
from cr_agent.registry.errors import (
    AuthenticationError,
    DigestMismatch,
    ManifestError,
    NotFoundError,
    PermissionDenied,
    RegistryError,
    UnsupportedManifest,
)
from cr_agent.registry.exchange import Exchange, display, read_body
from cr_agent.registry.manifest import (
    ACCEPT,
    CONFIG_TYPES,
    INDEX_TYPES,
    MAX_CONFIG_BYTES,
    MAX_MANIFEST_BYTES,
    Descriptor,
    ImageConfig,
    ImageIndex,
    ImageManifest,
    Platform,
    parse_config,
    parse_manifest,
    select_platform,
)
from cr_agent.registry.pagination import MAX_PAGE_SIZE, ListingLimits, next_link, same_origin
from cr_agent.registry.rate_limit import RateLimit
from cr_agent.registry.retry import RetryPolicy
from cr_agent.registry.token_flow import TokenFlow
from cr_agent.registry.transport import Response, Transport

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
MAX_INDEX_DEPTH = 4


@dataclass(frozen=True, slots=True)
class PingResult:
    status: int
    scheme: str | None  # "basic" | "bearer" | None when the registry needs no auth


@dataclass(frozen=True, slots=True)
class ManifestHead:
    digest: str | None
    media_type: str | None
    size: int | None


@dataclass(frozen=True, slots=True)
class ResolvedImage:
    """A platform-specific image: the manifest, its config and the digests that led there."""

    repository: str
    reference: str  # as the caller asked for it: a tag or a digest
    digest: str  # of the platform-specific manifest
    index_digest: str | None  # of the top-level index, when the reference named one
    manifest: ImageManifest
    config: ImageConfig
    platform: Platform


class RegistryClient:
    """See the module docstring. ``async with RegistryClient(url, transport=...) as client``;
    the client closes its transport when it closes."""

    def __init__(
        self,
        base_url: str,
        auth: RegistryAuth | None = None,
        *,
        transport: Transport,
        insecure: bool = False,
        timeout: float = 60.0,
        retries: int = 4,
        backoff: float = 0.5,
        max_retry_wait: float = 60.0,
        chunk_size: int = 1 << 20,
        listing_limits: ListingLimits | None = None,
    ) -> None:
        self.base_url = normalize_base_url(base_url)
        self.auth = auth or RegistryAuth()
        self.insecure = insecure
        self.timeout = timeout
        self.chunk_size = chunk_size
        self.listing_limits = listing_limits or ListingLimits()
        self._exchange = Exchange(transport, RetryPolicy(max(1, retries), backoff, max_retry_wait))
        self._flow = TokenFlow(
            self._exchange, self.auth, self.base_url, insecure=insecure, timeout=timeout
        )

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._exchange.transport.close()

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).netloc

    @property
    def rate_limit(self) -> RateLimit | None:
        """The registry's pull limit as its last answer stated it (Docker Hub's headers)."""
        return self._exchange.rate_limit

    def _url(self, path: str) -> str:
        return self.base_url + path

    # ------------------------------------------------------------------ requests

    async def _send(
        self,
        method: str,
        path_or_url: str,
        *,
        scope: str | None,
        step: str,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """A request with auth, challenge handling and same-origin-only credentials on redirects."""
        url = path_or_url if "://" in path_or_url else self._url(path_or_url)
        extra = dict(headers or {})
        challenged = 0
        redirects = 0
        while True:
            hdrs = {**extra, **(await self._flow.header(url, scope))}
            resp = await self._exchange.request(method, url, headers=hdrs, step=step)
            if resp.status in REDIRECT_STATUSES and "Location" in resp.headers:
                resp.release()
                redirects += 1
                if redirects > MAX_REDIRECTS:
                    raise RegistryError(f"{step}: more than {MAX_REDIRECTS} redirects", step)
                url = urljoin(url, resp.headers["Location"])
                continue
            if resp.status == 401 and same_origin(url, self.base_url):
                header = resp.headers.get("WWW-Authenticate", "")
                resp.release()
                challenged += 1
                await self._flow.on_challenge(header, scope, step, challenged)
                continue
            if resp.status == 403:
                resp.release()
                raise PermissionDenied(
                    f"{step}: access denied to {display(url)} (HTTP 403)", step, 403
                )
            return resp

    def _decode(self, body: bytes, step: str, status: int) -> Any:
        try:
            return json_depth.loads(body)
        except json_depth.JsonTooDeep as exc:
            raise RegistryError(f"{step}: invalid response: {exc}", step, status) from None
        except ValueError:
            raise RegistryError(f"{step}: response is not valid JSON", step, status) from None

    def _not_found(self, resp: Response, step: str, what: str) -> None:
        if resp.status == 404:
            resp.release()
            raise NotFoundError(f"{step}: {what} not found", step, 404)
        if resp.status >= 400:
            resp.release()
            raise RegistryError(f"{step}: {what}: HTTP {resp.status}", step, resp.status)

    # ------------------------------------------------------------------ API

    async def ping(self) -> PingResult:
        """``GET /v2/``; with credentials, also proves they are accepted."""
        resp = await self._exchange.request("GET", self._url("/v2/"), headers={}, step="ping")
        status = resp.status
        header = resp.headers.get("WWW-Authenticate", "")
        resp.release()
        if status == 200:
            return PingResult(200, None)
        if status != 401:
            raise RegistryError(
                f"ping: {self.base_url}/v2/ answered HTTP {status}; is this a registry?",
                "ping",
                status,
            )
        challenges = parse_www_authenticate(header)
        bearer = next((c for c in challenges if c.scheme == "bearer" and c.realm), None)
        if bearer is not None:
            self._flow.challenge = bearer
            if not self.auth.anonymous and not self.auth.bearer_token:
                await self._flow.fetch_token(bearer, [])
            return PingResult(401, "bearer")
        if any(c.scheme == "basic" for c in challenges):
            self._flow.challenge = next(c for c in challenges if c.scheme == "basic")
            resp = await self._send("GET", "/v2/", scope=None, step="ping")
            resp.release()
            return PingResult(resp.status, "basic")
        raise AuthenticationError(
            f"ping: unsupported WWW-Authenticate {header[:80]!r}", "ping", 401
        )

    async def _paginate(
        self, path: str, key: str, scope: str, step: str, page_size: int
    ) -> AsyncIterator[str]:
        n = max(1, min(page_size, MAX_PAGE_SIZE))
        url: str | None = self._url(path) + f"?n={n}"
        seen_urls: set[str] = set()
        limits = self.listing_limits
        pages = entries = read = 0
        while url:
            if url in seen_urls:
                raise RegistryError(f"{step}: pagination loops back to a page already read", step)
            pages += 1
            if pages > limits.max_pages:
                raise limits.too_long(step, f"pages from {self.host}", "LISTING_MAX_PAGES")
            seen_urls.add(url)
            resp = await self._send("GET", url, scope=scope, step=step)
            if resp.status == 404:
                resp.release()
                raise NotFoundError(f"{step}: {path} not found (HTTP 404)", step, 404)
            if resp.status == 401:
                resp.release()
                self._flow.deny(step, scope, None)
            self._not_found(resp, step, path)
            link = resp.headers.get("Link")
            room = limits.max_bytes - read
            raw = await read_body(resp, step, room)
            read += len(raw)
            if read > limits.max_bytes:
                raise limits.too_long(step, f"bytes from {self.host}", "LISTING_MAX_BYTES")
            body = self._decode(raw, step, resp.status)
            items = body.get(key) if isinstance(body, dict) else None
            for item in items or []:
                if isinstance(item, str):
                    entries += 1
                    if entries > limits.max_entries:
                        raise limits.too_long(
                            step, f"names from {self.host}", "LISTING_MAX_ENTRIES"
                        )
                    yield item
            del body, items, raw
            nxt = next_link(link, url)
            if nxt is not None and not same_origin(nxt, self.base_url):
                raise RegistryError(
                    f"{step}: refusing pagination link to another host ({display(nxt)})", step
                )
            url = nxt

    async def list_repositories(self, page_size: int = MAX_PAGE_SIZE) -> AsyncIterator[str]:
        """Every repository in ``/v2/_catalog``, following ``Link`` pages."""
        async for name in self._paginate(
            "/v2/_catalog", "repositories", CATALOG_SCOPE, "catalog", page_size
        ):
            yield name

    async def list_tags(self, repository: str, page_size: int = MAX_PAGE_SIZE) -> list[str]:
        """All tags of ``repository`` (storage order, as the registry sends them)."""
        return [
            t
            async for t in self._paginate(
                f"/v2/{repository}/tags/list",
                "tags",
                repository_scope(repository),
                "tags",
                page_size,
            )
        ]

    async def head_manifest(self, repository: str, reference: str) -> ManifestHead:
        """Digest and media type without pulling (HEAD does not count against Hub limits)."""
        resp = await self._send(
            "HEAD",
            f"/v2/{repository}/manifests/{reference}",
            scope=repository_scope(repository),
            step="manifest",
            headers={"Accept": ACCEPT},
        )
        self._not_found(resp, "manifest", f"{repository}:{reference}")
        resp.release()
        length = resp.headers.get("Content-Length")
        return ManifestHead(
            resp.headers.get("Docker-Content-Digest"),
            (resp.headers.get("Content-Type") or "").split(";")[0] or None,
            int(length) if length and length.isdigit() else None,
        )

    async def get_manifest(self, repository: str, reference: str) -> ImageManifest | ImageIndex:
        """Fetch, verify and parse a manifest or index."""
        resp = await self._send(
            "GET",
            f"/v2/{repository}/manifests/{reference}",
            scope=repository_scope(repository),
            step="manifest",
            headers={"Accept": ACCEPT},
        )
        self._not_found(
            resp,
            "manifest",
            f"manifest {repository}@{reference}"
            if ":" in reference
            else f"{repository}:{reference}",
        )
        content_type = resp.headers.get("Content-Type")
        header_digest = resp.headers.get("Docker-Content-Digest")
        body = await read_body(resp, "manifest", MAX_MANIFEST_BYTES)
        if len(body) > MAX_MANIFEST_BYTES:
            raise ManifestError(
                f"manifest {repository}:{reference} is larger than {MAX_MANIFEST_BYTES} bytes",
                "manifest",
            )
        expected = reference if ":" in reference else header_digest
        digest = _digest_of(body, expected)
        if expected and ":" in expected and digest != expected:
            raise DigestMismatch(
                f"manifest {repository}@{expected}: content hashes to {digest}", "manifest"
            )
        return parse_manifest(body, content_type, digest)

    async def get_blob(self, repository: str, descriptor: Descriptor, max_bytes: int) -> bytes:
        """A small blob (config) read whole, verified against its descriptor."""
        if descriptor.size > max_bytes:
            raise ManifestError(
                f"blob {descriptor.digest} is {descriptor.size} bytes; limit {max_bytes}", "blob"
            )
        out = bytearray()
        async with self.open_blob(repository, descriptor.digest, descriptor.size) as stream:
            async for chunk in stream.chunks():
                out += chunk
        return bytes(out)

    @asynccontextmanager
    async def open_blob(
        self, repository: str, digest: str, size: int | None = None
    ) -> AsyncIterator[BlobStream]:
        """Stream a blob; iterate ``stream.chunks()``; a wrong digest raises at the end."""
        resp = await self._send(
            "GET",
            f"/v2/{repository}/blobs/{digest}",
            scope=repository_scope(repository),
            step="blob",
        )
        self._not_found(resp, "blob", f"blob {digest} in {repository}")
        try:
            yield BlobStream(resp, digest, size, self.chunk_size)
        finally:
            resp.release()

    async def resolve_image(
        self, repository: str, reference: str, platform: str | Platform = "linux/amd64"
    ) -> ResolvedImage:
        """Follow indexes (nested too) to the manifest for ``platform`` and fetch its config."""
        wanted = platform if isinstance(platform, Platform) else Platform.parse(platform)
        top = await self.get_manifest(repository, reference)
        index_digest = top.digest if isinstance(top, ImageIndex) else None
        current: ImageManifest | ImageIndex = top
        depth = 0
        while isinstance(current, ImageIndex):
            depth += 1
            if depth > MAX_INDEX_DEPTH:
                raise UnsupportedManifest(
                    f"index {top.digest} nests deeper than {MAX_INDEX_DEPTH} levels", "manifest"
                )
            desc = select_platform(current, wanted)
            current = await self.get_manifest(repository, desc.digest)
        if current.config.media_type and current.config.media_type not in CONFIG_TYPES:
            raise UnsupportedManifest(
                f"manifest {current.digest} is not a container image", "manifest"
            )
        raw = await self.get_blob(repository, current.config, MAX_CONFIG_BYTES)
        config = parse_config(raw, current.config.digest)
        if len(config.diff_ids) != len(current.layers):
            raise ManifestError(
                f"image {current.digest}: {len(current.layers)} layers but {len(config.diff_ids)} diff_ids in its config",
                "config",
            )
        if index_digest is None and config.os and config.architecture:
            actual = Platform(config.os, config.architecture, config.variant)
            wanted_effective = actual
        else:
            wanted_effective = wanted
        return ResolvedImage(
            repository, reference, current.digest, index_digest, current, config, wanted_effective
        )


def _digest_of(body: bytes, expected: str | None) -> str:
    algorithm = expected.split(":", 1)[0] if expected and ":" in expected else "sha256"
    if algorithm not in ("sha256", "sha512"):
        algorithm = "sha256"
    return f"{algorithm}:{hashlib.new(algorithm, body).hexdigest()}"


def normalize_base_url(base_url: str) -> str:
    """``http(s)://host[:port][/prefix]`` without a trailing slash (https when none is given)."""
    if "://" not in base_url:
        base_url = "https://" + base_url
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"registry URL {base_url!r} must be http(s)://host[:port][/prefix]")
    return base_url.rstrip("/")


__all__ = [
    "INDEX_TYPES",
    "BlobStream",
    "ManifestHead",
    "PingResult",
    "RegistryClient",
    "ResolvedImage",
]
