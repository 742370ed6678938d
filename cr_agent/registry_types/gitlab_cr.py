"""``gitlab-cr``: GitLab container registry.

Pulls use the username and a personal/deploy token as Basic credentials (the registry client
follows GitLab's JWT challenge). GitLab has no registry-wide catalog; repositories come from
the GitLab API with ``PRIVATE-TOKEN``: ``GET /api/v4/groups/:id/registry/repositories`` when
the credentials name a ``group``, else every project the token is a member of
(``GET /api/v4/projects?membership=true``) and ``GET /api/v4/projects/:id/registry/repositories``.
The API host is ``apiBase``, else the registry host without its ``registry.`` prefix.
"""

from __future__ import annotations

import urllib.parse
from typing import ClassVar

from cr_agent.registry.errors import NotFoundError, PermissionDenied, RegistryError
from cr_agent.registry_types.base import RegistryType, TypeContext, extra_value, normalise_base
from cr_agent.registry_types.vendor_api import VendorApi
from shared.credentials import CredentialsError, RegistryCredentials


class GitLabRegistry(RegistryType):
    name = "gitlab-cr"
    default_base: ClassVar[str | None] = "registry.gitlab.com"
    catalog_first = False

    def check(self, creds: RegistryCredentials) -> None:
        if not creds.password:
            raise CredentialsError("password (an access token) is required for type gitlab-cr")

    def api_base(self, creds: RegistryCredentials) -> str:
        explicit = extra_value(creds, "apiBase")
        if explicit:
            return normalise_base(explicit, field_name="apiBase")
        parts = urllib.parse.urlsplit(self.base_url(creds))
        host = parts.netloc
        if host.startswith("registry."):
            host = host[len("registry.") :]
        return f"{parts.scheme}://{host}"

    def _api(self, creds: RegistryCredentials, ctx: TypeContext) -> VendorApi:
        return VendorApi(
            ctx, self.api_base(creds), {"PRIVATE-TOKEN": creds.password or ""}, vendor="GitLab"
        )

    async def list_repositories_via_api(
        self, creds: RegistryCredentials, ctx: TypeContext, catalog_error: RegistryError | None
    ) -> list[str] | None:
        api = self._api(creds, ctx)
        params = {"per_page": "100"}
        group = extra_value(creds, "group")
        names: list[str] = []
        if group:
            path = f"/api/v4/groups/{urllib.parse.quote(group, safe='')}/registry/repositories"
            async for page in api.pages_by_link(path, params):
                names += _paths(page)
            return names
        async for page in api.pages_by_link(
            "/api/v4/projects", {"membership": "true", "simple": "true", "per_page": "100"}
        ):
            for project in page if isinstance(page, list) else []:
                if not isinstance(project, dict) or "id" not in project:
                    continue
                path = f"/api/v4/projects/{project['id']}/registry/repositories"
                try:
                    async for repos in api.pages_by_link(path, params):
                        names += _paths(repos)
                except (PermissionDenied, NotFoundError):
                    continue  # registry disabled for that project, or not ours to read
        return names


def _paths(page: object) -> list[str]:
    out = []
    for repo in page if isinstance(page, list) else []:
        if isinstance(repo, dict) and isinstance(repo.get("path"), str) and repo["path"]:
            out.append(repo["path"])
    return out


TYPE = GitLabRegistry()
