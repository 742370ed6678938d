"""``acr``: Azure Container Registry.

Admin-user or service-principal credentials work as Basic credentials against ACR's token
service (the registry client follows the Bearer challenge to ``/oauth2/token``), and with
them ``/v2/_catalog`` lists the whole registry, so nothing else is needed. A repository-scoped
token may not list: the catalog's 401/403 is then reported as "listing not permitted".
"""

from __future__ import annotations

from cr_agent.registry_types.base import RegistryType
from shared.credentials import CredentialsError, RegistryCredentials


class AzureRegistry(RegistryType):
    name = "acr"

    def check(self, creds: RegistryCredentials) -> None:
        super().check(creds)
        if not creds.username or not creds.password:
            raise CredentialsError("username and password are required for type acr")


TYPE = AzureRegistry()
