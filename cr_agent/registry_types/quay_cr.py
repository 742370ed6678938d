"""``quay-cr``: Quay (quay.io or self-hosted).

Robot accounts (``org+robot``) and users pull with Basic credentials and may list through
``/v2/_catalog``. Where the catalog is refused, repositories come from Quay's API with the
password used as an OAuth bearer token: ``GET /api/v1/repository?namespace=<ns>`` (following
``next_page``); the namespace is ``namespace`` from the credentials, else the part of the
username before ``+``. Tags with digests and push times come from
``GET /api/v1/repository/{ns}/{name}/tag/?onlyActiveTags=true`` (``start_ts``, paged with
``page`` / ``has_additional``).
"""

from __future__ import annotations

import urllib.parse
from datetime import UTC, datetime
from typing import ClassVar

from cr_agent.registry.errors import (
    AuthenticationError,
    NotFoundError,
    PermissionDenied,
    RegistryError,
)
from cr_agent.registry_types.base import (
    RegistryType,
    TagInfo,
    TypeContext,
    extra_value,
    normalise_base,
)
from cr_agent.registry_types.vendor_api import VendorApi
from shared.credentials import RegistryCredentials


class QuayRegistry(RegistryType):
    name = "quay-cr"
    default_base: ClassVar[str | None] = "quay.io"

    def _api(self, creds: RegistryCredentials, ctx: TypeContext) -> VendorApi:
        explicit = extra_value(creds, "apiBase")
        if explicit:
            base = normalise_base(explicit, field_name="apiBase")
        else:
            parts = urllib.parse.urlsplit(self.base_url(creds))
            base = f"{parts.scheme}://{parts.netloc}"
        return VendorApi(
            ctx, base, {"Authorization": f"Bearer {creds.password or ''}"}, vendor="Quay"
        )

    async def list_repositories_via_api(
        self, creds: RegistryCredentials, ctx: TypeContext, catalog_error: RegistryError | None
    ) -> list[str] | None:
        namespace = extra_value(creds, "namespace") or (creds.username or "").split("+", 1)[0]
        if not namespace:
            return None
        api = self._api(creds, ctx)
        names = []
        params = {"namespace": namespace}
        for _ in range(api.max_pages):
            data = await api.get_json("/api/v1/repository", params)
            for repo in (data or {}).get("repositories") or []:
                if isinstance(repo, dict) and repo.get("name"):
                    names.append(f"{repo.get('namespace') or namespace}/{repo['name']}")
            token = (data or {}).get("next_page")
            if not token:
                break
            params = {"namespace": namespace, "next_page": token}
        else:
            raise api.too_many_pages()
        return names

    async def tag_metadata(
        self, creds: RegistryCredentials, ctx: TypeContext, repository: str
    ) -> list[TagInfo] | None:
        api = self._api(creds, ctx)
        tags: list[TagInfo] = []
        for page in range(1, api.max_pages + 1):
            params = {"onlyActiveTags": "true", "limit": "100", "page": str(page)}
            try:
                data = await api.get_json(f"/api/v1/repository/{repository}/tag/", params)
            except (NotFoundError, PermissionDenied, AuthenticationError):
                return None  # no API (or not for this token): the registry's tag list answers
            for tag in (data or {}).get("tags") or []:
                if not isinstance(tag, dict) or not tag.get("name"):
                    continue
                started = tag.get("start_ts")
                pushed = (
                    datetime.fromtimestamp(started, UTC)
                    if isinstance(started, int | float)
                    else None
                )
                tags.append(
                    TagInfo(tag=tag["name"], digest=tag.get("manifest_digest"), pushed_at=pushed)
                )
            if not (data or {}).get("has_additional"):
                break
        else:
            raise api.too_many_pages("tags")
        return tags


TYPE = QuayRegistry()
