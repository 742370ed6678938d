"""JSON calls to a registry vendor's own HTTP API (listing where the catalog is not enough).

Failures become the registry error classes with the step ``list`` so the service answers the
same way whichever API refused: credentials refused, not permitted, unreachable, TLS.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import urllib.parse
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp

from cr_agent.registry import json_depth
from cr_agent.registry.errors import (
    AuthenticationError,
    ListingTooLong,
    NotFoundError,
    PermissionDenied,
    RegistryError,
    RegistryUnreachable,
    TlsError,
)
from cr_agent.registry_types.base import TypeContext
from shared.logging import get_logger

log = get_logger(__name__)

_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


def _origin(url: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, parts.netloc.lower()


class VendorApi:
    """A base URL plus the headers one vendor wants; every call bounded by the timeout."""

    def __init__(
        self, ctx: TypeContext, base_url: str, headers: Mapping[str, str], *, vendor: str
    ) -> None:
        self.ctx = ctx
        self.base_url = base_url.rstrip("/")
        self.headers = dict(headers)
        self.vendor = vendor

    def url(self, path: str) -> str:
        if "://" not in path:
            return f"{self.base_url}{path}"
        # a "next" link elsewhere would carry our token to another host
        if _origin(path) != _origin(self.base_url):
            raise RegistryError(f"{self.vendor} API pointed pagination at another host", "list")
        return path

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        step: str = "list",
    ) -> tuple[Any, Mapping[str, str]]:
        """One call; returns (decoded JSON, response headers)."""
        url = self.url(path)
        log.debug("vendor api request", vendor=self.vendor, method=method, url=url.split("?")[0])
        try:
            async with asyncio.timeout(self.ctx.timeout):
                async with self.ctx.http.request(
                    method,
                    url,
                    params=params,
                    json=json_body,
                    data=form,
                    headers=self.headers,
                    ssl=self.ctx.ssl_context(),
                    allow_redirects=True,
                ) as resp:
                    log.debug("vendor api response", vendor=self.vendor, status=resp.status)
                    if resp.status == 401:
                        raise AuthenticationError(
                            f"{self.vendor} API refused the credentials (401)", step, status=401
                        )
                    if resp.status == 403:
                        raise PermissionDenied(
                            f"{self.vendor} API does not permit this listing (403)",
                            step,
                            status=403,
                        )
                    if resp.status == 404:
                        raise NotFoundError(
                            f"{self.vendor} API has no {path.split('?')[0]} (404)",
                            step,
                            status=404,
                        )
                    if resp.status >= 400:
                        raise RegistryError(
                            f"{self.vendor} API answered {resp.status}", step, status=resp.status
                        )
                    raw = await self._read_capped(resp, step)
                    try:
                        data = json_depth.loads(raw)
                    except ValueError:
                        raise RegistryError(
                            f"{self.vendor} API answered with something that is not JSON", step
                        ) from None
                    return data, resp.headers
        except TimeoutError:
            raise RegistryUnreachable(
                f"{self.vendor} API did not answer within {self.ctx.timeout:g}s", step
            ) from None
        except (aiohttp.ClientSSLError, ssl.SSLError) as exc:
            raise TlsError(
                f"TLS to the {self.vendor} API failed: {exc.__class__.__name__}", step
            ) from None
        except aiohttp.ClientError as exc:
            raise RegistryUnreachable(
                f"{self.vendor} API unreachable: {exc.__class__.__name__}", step
            ) from None

    async def _read_capped(self, resp: aiohttp.ClientResponse, step: str) -> bytes:
        """The body, refused past ``LISTING_MAX_BYTES`` (a page that never ends)."""
        parts: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(256 * 1024):
            parts.append(chunk)
            size += len(chunk)
            if size > self.ctx.listing.max_bytes:
                raise self.ctx.listing.too_long(
                    step, f"one {self.vendor} API answer", "LISTING_MAX_BYTES"
                )
        return b"".join(parts)

    @property
    def max_pages(self) -> int:
        """Pages one listing may take (LISTING_MAX_PAGES); past them, :meth:`too_many_pages`."""
        return self.ctx.listing.max_pages

    def too_many_pages(self, step: str = "list") -> ListingTooLong:
        return self.ctx.listing.too_long(step, f"{self.vendor} API pages", "LISTING_MAX_PAGES")

    async def get_json(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        data, _ = await self.request("GET", path, params=params)
        return data

    async def pages_by_link(
        self, path: str, params: Mapping[str, str] | None = None
    ) -> AsyncIterator[Any]:
        """Follow RFC 8288 ``Link: <...>; rel="next"`` headers (GitHub, GitLab keyset)."""
        url: str | None = path
        query: Mapping[str, str] | None = params
        for _ in range(self.max_pages):
            if url is None:
                return
            data, headers = await self.request("GET", url, params=query)
            yield data
            match = _LINK_NEXT.search(headers.get("Link", ""))
            url, query = (match.group(1), None) if match else (None, None)
        if url is not None:
            raise self.too_many_pages()

    async def pages_by_next_field(
        self, path: str, params: Mapping[str, str] | None = None, *, field: str = "next"
    ) -> AsyncIterator[Any]:
        """Follow a ``next`` URL in the body (Docker Hub)."""
        url: str | None = path
        query: Mapping[str, str] | None = params
        for _ in range(self.max_pages):
            if not url:
                return
            data = await self.get_json(url, query)
            yield data
            nxt = data.get(field) if isinstance(data, dict) else None
            url, query = (nxt if isinstance(nxt, str) and nxt else None), None
        if url:
            raise self.too_many_pages()
