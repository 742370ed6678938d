"""OCI distribution API client: references, auth, manifests, listing, blob streaming."""

from cr_agent.registry.auth import RegistryAuth
from cr_agent.registry.client import ManifestHead, PingResult, RegistryClient, ResolvedImage
from cr_agent.registry.errors import (
    AuthenticationError,
    DigestMismatch,
    ManifestError,
    NotFoundError,
    PermissionDenied,
    RegistryError,
    RegistryUnreachable,
    TlsError,
    UnsupportedManifest,
)
from cr_agent.registry.manifest import Platform
from cr_agent.registry.reference import ImageReference

__all__ = [
    "AuthenticationError",
    "DigestMismatch",
    "ImageReference",
    "ManifestError",
    "ManifestHead",
    "NotFoundError",
    "PermissionDenied",
    "PingResult",
    "Platform",
    "RegistryAuth",
    "RegistryClient",
    "RegistryError",
    "RegistryUnreachable",
    "ResolvedImage",
    "TlsError",
    "UnsupportedManifest",
]
