"""Every failure the API reports, as an HTTP status and a JSON reason naming field or step.

Messages pass the redaction registry before they leave, so an answer can no more carry a
secret than a log line can.
"""

from __future__ import annotations

from cr_agent.image.budget import ImageBudgetExceeded
from cr_agent.registry.errors import (
    AuthenticationError,
    DeadlineExceeded,
    DigestMismatch,
    InvalidReference,
    ListingTooLong,
    ManifestError,
    NotFoundError,
    PermissionDenied,
    RegistryError,
    RegistryUnreachable,
    TlsError,
    UnsupportedManifest,
)
from cr_agent.registry_types import UnknownRegistryType, known_types
from cr_agent.service.models import ErrorDetail
from shared.credentials import CredentialsError
from shared.redaction import SECRETS


class ApiError(Exception):
    """A request-level problem found by the service itself (validation, missing callback)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        step: str | None = None,
        details: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.step = step
        #: extra members of the error body (not scrubbed: no secret may go in here)
        self.details = details or {}


class ImageTooLarge(RegistryError):
    """The image's layers add up to more than ``MAX_IMAGE_SIZE_IN_BYTES``."""


class CredentialsProblem(ApiError):
    """Credentials missing or undecodable; ``field`` says where they were looked for."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(400, "credentials-invalid", message, field=field, step="credentials")


#: exception class -> (HTTP status, code); the first matching class wins
_REGISTRY_ERRORS: tuple[tuple[type[RegistryError], int, str], ...] = (
    (InvalidReference, 400, "invalid-reference"),
    (ImageTooLarge, 413, "image-too-large"),
    (ImageBudgetExceeded, 413, "image-too-large"),
    (AuthenticationError, 401, "credentials-refused"),
    (PermissionDenied, 403, "not-permitted"),
    (NotFoundError, 404, "not-found"),
    (UnsupportedManifest, 422, "unsupported-image"),
    (ManifestError, 502, "invalid-manifest"),
    (DeadlineExceeded, 504, "deadline"),
    (ListingTooLong, 502, "listing-too-long"),
    (TlsError, 502, "tls"),
    (RegistryUnreachable, 502, "registry-unreachable"),
    (DigestMismatch, 502, "registry-error"),
    (RegistryError, 502, "registry-error"),
)


def classify(exc: BaseException) -> tuple[int, ErrorDetail]:
    """HTTP status and error body for ``exc``."""
    if isinstance(exc, ApiError):
        detail = _detail(exc.code, exc.message, field=exc.field, step=exc.step)
        return exc.status, detail.model_copy(update=exc.details) if exc.details else detail
    if isinstance(exc, UnknownRegistryType):
        detail = _detail("unknown-type", str(exc), field="type", step="credentials")
        return 400, detail.model_copy(update={"knownTypes": known_types()})
    if isinstance(exc, CredentialsError):
        return 400, _detail(
            "credentials-invalid", str(exc), field="credentials", step="credentials"
        )
    if isinstance(exc, RegistryError):
        for cls, status, code in _REGISTRY_ERRORS:
            if isinstance(exc, cls):
                field = "image" if isinstance(exc, InvalidReference) else None
                return status, _detail(code, exc.message, step=exc.step, field=field)
    if isinstance(exc, TimeoutError):
        return 504, _detail(
            "timeout", "the registry did not finish answering in time", step="timeout"
        )
    return 500, _detail("internal", f"internal error ({exc.__class__.__name__})")


def _detail(
    code: str, message: str, *, field: str | None = None, step: str | None = None
) -> ErrorDetail:
    return ErrorDetail(code=code, message=SECRETS.scrub(message), field=field, step=step)


#: what /validate-credentials reports as the reason for a failed step
REASONS = {
    "credentials-invalid": "credentials-invalid",
    "unknown-type": "credentials-invalid",
    "credentials-refused": "credentials-refused",
    "not-permitted": "listing-not-permitted",
    "registry-unreachable": "registry-unreachable",
    "tls": "tls",
    "timeout": "registry-unreachable",
    "registry-not-allowed": "registry-not-allowed",
}
