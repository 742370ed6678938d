"""Turning an HTTP request into validated input: query, JSON body, registry credentials.

Validation errors become 400 answers naming the fields (unknown ones included). Credentials
come from the ``Authorization`` header or a body field; every form of them is registered
with the redaction registry the moment it is seen, before anything can log it.
"""

from __future__ import annotations

from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from cr_agent.registry import json_depth
from cr_agent.registry_types import RegistryType, registry_type
from cr_agent.service.errors import ApiError, CredentialsProblem
from shared.credentials import CredentialsError, RegistryCredentials, decode_credentials
from shared.logging import register_secrets

M = TypeVar("M", bound=BaseModel)

#: bodies are small (a list of images); anything bigger is a mistake or an attack
MAX_BODY_BYTES = 1024 * 1024


def describe_validation(exc: ValidationError, where: str) -> tuple[str, str]:
    """(field, message) for the first problems, unknown fields listed together."""
    unknown = [
        ".".join(str(p) for p in e["loc"]) for e in exc.errors() if e["type"] == "extra_forbidden"
    ]
    if unknown:
        return unknown[0], f"unknown {where} field(s): {', '.join(unknown)}"
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or where
    return field, f"{where} field {field}: {first['msg']}"


def parse_query(request: web.Request, model: type[M]) -> M:
    repeated = [k for k in set(request.query.keys()) if len(request.query.getall(k)) > 1]
    if repeated:
        raise ApiError(
            400,
            "invalid-request",
            f"query parameter {repeated[0]} given more than once",
            field=repeated[0],
        )
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        field, message = describe_validation(exc, "query")
        raise ApiError(400, "invalid-request", message, field=field) from None


async def parse_body(request: web.Request, model: type[M]) -> tuple[M, dict[str, Any]]:
    """The validated model and the raw object (for fields the model keeps out of logs)."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise ApiError(
            413, "invalid-request", f"body larger than {MAX_BODY_BYTES} bytes", field="body"
        )
    try:
        raw = await request.read()  # bounded by the app's client_max_size
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(
            413, "invalid-request", f"body larger than {MAX_BODY_BYTES} bytes", field="body"
        ) from None
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(
            413, "invalid-request", f"body larger than {MAX_BODY_BYTES} bytes", field="body"
        )
    try:
        obj = json_depth.loads(raw or b"null")
    except json_depth.JsonTooDeep as exc:
        raise ApiError(400, "invalid-request", f"body: {exc}", field="body") from None
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid-request", "body is not valid JSON", field="body") from None
    if not isinstance(obj, dict):
        raise ApiError(400, "invalid-request", "body must be a JSON object", field="body")
    secret = obj.get("credentials")
    if isinstance(secret, str):
        register_secrets(secret, secret.strip())
    try:
        return model.model_validate(obj), obj
    except ValidationError as exc:
        field, message = describe_validation(exc, "body")
        raise ApiError(400, "invalid-request", message, field=field) from None


def request_credentials(
    request: web.Request, body_value: str | None = None
) -> tuple[RegistryCredentials, RegistryType]:
    """Decode the credential blob (body field first, then ``Authorization``) and its type."""
    if body_value:
        blob, field = body_value, "credentials"
    else:
        blob, field = request.headers.get("Authorization", ""), "Authorization"
    register_secrets(blob, blob.strip(), *blob.split(None, 1)[1:])
    if not blob.strip():
        raise CredentialsProblem(
            "no registry credentials: send the base64 CR_CREDENTIALS blob in the Authorization "
            "header (or the 'credentials' field of a JSON body)",
            "Authorization",
        )
    if "${" in blob:
        # the broker client was meant to replace ${CR_CREDENTIALS} and did not
        raise CredentialsProblem(
            f"{field} still holds a ${{...}} placeholder: the broker client did not substitute "
            "it (x-broker-var-sub / BROKER_VAR_SUB, or substitution disabled)",
            field,
        )
    try:
        creds = decode_credentials(blob)
    except CredentialsError as exc:
        raise CredentialsProblem(f"{field}: {exc}", field) from None
    register_secrets(*creds.secret_values())
    kind = registry_type(creds.type)
    try:
        kind.check(creds)
    except CredentialsError as exc:
        raise CredentialsProblem(f"{field}: {exc}", field) from None
    return creds, kind
