"""``google-artifact-cr``: Google Artifact Registry (``<location>-docker.pkg.dev``).

Same authentication as GCR (``_json_key`` + the service-account key). ``registryBase`` is the
regional host with ``/<project>/<repository>`` (a listing scope, as for GCR). Where the
catalog is refused or missing, images come from the Artifact Registry API with an OAuth
token minted from the key: ``GET /v1/projects/{p}/locations/{l}/repositories/{r}/dockerImages``
(``dockerImages[].uri``, ``tags``, ``uploadTime``; ``nextPageToken``). The location is the
host's ``<location>-docker.pkg.dev`` prefix, or ``location`` in the credentials.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any, ClassVar

from cr_agent.registry.errors import NotFoundError, PermissionDenied, RegistryError
from cr_agent.registry_types.base import (
    TagInfo,
    TypeContext,
    extra_value,
    normalise_base,
    parse_time,
)
from cr_agent.registry_types.gcr import GoogleContainerRegistry
from cr_agent.registry_types.google_oauth import access_token
from cr_agent.registry_types.vendor_api import VendorApi
from shared.credentials import RegistryCredentials

ARTIFACT_REGISTRY_API = "https://artifactregistry.googleapis.com"
_HOST = re.compile(r"^([a-z0-9-]+)-docker\.pkg\.dev$")


class GoogleArtifactRegistry(GoogleContainerRegistry):
    name = "google-artifact-cr"
    default_base: ClassVar[str | None] = None

    def _repository(self, creds: RegistryCredentials) -> tuple[str, str, str] | None:
        """(location, project, repository) when ``registryBase`` names them."""
        scope = self.scope(creds).split("/")
        host = urllib.parse.urlsplit(self.base_url(creds)).hostname or ""
        match = _HOST.match(host)
        location = extra_value(creds, "location") or (match.group(1) if match else None)
        if location is None or len(scope) < 2 or not all(scope[:2]):
            return None
        return location, scope[0], scope[1]

    async def _images(
        self, creds: RegistryCredentials, ctx: TypeContext
    ) -> list[dict[str, Any]] | None:
        where = self._repository(creds)
        if where is None or not creds.password:
            return None
        location, project, repository = where
        token = await access_token(creds.password, ctx)
        base = normalise_base(
            extra_value(creds, "apiBase") or ARTIFACT_REGISTRY_API, field_name="apiBase"
        )
        api = VendorApi(ctx, base, {"Authorization": f"Bearer {token}"}, vendor="Artifact Registry")
        path = f"/v1/projects/{project}/locations/{location}/repositories/{repository}/dockerImages"
        images: list[dict[str, Any]] = []
        params = {"pageSize": "1000"}
        for _ in range(api.max_pages):
            data = await api.get_json(path, params)
            images += [i for i in (data or {}).get("dockerImages") or [] if isinstance(i, dict)]
            token_next = (data or {}).get("nextPageToken")
            if not token_next:
                break
            params = {"pageSize": "1000", "pageToken": token_next}
        else:
            raise api.too_many_pages()
        return images

    @staticmethod
    def _name_and_digest(uri: str) -> tuple[str, str | None]:
        path = uri.split("/", 1)[1] if "/" in uri else uri
        name, _, digest = path.partition("@")
        return name, digest or None

    async def list_repositories_via_api(
        self, creds: RegistryCredentials, ctx: TypeContext, catalog_error: RegistryError | None
    ) -> list[str] | None:
        images = await self._images(creds, ctx)
        if images is None:
            return None
        return [self._name_and_digest(str(i.get("uri", "")))[0] for i in images if i.get("uri")]

    async def tag_metadata(
        self, creds: RegistryCredentials, ctx: TypeContext, repository: str
    ) -> list[TagInfo] | None:
        try:
            images = await self._images(creds, ctx)
        except (NotFoundError, PermissionDenied):
            return None  # the registry's own tag list still answers
        if images is None:
            return None
        tags = []
        for image in images:
            name, digest = self._name_and_digest(str(image.get("uri", "")))
            if name != repository:
                continue
            pushed = parse_time(image.get("uploadTime")) or parse_time(image.get("updateTime"))
            tags += [
                TagInfo(tag=t, digest=digest, pushed_at=pushed) for t in image.get("tags") or []
            ]
        return tags


TYPE = GoogleArtifactRegistry()
