"""Domain errors: what a service refuses, in words the API turns into JSON:API error objects.

Services raise these and know nothing of HTTP; :mod:`control_plane.api.jsonapi` maps each to a
status and names the offending query parameter or JSON pointer.
"""

from __future__ import annotations

from collections.abc import Sequence

#: at most this many faults of one input are listed; a last error says how many more there were
MAX_FAULTS = 20


class DomainError(Exception):
    """Base class; ``detail`` is safe to show to the caller (never holds a secret).

    ``faults`` lists every ``(pointer, detail)`` at fault, in document order: just
    ``(pointer, detail)`` unless made by :meth:`InvalidInput.several`; ``more`` counts the
    faults left out of it beyond :data:`MAX_FAULTS`.
    """

    status = 400
    code = "bad-request"
    title = "Bad request"

    def __init__(self, detail: str, *, parameter: str | None = None, pointer: str | None = None):
        super().__init__(detail)
        self.detail = detail
        self.parameter = parameter
        self.pointer = pointer
        self.faults: tuple[tuple[str | None, str], ...] = ((pointer, detail),)
        self.more = 0

    @property
    def more_detail(self) -> str:
        """What is said of the faults left out (when ``more`` is not 0)."""
        return f"{self.more} more faults not listed (only the first {len(self.faults)} are)"


class InvalidInput(DomainError):
    """A parameter or body member has a value the domain cannot take."""

    @classmethod
    def several(cls, faults: Sequence[tuple[str, str]]) -> InvalidInput:
        """Every ``(pointer, detail)`` of one input at once (``pointer`` / ``detail`` are the
        first's, for callers that show one); the first :data:`MAX_FAULTS` are kept."""
        pointer, detail = faults[0]
        error = cls(detail, pointer=pointer)
        error.faults = tuple(faults[:MAX_FAULTS])
        error.more = len(faults) - len(error.faults)
        return error


class NotFound(DomainError):
    """No such resource, or not in an org the caller may see (the same answer, on purpose)."""

    status = 404
    code = "not-found"
    title = "Not found"

    def __init__(self, kind: str, ident: object):
        super().__init__(f"{kind} {ident} not found")
        self.kind = kind


class Conflict(DomainError):
    status = 409
    code = "conflict"
    title = "Conflict"


class Forbidden(DomainError):
    """The caller is known but may not do this (e.g. an admin-only action)."""

    status = 403
    code = "forbidden"
    title = "Forbidden"


class TooLarge(DomainError):
    """A request body larger than the server takes."""

    status = 413
    code = "too-large"
    title = "Request body too large"
