"""``docker-hub``: Docker Hub.

Pulls go to ``registry-1.docker.io`` with a token from ``auth.docker.io`` (the registry
client follows the Bearer challenge with the Basic credentials). Docker Hub has no
``/v2/_catalog``; repositories and tag push times come from the Hub API: a short-lived JWT
from ``POST /v2/auth/token`` (``identifier``/``secret``; a password, personal or
organisation access token), falling back to the deprecated ``POST /v2/users/login`` where
the new route is missing, then ``GET /v2/namespaces/{namespace}/repositories`` and
``GET /v2/namespaces/{namespace}/repositories/{name}/tags`` (``count``/``next``/``results``
pages). The namespace is ``namespace`` from the credentials, else the username.
"""

from __future__ import annotations

from typing import ClassVar

from cr_agent.registry.errors import AuthenticationError, NotFoundError, RegistryError
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
from shared.logging import register_secrets

HUB_API = "https://hub.docker.com"
#: what people write for Docker Hub; the distribution API is served elsewhere
HUB_ALIASES = ("docker.io", "index.docker.io", "hub.docker.com", "registry.hub.docker.com")


class DockerHub(RegistryType):
    name = "docker-hub"
    default_base: ClassVar[str | None] = "registry-1.docker.io"
    catalog_first = False

    def check(self, creds: RegistryCredentials) -> None:
        if not creds.username or not creds.password:
            raise CredentialsError("username and password are required for type docker-hub")

    def base_url(self, creds: RegistryCredentials) -> str:
        base = (creds.registryBase or "").strip()
        host = base.split("://", 1)[-1].rstrip("/").lower()
        if not base or host in HUB_ALIASES:
            return "https://registry-1.docker.io"
        return normalise_base(base)

    def namespace(self, creds: RegistryCredentials) -> str:
        return extra_value(creds, "namespace") or creds.username or ""

    async def _api(self, creds: RegistryCredentials, ctx: TypeContext) -> VendorApi:
        base = extra_value(creds, "apiBase") or HUB_API
        login = VendorApi(ctx, normalise_base(base, field_name="apiBase"), {}, vendor="Docker Hub")
        try:
            data, _ = await login.request(
                "POST",
                "/v2/auth/token",
                json_body={"identifier": creds.username, "secret": creds.password},
                step="authenticate",
            )
        except NotFoundError:
            data, _ = await login.request(
                "POST",
                "/v2/users/login",
                json_body={"username": creds.username, "password": creds.password},
                step="authenticate",
            )
        token = None
        if isinstance(data, dict):
            token = data.get("access_token") or data.get("token")
        if not isinstance(token, str) or not token:
            raise AuthenticationError("Docker Hub login answered without a token", "authenticate")
        register_secrets(token)
        return VendorApi(
            ctx, login.base_url, {"Authorization": f"Bearer {token}"}, vendor="Docker Hub"
        )

    async def list_repositories_via_api(
        self, creds: RegistryCredentials, ctx: TypeContext, catalog_error: RegistryError | None
    ) -> list[str] | None:
        api = await self._api(creds, ctx)
        namespace = self.namespace(creds)
        names: list[str] = []
        async for page in api.pages_by_next_field(
            f"/v2/namespaces/{namespace}/repositories", {"page_size": "100"}
        ):
            for repo in page.get("results") or []:
                if isinstance(repo, dict) and repo.get("name"):
                    names.append(f"{repo.get('namespace') or namespace}/{repo['name']}")
        return names

    async def tag_metadata(
        self, creds: RegistryCredentials, ctx: TypeContext, repository: str
    ) -> list[TagInfo] | None:
        api = await self._api(creds, ctx)
        namespace, _, name = (
            repository if "/" in repository else f"library/{repository}"
        ).partition("/")
        tags: list[TagInfo] = []
        async for page in api.pages_by_next_field(
            f"/v2/namespaces/{namespace}/repositories/{name}/tags", {"page_size": "100"}
        ):
            for tag in page.get("results") or []:
                if isinstance(tag, dict) and tag.get("name"):
                    tags.append(
                        TagInfo(
                            tag=tag["name"],
                            digest=tag.get("digest") or None,
                            pushed_at=parse_time(tag.get("tag_last_pushed"))
                            or parse_time(tag.get("last_updated")),
                        )
                    )
        return tags


TYPE = DockerHub()
