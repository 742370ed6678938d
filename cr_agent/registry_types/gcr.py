"""``gcr``: Google Container Registry.

Google's registries take a service-account key as Basic credentials with the fixed username
``_json_key`` (or ``_json_key_base64`` for a base64 key, ``oauth2accesstoken`` for an access
token); the catalog lists every repository of the project the key may read.
"""

from __future__ import annotations

from typing import ClassVar

from cr_agent.registry_types.base import RegistryType
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


TYPE = GoogleContainerRegistry()
