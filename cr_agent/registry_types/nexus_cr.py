"""``nexus-cr``: Sonatype Nexus Repository, through a Docker connector (port or path).

Nexus's Docker repositories implement ``/v2/_catalog`` with Basic credentials, so only the
distribution API is used.
"""

from __future__ import annotations

from cr_agent.registry_types.base import RegistryType


class NexusRegistry(RegistryType):
    name = "nexus-cr"


TYPE = NexusRegistry()
