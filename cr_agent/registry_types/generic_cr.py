"""``generic-cr``: any registry that implements the OCI distribution API (CNCF registry, zot,
a plain Nexus or Artifactory port). Basic credentials or none; listing through the catalog."""

from __future__ import annotations

from cr_agent.registry_types.base import RegistryType


class GenericRegistry(RegistryType):
    name = "generic-cr"


TYPE = GenericRegistry()
