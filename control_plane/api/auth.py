"""Who is asking: ``Authorization: token <t>`` (Snyk's API token form; ``Bearer`` accepted)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.accounts.services import Principal, authenticate


class Unauthorized(Exception):
    """401; the detail never repeats the token."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


async def principal_from_header(session: AsyncSession, header: str | None) -> Principal:
    if not header:
        raise Unauthorized(
            "the Authorization header is missing; send 'Authorization: token <API token>'"
        )
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() not in ("token", "bearer") or not value.strip():
        raise Unauthorized("the Authorization header must be 'token <API token>'")
    principal = await authenticate(session, value.strip())
    if principal is None:
        raise Unauthorized("the API token is not valid (unknown or revoked)")
    return principal
