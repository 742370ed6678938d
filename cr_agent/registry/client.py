"""Async client for the OCI distribution API.

One :class:`RegistryClient` talks to one registry. It pings ``/v2/``, answers Basic and
Bearer challenges (tokens cached per scope, refreshed before expiry, scopes widened when a
challenge asks for more), lists repositories and tags with ``Link`` pagination, fetches and
verifies manifests and configs, and streams blobs while hashing them. Redirects are followed
by hand so the registry's ``Authorization`` header never leaves the registry's origin.

The bytes move through a :mod:`~cr_agent.registry.transport`: aiohttp by default (the agent
service), or the lean ``stream`` transport that the one-shot ``cr-agent scan`` command uses.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, NamedTuple
from urllib.parse import urlencode, urljoin, urlsplit

from cr_agent.registry import json_depth
from cr_agent.registry.auth import (
    CATALOG_SCOPE,
    Challenge,
    RegistryAuth,
    TokenCache,
    parse_www_authenticate,
    realm_refusal,
    repository_scope,
    token_from_response,
    widen_scopes,
)
from cr_agent.registry.errors import (
    AuthenticationError,
    DigestMismatch,
    ManifestError,
    NotFoundError,
    PermissionDenied,
    RegistryError,
    RegistryUnreachable,
    TlsError,
    UnsupportedManifest,
)
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
from cr_agent.registry.rate_limit import RateLimit, parse_rate_limit, parse_retry_after
from cr_agent.registry.transport import (
    BodyInterrupted,
    CertificateRejected,
    ConnectFailed,
    Response,
    TlsFailed,
    Transport,
    make_transport,
)
from shared.logging import get_logger

log = get_logger(__name__)

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
MAX_INDEX_DEPTH = 4
#: the transport a client uses when none is named (the tests switch it to run both)
DEFAULT_TRANSPORT = "aiohttp"


# NamedTuples, not dataclasses: as immutable, and a quarter of the cost to define at import
class PingResult(NamedTuple):
    status: int
    scheme: str | None  # "basic" | "bearer" | None when the registry needs no auth


class ManifestHead(NamedTuple):
    digest: str | None
    media_type: str | None
    size: int | None


class ResolvedImage(NamedTuple):
    """A platform-specific image: the manifest, its config and the digests that led there."""

    repository: str
    reference: str
    digest: str  # of the platform-specific manifest
    index_digest: str | None  # of the top-level index, when the reference named one
    manifest: ImageManifest
    config: ImageConfig
    platform: Platform


class _Retryable(Exception):
    def __init__(self, detail: str, status: int | None, wait: float | None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.wait = wait


class BlobStream:
    """Chunks of one blob; the digest (and size, when known) are checked as the bytes pass."""

    def __init__(self, response: Response, digest: str, size: int | None, chunk_size: int) -> None:
        self._response = response
        self.digest = digest
        self.size = size
        self._chunk_size = chunk_size
        algorithm, _, self._expected = digest.partition(":")
        if algorithm not in ("sha256", "sha512"):
            raise UnsupportedManifest(f"blob {digest}: unsupported digest algorithm", "blob")
        self._hash = hashlib.new(algorithm)
        self.bytes_read = 0

    def update(self, chunk: bytes) -> None:
        """Hash a chunk yourself (e.g. in a worker thread) after ``chunks(verify=False)``."""
        self._hash.update(chunk)

    async def chunks(self, *, verify: bool = True) -> AsyncIterator[bytes]:
        """The blob's bytes. With ``verify=False`` the caller hashes each chunk with
        :meth:`update` and calls :meth:`verify` at the end (so hashing can leave the loop)."""
        try:
            async for chunk in self._response.chunks(self._chunk_size):
                self.bytes_read += len(chunk)
                if self.size is not None and self.bytes_read > self.size:
                    raise DigestMismatch(
                        f"blob {self.digest} is larger than the {self.size} bytes its descriptor says",
                        "blob",
                    )
                if verify:
                    self._hash.update(chunk)
                yield chunk
        except BodyInterrupted as exc:
            raise RegistryUnreachable(
                f"blob {self.digest}: {exc} after {self.bytes_read} bytes", "blob"
            ) from None
        if verify:
            self.verify()

    def verify(self) -> None:
        """Raise :class:`DigestMismatch` unless every byte arrived and hashes to the digest."""
        if self.size is not None and self.bytes_read != self.size:
            raise DigestMismatch(
                f"blob {self.digest}: got {self.bytes_read} bytes, descriptor says {self.size}",
                "blob",
            )
        actual = self._hash.hexdigest()
        if actual != self._expected:
            raise DigestMismatch(
                f"blob {self.digest}: content hashes to {self._hash.name}:{actual}", "blob"
            )


class RegistryClient:
    """See the module docstring. Use ``async with RegistryClient(...) as client``."""

    def __init__(
        self,
        base_url: str,
        auth: RegistryAuth | None = None,
        *,
        ca_file: str | None = None,
        insecure: bool = False,
        session: Any = None,
        transport: str | None = None,
        timeout: float = 60.0,
        retries: int = 4,
        backoff: float = 0.5,
        max_retry_wait: float = 60.0,
        chunk_size: int = 1 << 20,
        listing_limits: ListingLimits | None = None,
    ) -> None:
        if "://" not in base_url:
            base_url = "https://" + base_url
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"registry URL {base_url!r} must be http(s)://host[:port][/prefix]")
        self.base_url = base_url.rstrip("/")
        self.auth = auth or RegistryAuth()
        self.insecure = insecure
        self.timeout = timeout
        self.retries = max(1, retries)
        self.backoff = backoff
        self.max_retry_wait = max_retry_wait
        self.chunk_size = chunk_size
        self.listing_limits = listing_limits or ListingLimits()
        self.rate_limit: RateLimit | None = None
        self._session = session  # an aiohttp.ClientSession shared by the agent service
        self._transport_kind = transport or DEFAULT_TRANSPORT
        self._http: Transport | None = None
        self._ssl: ssl.SSLContext | None = None
        if parts.scheme == "https":
            ctx = ssl.create_default_context()
            if ca_file:
                ctx.load_verify_locations(cafile=ca_file)
            if insecure:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            self._ssl = ctx
        self._tokens = TokenCache()
        self._challenge: Challenge | None = None
        self._token_lock = asyncio.Lock()

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> RegistryClient:
        if self._http is None:
            self._http = make_transport(
                self._transport_kind, self._ssl, self.timeout, session=self._session
            )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).netloc

    def _url(self, path: str) -> str:
        return self.base_url + path

    # ------------------------------------------------------------------ low-level HTTP

    async def _raw(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        data: bytes | None = None,
        step: str,
    ) -> Response:
        """One request with retries on 408/429/5xx and network errors; redirects not followed."""
        try:
            try:
                return await self._attempt(method, url, headers, data, step)
            except _Retryable as exc:
                if self.retries <= 1:
                    raise
                first = exc
            # The retry policy (tenacity) is loaded only once a request has failed: a one-shot
            # `cr-agent scan` that meets no failure never pays for its import.
            from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt

            await asyncio.sleep(self._delay(first, 1))
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self.retries - 1),
                wait=lambda state: self._delay(
                    state.outcome.exception() if state.outcome else None, state.attempt_number + 1
                ),
                retry=retry_if_exception_type(_Retryable),
                reraise=True,
            ):
                with attempt:
                    return await self._attempt(method, url, headers, data, step)
        except _Retryable as exc:
            what = "rate limited (429)" if exc.status == 429 else exc.detail
            raise RegistryUnreachable(
                f"{step}: {method} {self._display(url)} failed after {self.retries} attempts: {what}",
                step,
                exc.status,
            ) from None
        raise AssertionError("unreachable")

    def _delay(self, failure: BaseException | None, attempts: int) -> float:
        """Seconds to wait after ``attempts`` failed tries: the server's Retry-After, or
        exponential back-off, never more than ``max_retry_wait``."""
        if isinstance(failure, _Retryable) and failure.wait is not None:
            return min(failure.wait, self.max_retry_wait)
        return min(self.backoff * (2 ** (attempts - 1)), self.max_retry_wait)

    async def _attempt(
        self, method: str, url: str, headers: dict[str, str], data: bytes | None, step: str
    ) -> Response:
        http = self._http
        assert http is not None, "use RegistryClient as an async context manager"
        try:
            resp = await http.request(method, url, headers=headers, body=data)
        except CertificateRejected as exc:
            raise TlsError(
                f"{step}: TLS certificate of {urlsplit(url).netloc} not trusted "
                f"({exc.detail}); give a CA bundle or use the insecure switch",
                step,
            ) from None
        except TlsFailed as exc:
            raise TlsError(
                f"{step}: TLS handshake with {urlsplit(url).netloc} failed: {exc}", step
            ) from None
        except ConnectFailed as exc:
            raise _Retryable(str(exc), None, None) from None
        limit = parse_rate_limit(resp.headers)
        if limit is not None:
            self.rate_limit = limit
        if resp.status in RETRY_STATUSES:
            wait = parse_retry_after(resp.headers.get("Retry-After"), cap=self.max_retry_wait)
            resp.release()
            log.info("registry_retry", step=step, status=resp.status, wait=wait)
            raise _Retryable(f"HTTP {resp.status}", resp.status, wait)
        return resp

    def _display(self, url: str) -> str:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}{parts.path}"

    async def _auth_header(self, url: str, scope: str | None) -> dict[str, str]:
        if not same_origin(url, self.base_url):
            return {}
        if self.auth.bearer_token:
            return {"Authorization": f"Bearer {self.auth.bearer_token}"}
        challenge = self._challenge
        if challenge is None:
            return {}
        if challenge.scheme == "basic":
            header = self.auth.basic_header()
            return {"Authorization": header} if header else {}
        if challenge.scheme == "bearer" and challenge.realm:
            scopes = [scope] if scope else []
            token = self._tokens.get(challenge.realm, challenge.service or "", scopes)
            if token is None:
                token = await self._fetch_token(challenge, scopes)
            return {"Authorization": f"Bearer {token.value}"}
        return {}

    async def _fetch_token(self, challenge: Challenge, scopes: list[str]) -> Any:
        realm = challenge.realm or ""
        service = challenge.service or ""
        async with self._token_lock:
            cached = self._tokens.get(realm, service, scopes)
            if cached is not None:
                return cached
            refusal = await self._realm_refusal(realm)
            if refusal is not None:
                raise AuthenticationError(refusal, "token")
            resp = None
            if self.auth.identity_token:
                form = {
                    "grant_type": "refresh_token",
                    "refresh_token": self.auth.identity_token,
                    "service": service,
                    "client_id": "crbroker",
                }
                if scopes:
                    form["scope"] = " ".join(scopes)
                resp = await self._raw(
                    "POST",
                    realm,
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                    data=urlencode(form).encode(),
                    step="token",
                )
                if resp.status in (404, 405):
                    resp.release()
                    resp = None  # realm without OAuth2: fall back to GET
            if resp is None:
                query: list[tuple[str, str]] = [("service", service)] if service else []
                query += [("scope", s) for s in scopes]
                url = realm + ("&" if "?" in realm else "?") + urlencode(query) if query else realm
                headers = {}
                basic = self.auth.basic_header()
                if basic:
                    headers["Authorization"] = basic
                resp = await self._raw("GET", url, headers=headers, step="token")
            try:
                if resp.status in (401, 403):
                    raise AuthenticationError(
                        f"token realm {self._display(realm)} refused the credentials "
                        f"(HTTP {resp.status})"
                        if not self.auth.anonymous
                        else f"token realm {self._display(realm)} refused anonymous access (HTTP {resp.status})",
                        "token",
                        resp.status,
                    )
                if resp.status != 200:
                    raise RegistryError(
                        f"token realm {self._display(realm)} answered HTTP {resp.status}",
                        "token",
                        resp.status,
                    )
                body = await self._read(resp, "token", 1 << 20)
            finally:
                resp.release()
            try:
                token = token_from_response(json_depth.loads(body), scopes)
            except ValueError as exc:
                raise AuthenticationError(
                    f"token realm {self._display(realm)}: {exc}", "token"
                ) from None
            self._tokens.put(realm, service, token)
            return token

    async def _realm_refusal(self, realm: str) -> str | None:
        """:func:`realm_refusal` with both host names resolved, as the connection will be."""
        realm_host = urlsplit(realm).hostname or ""
        registry_host = urlsplit(self.base_url).hostname or ""
        if realm_host == registry_host:
            return realm_refusal(realm, self.base_url, insecure=self.insecure)
        return realm_refusal(
            realm,
            self.base_url,
            insecure=self.insecure,
            realm_addresses=await self._addresses(realm_host),
            registry_addresses=await self._addresses(registry_host),
        )

    async def _addresses(self, host: str) -> list[str]:
        """What the resolver answers for ``host`` (nothing when it cannot: the request that
        follows fails on its own, or goes through a proxy that resolves for us)."""
        try:
            async with asyncio.timeout(self.timeout):
                infos = await asyncio.get_running_loop().getaddrinfo(
                    host, None, type=socket.SOCK_STREAM
                )
        except (OSError, TimeoutError, UnicodeError):
            return []
        return [str(info[4][0]) for info in infos]

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
            hdrs = {**extra, **(await self._auth_header(url, scope))}
            resp = await self._raw(method, url, headers=hdrs, step=step)
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
                await self._on_challenge(header, scope, step, challenged)
                continue
            if resp.status == 403:
                resp.release()
                raise PermissionDenied(
                    f"{step}: access denied to {self._display(url)} (HTTP 403)", step, 403
                )
            return resp

    async def _on_challenge(self, header: str, scope: str | None, step: str, count: int) -> None:
        challenges = parse_www_authenticate(header)
        bearer = next((c for c in challenges if c.scheme == "bearer" and c.realm), None)
        basic = next((c for c in challenges if c.scheme == "basic"), None)
        if bearer is not None and not self.auth.bearer_token:
            needed = [scope] if scope else []
            scopes = widen_scopes(needed, bearer.scopes)
            previous = self._challenge
            self._challenge = bearer
            cached = self._tokens.get(bearer.realm or "", bearer.service or "", scopes)
            if count > 1 or (cached is not None and previous == bearer):
                # a token for exactly these scopes was refused: the credentials lack access
                self._deny(step, scope, bearer.error)
            await self._fetch_token(bearer, scopes)
            return
        if basic is not None and not self.auth.bearer_token:
            if self.auth.basic_header() is None:
                raise AuthenticationError(
                    f"{step}: registry {self.host} requires credentials and none were given",
                    step,
                    401,
                )
            if count > 1 or (self._challenge is not None and self._challenge.scheme == "basic"):
                raise AuthenticationError(
                    f"{step}: registry {self.host} refused the username/password", step, 401
                )
            self._challenge = basic
            return
        raise AuthenticationError(
            f"{step}: registry {self.host} refused the credentials (HTTP 401)", step, 401
        )

    def _deny(self, step: str, scope: str | None, error: str | None) -> None:
        if self.auth.anonymous:
            raise AuthenticationError(
                f"{step}: registry {self.host} requires credentials for {scope or 'this request'}",
                step,
                401,
            )
        if step == "catalog":
            raise PermissionDenied(
                f"catalog: listing repositories on {self.host} is not permitted for these credentials",
                step,
                401,
            )
        raise PermissionDenied(
            f"{step}: the credentials have no access to {scope or 'this resource'} on {self.host}"
            + (f" ({error})" if error else ""),
            step,
            401,
        )

    async def _read(self, resp: Response, step: str, limit: int) -> bytes:
        try:
            return await resp.read(limit)
        except BodyInterrupted as exc:
            raise RegistryUnreachable(f"{step}: {exc}", step, resp.status) from None
        finally:
            resp.release()

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
        resp = await self._raw("GET", self._url("/v2/"), headers={}, step="ping")
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
            self._challenge = bearer
            if not self.auth.anonymous and not self.auth.bearer_token:
                await self._fetch_token(bearer, [])
            return PingResult(401, "bearer")
        if any(c.scheme == "basic" for c in challenges):
            self._challenge = next(c for c in challenges if c.scheme == "basic")
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
                self._deny(step, scope, None)
            self._not_found(resp, step, path)
            link = resp.headers.get("Link")
            room = limits.max_bytes - read
            raw = await self._read(resp, step, room)
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
                    f"{step}: refusing pagination link to another host ({self._display(nxt)})", step
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
        body = await self._read(resp, "manifest", MAX_MANIFEST_BYTES)
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


__all__ = [
    "INDEX_TYPES",
    "BlobStream",
    "ManifestHead",
    "PingResult",
    "RegistryClient",
    "ResolvedImage",
]
