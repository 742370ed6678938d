"""``github-cr``: GitHub Container Registry (``ghcr.io``).

Pulls use the username and a personal access token (classic, ``read:packages``) as Basic
credentials. ghcr.io has no registry-wide catalog, so repositories come from the GitHub REST
API: ``GET /orgs/{org}/packages?package_type=container`` when the credentials name an
``organization`` (or ``namespace``), else ``GET /user/packages?package_type=container``;
each package is ``<owner>/<name>``. Tags, digests and push times come from the package
versions (``metadata.container.tags``).
"""

from __future__ import annotations

import urllib.parse
from typing import ClassVar

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

GITHUB_API = "https://api.github.com"


class GitHubRegistry(RegistryType):
    name = "github-cr"
    default_base: ClassVar[str | None] = "ghcr.io"
    catalog_first = False

    def check(self, creds: RegistryCredentials) -> None:
        if not creds.password:
            raise CredentialsError(
                "password (a personal access token) is required for type github-cr"
            )

    def _api(self, creds: RegistryCredentials, ctx: TypeContext) -> VendorApi:
        base = normalise_base(extra_value(creds, "apiBase") or GITHUB_API, field_name="apiBase")
        headers = {
            "Authorization": f"Bearer {creds.password}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }
        return VendorApi(ctx, base, headers, vendor="GitHub")

    def _owner_prefix(self, creds: RegistryCredentials) -> str:
        org = extra_value(creds, "organization") or extra_value(creds, "namespace")
        return f"/orgs/{urllib.parse.quote(org, safe='')}" if org else "/user"

    async def list_repositories_via_api(
        self, creds: RegistryCredentials, ctx: TypeContext, catalog_error: RegistryError | None
    ) -> list[str] | None:
        api = self._api(creds, ctx)
        names: list[str] = []
        params = {"package_type": "container", "per_page": "100"}
        async for page in api.pages_by_link(f"{self._owner_prefix(creds)}/packages", params):
            for pkg in page if isinstance(page, list) else []:
                owner = (pkg.get("owner") or {}).get("login") if isinstance(pkg, dict) else None
                if owner and pkg.get("name"):
                    names.append(f"{owner}/{pkg['name']}".lower())
        return names

    async def tag_metadata(
        self, creds: RegistryCredentials, ctx: TypeContext, repository: str
    ) -> list[TagInfo] | None:
        api = self._api(creds, ctx)
        package = repository.split("/", 1)[1] if "/" in repository else repository
        path = (
            f"{self._owner_prefix(creds)}/packages/container/"
            f"{urllib.parse.quote(package, safe='')}/versions"
        )
        tags: list[TagInfo] = []
        async for page in api.pages_by_link(path, {"per_page": "100"}):
            for version in page if isinstance(page, list) else []:
                if not isinstance(version, dict):
                    continue
                container = (version.get("metadata") or {}).get("container") or {}
                pushed = parse_time(version.get("updated_at")) or parse_time(
                    version.get("created_at")
                )
                for tag in container.get("tags") or []:
                    tags.append(TagInfo(tag=tag, digest=version.get("name"), pushed_at=pushed))
        return tags


TYPE = GitHubRegistry()
