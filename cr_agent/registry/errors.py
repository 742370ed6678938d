"""What can go wrong talking to a registry, one exception type per thing the caller acts on.

Every error carries the ``step`` that failed ("ping", "token", "catalog", "tags", "manifest",
"blob", "config") and the HTTP ``status`` when there was one, so the agent can report
"listing not permitted" differently from "wrong password" or "registry unreachable".
"""

from __future__ import annotations


class RegistryError(Exception):
    """Base class; ``str(error)`` is a message for humans naming what is wrong."""

    def __init__(self, message: str, step: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.step = step
        self.status = status

    def __str__(self) -> str:
        return self.message


class AuthenticationError(RegistryError):
    """The registry (or its token realm) refused the credentials, or none were given."""


class RegistryUnreachable(RegistryError):
    """Connection refused, DNS failure, timeout, or retries exhausted on 5xx/429."""


class TlsError(RegistryError):
    """Certificate verification failed (use a CA bundle, or the explicit insecure switch)."""


class PermissionDenied(RegistryError):
    """Authenticated, but not allowed (e.g. ``_catalog`` needs more privilege)."""


class NotFoundError(RegistryError):
    """Repository, tag, manifest or blob does not exist."""


class UnsupportedManifest(RegistryError):
    """Schema1, a non-image artifact, or no manifest for the requested platform."""


class DigestMismatch(RegistryError):
    """Content did not hash to the digest it was asked for, or its size was wrong."""


class DeadlineExceeded(RegistryError):
    """A layer or a whole scan took longer than its overall deadline (a dripping registry);
    the message names the layer digest and the step that was running."""


class ListingTooLong(RegistryError):
    """A catalog or tag list passed LISTING_MAX_PAGES, _ENTRIES or _BYTES; nothing is answered."""


class InvalidReference(RegistryError, ValueError):
    """An image reference that cannot be parsed."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "reference")


class ManifestError(RegistryError):
    """A manifest or config that is not valid JSON or lacks required fields."""
