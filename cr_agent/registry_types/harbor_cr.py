"""``harbor-cr``: Harbor.

Harbor answers ``/v2/_catalog`` only for system administrators; for everyone else
repositories come from its project API with the same Basic credentials:
``GET /api/v2.0/projects`` then ``GET /api/v2.0/projects/{project}/repositories`` (``page`` /
``page_size``; names already ``project/repo``). Artifacts list tags with ``push_time``.
"""

from __future__ import annotations

import base64
import urllib.parse
from typing import Any

from cr_agent.registry.errors import NotFoundError, PermissionDenied, RegistryError
from cr_agent.registry_types.base import (
    RegistryType,
    TagInfo,
    TypeContext,
    extra_value,
    normalise_base,
    parse_time,
)
from cr_agent.registry_types.vendor_api import VendorApi
from shared.credentials import RegistryCredentials

PAGE_SIZE = 100


class HarborRegistry(RegistryType):
    name = "harbor-cr"

    def _api(self, creds: RegistryCredentials, ctx: TypeContext) -> VendorApi:
        explicit = extra_value(creds, "apiBase")
        if explicit:
            base = normalise_base(explicit, field_name="apiBase")
        else:
            parts = urllib.parse.urlsplit(self.base_url(creds))
            base = f"{parts.scheme}://{parts.netloc}"
        headers = {"Accept": "application/json"}
        if creds.username:
            pair = f"{creds.username}:{creds.password or ''}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        return VendorApi(ctx, base, headers, vendor="Harbor")

    async def _all(
        self, api: VendorApi, path: str, params: dict[str, str] | None = None
    ) -> list[Any]:
        items: list[Any] = []
        for page in range(1, api.max_pages + 1):
            query = {"page": str(page), "page_size": str(PAGE_SIZE), **(params or {})}
            data = await api.get_json(path, query)
            batch = data if isinstance(data, list) else []
            items += batch
            if len(batch) < PAGE_SIZE:
                break
        else:
            raise api.too_many_pages()
        return items

    async def list_repositories_via_api(
        self, creds: RegistryCredentials, ctx: TypeContext, catalog_error: RegistryError | None
    ) -> list[str] | None:
        api = self._api(creds, ctx)
        names = []
        for project in await self._all(api, "/api/v2.0/projects"):
            pname = project.get("name") if isinstance(project, dict) else None
            if not pname:
                continue
            path = f"/api/v2.0/projects/{urllib.parse.quote(pname, safe='')}/repositories"
            for repo in await self._all(api, path):
                if isinstance(repo, dict) and repo.get("name"):
                    names.append(repo["name"])
        return names

    async def tag_metadata(
        self, creds: RegistryCredentials, ctx: TypeContext, repository: str
    ) -> list[TagInfo] | None:
        if "/" not in repository:
            return None
        api = self._api(creds, ctx)
        project, rest = repository.split("/", 1)
        # Harbor wants a repository name with slashes encoded twice
        encoded = urllib.parse.quote(urllib.parse.quote(rest, safe=""), safe="")
        path = (
            f"/api/v2.0/projects/{urllib.parse.quote(project, safe='')}"
            f"/repositories/{encoded}/artifacts"
        )
        try:
            artifacts = await self._all(api, path, {"with_tag": "true"})
        except (NotFoundError, PermissionDenied):
            # push times are an extra; without the API (or its permission) the registry's
            # tag list and digests still answer
            return None
        tags = []
        for artifact in artifacts:
            if not isinstance(artifact, dict):
                continue
            for tag in artifact.get("tags") or []:
                if isinstance(tag, dict) and tag.get("name"):
                    pushed = parse_time(tag.get("push_time")) or parse_time(
                        artifact.get("push_time")
                    )
                    tags.append(
                        TagInfo(tag=tag["name"], digest=artifact.get("digest"), pushed_at=pushed)
                    )
        return tags


TYPE = HarborRegistry()
