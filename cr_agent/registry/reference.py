"""Image references as people write them: ``[registry/]repository[:tag][@digest]``.

Follows the grammar of distribution's ``reference`` package: the first path component is a
registry host when it contains a dot or a colon or is ``localhost``; otherwise the image lives
on Docker Hub, where single names get the ``library/`` namespace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cr_agent.registry.errors import InvalidReference

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"

_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$")
_HOST = re.compile(r"^(?:\[[0-9a-fA-F:.]+\]|[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?)(?::\d+)?$")


@dataclass(frozen=True, slots=True)
class ImageReference:
    registry: str  # host[:port], "docker.io" for Docker Hub
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def reference(self) -> str:
        """What goes in ``/v2/<name>/manifests/<reference>``: the digest wins over the tag."""
        return self.digest or self.tag or "latest"

    @property
    def api_host(self) -> str:
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    @classmethod
    def parse(cls, text: str, *, default_registry: str = DOCKER_HUB) -> ImageReference:
        """Parse ``text``; raises :class:`InvalidReference` saying which part is wrong."""
        raw = text.strip()
        if not raw:
            raise InvalidReference("image reference is empty")
        for prefix in ("docker://", "oci://", "https://", "http://"):
            if raw.startswith(prefix):
                raw = raw[len(prefix) :]
        name, _, digest = raw.partition("@")
        if digest and not _DIGEST.match(digest):
            raise InvalidReference(f"invalid digest {digest!r} in {text!r}")
        tag = None
        last_slash = name.rfind("/")
        colon = name.rfind(":")
        if colon > last_slash:
            name, tag = name[:colon], name[colon + 1 :]
            if not _TAG.match(tag):
                raise InvalidReference(f"invalid tag {tag!r} in {text!r}")
        first, sep, rest = name.partition("/")
        if sep and ("." in first or ":" in first or first == "localhost"):
            registry, repository = first, rest
            if not _HOST.match(registry):
                raise InvalidReference(f"invalid registry host {registry!r} in {text!r}")
        else:
            registry, repository = default_registry, name
        if registry in ("index.docker.io", "registry-1.docker.io"):
            registry = DOCKER_HUB
        if registry == DOCKER_HUB and "/" not in repository:
            repository = f"library/{repository}"
        if not repository:
            raise InvalidReference(f"no repository in {text!r}")
        for component in repository.split("/"):
            if not _COMPONENT.match(component):
                raise InvalidReference(
                    f"invalid repository name {repository!r} in {text!r} "
                    "(lowercase letters, digits and . _ - separators)"
                )
        if len(repository) > 255:
            raise InvalidReference(f"repository name longer than 255 characters in {text!r}")
        return cls(registry, repository, tag if tag or digest else "latest", digest or None)
