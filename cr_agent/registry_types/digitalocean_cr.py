"""``digitalocean-cr``: DigitalOcean Container Registry.

The credential carries the API token as both username and password (``CR_TOKEN``); it pulls
from ``registry.digitalocean.com`` as Basic credentials. Listing uses the DigitalOcean API
with ``Authorization: Bearer``: ``GET /v2/registry`` names the account's registry (unless
``registryName`` is given), ``GET /v2/registry/{name}/repositoriesV2`` pages through its
repositories (``links.pages.next``), and ``.../repositories/{repo}/digests`` gives each
manifest's tags and ``updated_at``. Repositories are ``<registry>/<name>``.
"""

from __future__ import annotations

import urllib.parse
from typing import Any, ClassVar

from cr_agent.registry.errors import RegistryError
from cr_agent.registry_types.base import (
    RegistryType,
    TagInfo,
    TypeContext,
    extra_value,
    normalise_base,
    parse_time,
)
from cr_agent.registry_types.vendor_api import VendorApi
from shared.credentials import CredentialsError, RegistryCredentials

DIGITALOCEAN_API = "https://api.digitalocean.com"


class DigitalOceanRegistry(RegistryType):
    name = "digitalocean-cr"
    default_base: ClassVar[str | None] = "registry.digitalocean.com"
    catalog_first = False

    def check(self, creds: RegistryCredentials) -> None:
        if not creds.password:
            raise CredentialsError("password (CR_TOKEN) is required for type digitalocean-cr")

    def _api(self, creds: RegistryCredentials, ctx: TypeContext) -> VendorApi:
        base = normalise_base(
            extra_value(creds, "apiBase") or DIGITALOCEAN_API, field_name="apiBase"
        )
        return VendorApi(
            ctx, base, {"Authorization": f"Bearer {creds.password}"}, vendor="DigitalOcean"
        )

    async def registry_name(self, creds: RegistryCredentials, api: VendorApi) -> str:
        explicit = extra_value(creds, "registryName")
        if explicit:
            return explicit
        data = await api.get_json("/v2/registry")
        name = ((data or {}).get("registry") or {}).get("name") if isinstance(data, dict) else None
        if not isinstance(name, str) or not name:
            raise RegistryError("DigitalOcean API named no registry for this token", "list")
        return name

    async def _pages(self, api: VendorApi, path: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        url: str | None = path
        params: dict[str, str] | None = {"per_page": "100"}
        for _ in range(api.max_pages):
            if not url:
                break
            data = await api.get_json(url, params)
            out.append(data if isinstance(data, dict) else {})
            nxt = (((data or {}).get("links") or {}).get("pages") or {}).get("next")
            url, params = (nxt if isinstance(nxt, str) and nxt else None), None
        else:
            if url:
                raise api.too_many_pages()
        return out

    async def list_repositories_via_api(
        self, creds: RegistryCredentials, ctx: TypeContext, catalog_error: RegistryError | None
    ) -> list[str] | None:
        api = self._api(creds, ctx)
        registry = await self.registry_name(creds, api)
        names = []
        for page in await self._pages(api, f"/v2/registry/{registry}/repositoriesV2"):
            for repo in page.get("repositories") or []:
                if isinstance(repo, dict) and repo.get("name"):
                    names.append(f"{repo.get('registry_name') or registry}/{repo['name']}")
        return names

    async def tag_metadata(
        self, creds: RegistryCredentials, ctx: TypeContext, repository: str
    ) -> list[TagInfo] | None:
        api = self._api(creds, ctx)
        registry = await self.registry_name(creds, api)
        name = repository.removeprefix(f"{registry}/")
        path = f"/v2/registry/{registry}/repositories/{urllib.parse.quote(name, safe='')}/digests"
        tags = []
        for page in await self._pages(api, path):
            for manifest in page.get("manifests") or []:
                if not isinstance(manifest, dict):
                    continue
                pushed = parse_time(manifest.get("updated_at"))
                for tag in manifest.get("tags") or []:
                    tags.append(TagInfo(tag=tag, digest=manifest.get("digest"), pushed_at=pushed))
        return tags


TYPE = DigitalOceanRegistry()
