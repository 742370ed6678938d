"""What the agent echoes upstream must not carry the customer's secrets back out.

A ``/scan`` body's ``requestId``, ``context``, ``images`` and ``callbackUrl`` come back to the
upstream in every callback (body and, for ``callbackUrl``, the address). The broker client
substitutes ``${VAR}`` placeholders in bodies, so an upstream that writes ``${CR_PASSWORD}``
into ``requestId`` would read the password back. :mod:`cr_agent.service.models` bounds their
shape; this module refuses any of them that contains a secret the agent holds for the request
(the credential blob, the registry password, the ECR role and external id) or its own
``CR_AGENT_SECRET``. The refusal names the field, never the value.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from cr_agent.service.errors import ApiError
from cr_agent.service.models import ScanRequest
from shared.credentials import RegistryCredentials

#: shorter values would match by chance (a 3-letter password inside an image name)
MIN_LENGTH = 8


def request_secrets(
    creds: RegistryCredentials, blobs: Iterable[str | None], agent_secret: str | None
) -> list[str]:
    """The values of this request no echoed field may contain."""
    values: list[str | None] = [creds.password, creds.roleArn, agent_secret]
    if creds.extra is not None:
        values.append(creds.extra.externalId)
    for blob in blobs:
        values += (blob or "").split()  # "Basic <blob>" and the bare blob
    return [v for v in values if v and len(v) >= MIN_LENGTH]


def _echoed(request: ScanRequest) -> Iterator[tuple[str, str]]:
    if request.requestId:
        yield "requestId", request.requestId
    for key, value in (request.context or {}).items():
        yield f"context.{key}", f"{key}={value}"
    for index, image in enumerate(request.images):
        yield f"images[{index}]", image
    if request.callbackUrl:
        yield "callbackUrl", request.callbackUrl


def check_echoed(request: ScanRequest, secrets: Iterable[str]) -> None:
    """400 naming the first echoed field that holds one of ``secrets``."""
    values = list(secrets)
    for field, text in _echoed(request):
        if any(secret in text for secret in values):
            raise ApiError(
                400,
                "invalid-request",
                f"{field} contains a credential or secret of this request; it would be echoed "
                "upstream, so the request is refused (was a ${...} placeholder substituted?)",
                field=field,
            )
