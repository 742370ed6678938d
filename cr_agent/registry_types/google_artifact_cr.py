"""``google-artifact-cr``: Google Artifact Registry (``<region>-docker.pkg.dev``).

Same authentication as GCR (``_json_key`` + the service-account key); ``registryBase`` is the
regional host, optionally with ``/<project>`` so listing stays within one project.
"""

from __future__ import annotations

from typing import ClassVar

from cr_agent.registry_types.gcr import GoogleContainerRegistry


class GoogleArtifactRegistry(GoogleContainerRegistry):
    name = "google-artifact-cr"
    default_base: ClassVar[str | None] = None


TYPE = GoogleArtifactRegistry()
