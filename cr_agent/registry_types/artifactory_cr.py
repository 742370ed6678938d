"""``artifactory-cr``: JFrog Artifactory.

With the "repository path" access method the Docker API lives under
``host/artifactory/api/docker/<repo>``; that whole path is ``registryBase`` and the registry
client puts ``/v2/...`` after it, so catalog, tags and pulls all work unchanged. With the
subdomain or port methods ``registryBase`` is a plain host.
"""

from __future__ import annotations

from cr_agent.registry_types.base import RegistryType


class ArtifactoryRegistry(RegistryType):
    name = "artifactory-cr"


TYPE = ArtifactoryRegistry()
