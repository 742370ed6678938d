"""Registry types (``CR_TYPE``) as plug-ins: one module each, one registration line each.

To add a type: write ``cr_agent/registry_types/<name>.py`` with a :class:`RegistryType`
subclass exported as ``TYPE``, and add one line to ``_MODULES`` below.
"""

from __future__ import annotations

import importlib

from cr_agent.registry_types.base import RegistryType

_MODULES = (
    "acr",
    "artifactory_cr",
    "digitalocean_cr",
    "docker_hub",
    "ecr",
    "gcr",
    "generic_cr",
    "github_cr",
    "gitlab_cr",
    "google_artifact_cr",
    "harbor_cr",
    "nexus_cr",
    "quay_cr",
)


class UnknownRegistryType(ValueError):
    """A ``type`` no plug-in handles; the message lists the known ones."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"unknown registry type {name!r}; known types: {', '.join(known_types())}")


def _load() -> dict[str, RegistryType]:
    types: dict[str, RegistryType] = {}
    for module in _MODULES:
        plugin = importlib.import_module(f"{__name__}.{module}").TYPE
        types[plugin.name] = plugin
    return types


REGISTRY_TYPES: dict[str, RegistryType] = _load()


def known_types() -> list[str]:
    """The plug-ins' names; ``shared.credentials.KNOWN_TYPES`` is pinned to these by a test."""
    return sorted(REGISTRY_TYPES)


def registry_type(name: str) -> RegistryType:
    """The plug-in for ``name``; raises :class:`UnknownRegistryType` listing the known ones."""
    try:
        return REGISTRY_TYPES[name]
    except KeyError:
        raise UnknownRegistryType(name) from None


__all__ = ["REGISTRY_TYPES", "RegistryType", "UnknownRegistryType", "known_types", "registry_type"]
