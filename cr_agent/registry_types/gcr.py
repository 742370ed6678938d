"""``gcr``: Google Container Registry.

Google's registries take a service-account key as Basic credentials with the fixed username
``_json_key`` (or ``_json_key_base64`` for a base64 key, ``oauth2accesstoken`` for an access
token); the catalog lists every repository the key may read. Repositories live under
``/v2/<project>/...`` of the host, so a path in ``registryBase`` (``gcr.io/my-project``) is a
listing scope, not a URL prefix: the registry is the host, and listing keeps the
repositories under that path.
"""

from __future__ import annotations

import urllib.parse
from typing import ClassVar

from cr_agent.registry.client import RegistryClient
from cr_agent.registry_types.base import RegistryType, TypeContext, normalise_base
from shared.credentials import CredentialsError, RegistryCredentials

GOOGLE_USERNAMES = ("_json_key", "_json_key_base64", "oauth2accesstoken")


class GoogleContainerRegistry(RegistryType):
    name = "gcr"
    default_base: ClassVar[str | None] = "gcr.io"

    def check(self, creds: RegistryCredentials) -> None:
        super().check(creds)
        if creds.username not in GOOGLE_USERNAMES:
            raise CredentialsError(
                f"username must be one of {', '.join(GOOGLE_USERNAMES)} for type {self.name}"
            )
        if not creds.password:
            raise CredentialsError(f"password (the JSON key) is required for type {self.name}")

    def _split(self, creds: RegistryCredentials) -> tuple[str, str]:
        full = normalise_base(creds.registryBase or self.default_base or "")
        parts = urllib.parse.urlsplit(full)
        return f"{parts.scheme}://{parts.netloc}", parts.path.strip("/")

    def base_url(self, creds: RegistryCredentials) -> str:
        return self._split(creds)[0]

    def scope(self, creds: RegistryCredentials) -> str:
        """``project`` or ``project/repository`` from ``registryBase``; "" for the whole host."""
        return self._split(creds)[1]

    async def list_repositories(
        self, creds: RegistryCredentials, ctx: TypeContext, client: RegistryClient
    ) -> list[str]:
        names = await super().list_repositories(creds, ctx, client)
        scope = self.scope(creds)
        return [n for n in names if not scope or n == scope or n.startswith(scope + "/")]


TYPE = GoogleContainerRegistry()
