"""The OpenAPI 3 document of the agent, generated from the route table and the models.

``python -m cr_agent.service.openapi > docs/openapi.json`` rewrites the committed copy; a
test checks that the served ``/openapi.json`` equals it and that every route is in it.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from cr_agent.service import models as m

VERSION = "1.0.0"
REF = "#/components/schemas/{model}"


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # OpenAPI form: /list/{repository}
    summary: str
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    responses: dict[int, tuple[str, Any]] = field(default_factory=dict)
    path_params: dict[str, str] = field(default_factory=dict)
    credentials: bool = True
    #: needs the X-Crbroker-Agent-Secret header (CR_AGENT_SECRET)
    secret: bool = True
    broker: bool = True  # reachable through the broker's accept filter
    callbacks: bool = False


_INTERNAL = (
    "internal error: the answer names the exception class, the agent's log has the traceback"
)
_CREDS_ERRORS: dict[int, tuple[str, type[BaseModel] | None]] = {
    500: (_INTERNAL, m.ErrorResponse),
    400: ("invalid request or credentials (the body names the field)", m.ErrorResponse),
    401: ("the registry refused the credentials", m.ErrorResponse),
    403: (
        "the registry does not permit this, or it is not in CR_ALLOWED_REGISTRIES "
        "(code registry-not-allowed)",
        m.ErrorResponse,
    ),
    502: (
        "registry unreachable, TLS failure or registry error (the body names the step)",
        m.ErrorResponse,
    ),
    504: ("the registry did not answer in time", m.ErrorResponse),
}
#: a failed check still answers with the steps, so every status carries ValidateResponse
_VALIDATE: dict[int, tuple[str, Any]] = {
    200: ("every step passed", m.ValidateResponse),
    400: (
        "credentials missing, undecodable or of an unknown type (ValidateResponse), or an "
        "unknown query parameter (ErrorResponse)",
        (m.ValidateResponse, m.ErrorResponse),
    ),
    401: ("the registry refused the credentials", m.ValidateResponse),
    403: (
        "listing not permitted, or the registry is not in CR_ALLOWED_REGISTRIES",
        m.ValidateResponse,
    ),
    500: (_INTERNAL, m.ValidateResponse),
    502: ("registry unreachable, TLS failure or registry error", m.ValidateResponse),
    504: ("the registry did not answer in time", m.ValidateResponse),
}
_SUBMIT: dict[int, tuple[str, Any]] = {
    202: ("accepted; results follow through the callbacks", m.ScanAccepted),
    400: (
        "invalid request or credentials (the body names the field); a callbackUrl other than "
        "the agent's BROKER_CLIENT_URL; a requestId, context or image of the wrong shape",
        m.ErrorResponse,
    ),
    403: ("the registry is not in CR_ALLOWED_REGISTRIES", m.ErrorResponse),
    413: ("body too large", m.ErrorResponse),
    500: (_INTERNAL, m.ErrorResponse),
    503: ("too many images waiting (MAX_QUEUED_IMAGES); send again later", m.ErrorResponse),
}
_REPO = {"repository": "repository name; may contain slashes (the route is /<prefix>/*)"}
#: a listing is read whole or not answered: past a bound, a 502 naming it, never a silent cut
_LISTING_ERRORS: dict[int, tuple[str, Any]] = {
    **_CREDS_ERRORS,
    502: (
        "registry unreachable, TLS failure or registry error (the body names the step); or "
        "code listing-too-long: the registry's list passed LISTING_MAX_PAGES, "
        "LISTING_MAX_ENTRIES or LISTING_MAX_BYTES (the message names which), so nothing is "
        "answered rather than an incomplete list",
        m.ErrorResponse,
    ),
}

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "get",
        "/healthcheck",
        "Liveness",
        responses={200: ("alive", m.HealthResponse)},
        credentials=False,
        secret=False,
    ),
    Operation(
        "get",
        "/systemcheck",
        "Round trip to the registry: authenticate and list (same as /validate-credentials)",
        query=m.NoQuery,
        responses=_VALIDATE,
        broker=False,
    ),
    Operation(
        "get",
        "/validate-credentials",
        "Authenticate and list; the answer names the failing step",
        query=m.NoQuery,
        responses=_VALIDATE,
    ),
    Operation(
        "get",
        "/list",
        "Repositories in the registry",
        query=m.NoQuery,
        responses={200: ("repositories", m.RepositoriesResponse), **_LISTING_ERRORS},
    ),
    Operation(
        "get",
        "/list/{repository}",
        "Tags of a repository",
        query=m.NoQuery,
        path_params=_REPO,
        responses={
            200: ("tags", m.TagsResponse),
            404: ("no such repository", m.ErrorResponse),
            **_LISTING_ERRORS,
        },
    ),
    Operation(
        "get",
        "/list-paginated/{repository}",
        "One page of repositories (empty repository) or of a repository's tags",
        query=m.PageQuery,
        path_params={"repository": "repository whose tags to page through; empty for repositories"},
        responses={200: ("a page", m.PageResponse), **_LISTING_ERRORS},
    ),
    Operation(
        "get",
        "/list-with-metadata/{repository}",
        "Tags with digest and push time",
        query=m.TagMetadataQuery,
        path_params=_REPO,
        responses={200: ("tags", m.TagsWithMetadataResponse), **_LISTING_ERRORS},
    ),
    Operation(
        "get",
        "/image-metadata/{image}",
        "Manifest, config and layers of one image",
        query=m.PlatformQuery,
        path_params={
            "image": "<repository>/<tag-or-digest>, <repository>:<tag> or <repository>@<digest>"
        },
        responses={
            200: ("metadata", m.ImageMetadataResponse),
            404: ("no such image", m.ErrorResponse),
            **_CREDS_ERRORS,
        },
    ),
    Operation(
        "get",
        "/get-state-identifier",
        "Identifier that changes when the image content changes",
        query=m.StateQuery,
        responses={
            200: ("state", m.StateIdentifierResponse),
            404: ("no such image", m.ErrorResponse),
            **_CREDS_ERRORS,
        },
    ),
    Operation(
        "post",
        "/scan",
        "Scan images; results go to <callback>/api/v2/import/result, the end to .../done",
        body=m.ScanRequest,
        responses=_SUBMIT,
        callbacks=True,
    ),
    Operation(
        "post",
        "/discover",
        "Scan images (v1); results go to <callback>/api/v1/recurring-tests/dependencies",
        body=m.ScanRequest,
        responses=_SUBMIT,
        callbacks=True,
    ),
    Operation(
        "get",
        "/scan/{jobId}",
        "Status of a scan job (local operators; not in the broker's accept filter)",
        query=m.NoQuery,
        path_params={"jobId": "the jobId /scan answered"},
        responses={200: ("job", m.JobStatus), 404: ("unknown job", m.ErrorResponse)},
        credentials=False,
        broker=False,
    ),
    Operation(
        "get",
        "/metrics",
        "Prometheus metrics (local operators; not in the broker's accept filter)",
        responses={200: ("Prometheus text exposition format", "text/plain")},
        credentials=False,
        secret=False,
        broker=False,
    ),
    Operation(
        "get",
        "/openapi.json",
        "This document",
        responses={200: ("OpenAPI 3 document", None)},
        credentials=False,
        secret=False,
        broker=False,
    ),
)

_EXTRA_SCHEMAS: tuple[type[BaseModel], ...] = (m.ResultCallback, m.DoneCallback)
_NO_SECRET = "X-Crbroker-Agent-Secret missing or wrong (code unauthenticated)"


def _responses(op: Operation) -> dict[int, tuple[str, Any]]:
    """The operation's answers, with the agent's own 401 merged in where it needs the secret."""
    responses = dict(op.responses)
    if not op.secret:
        return responses
    if 401 not in responses:
        responses[401] = (_NO_SECRET, m.ErrorResponse)
        return responses
    desc, model = responses[401]
    models = model if isinstance(model, tuple) else (model,)
    if m.ErrorResponse not in models:
        models = (*models, m.ErrorResponse)
    responses[401] = (f"{desc}; or {_NO_SECRET}", models if len(models) > 1 else models[0])
    return responses


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    out = []
    for name, prop in schema.get("properties", {}).items():
        desc = prop.pop("description", None)
        prop.pop("title", None)
        param: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": prop,
        }
        if desc:
            param["description"] = desc
        out.append(param)
    return out


def build_document() -> dict[str, Any]:
    models: set[type[BaseModel]] = set(_EXTRA_SCHEMAS)
    for op in OPERATIONS:
        if op.body is not None:
            models.add(op.body)
        for _, model in _responses(op).values():
            if isinstance(model, tuple):
                models.update(model)
            elif isinstance(model, type):
                models.add(model)
    ordered = sorted(models, key=lambda cls: cls.__name__)
    _, defs = models_json_schema([(cls, "validation") for cls in ordered], ref_template=REF)
    schemas = dict(sorted(defs.get("$defs", {}).items()))

    paths: dict[str, Any] = {}
    for op in OPERATIONS:
        entry: dict[str, Any] = {
            "summary": op.summary,
            "operationId": op.method + op.path.replace("/", "_").replace("{", "").replace("}", ""),
            "x-broker-accept-filter": op.broker,
        }
        params: list[dict[str, Any]] = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "string"},
                "description": desc,
            }
            for name, desc in op.path_params.items()
        ]
        if op.query is not None:
            params += _query_parameters(op.query)
        if params:
            entry["parameters"] = params
        required = {"agentSecret": op.secret, "crCredentials": op.credentials}
        if any(required.values()):
            entry["security"] = [{name: [] for name, on in required.items() if on}]
        if op.body is not None:
            entry["requestBody"] = {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": REF.format(model=op.body.__name__)}}
                },
            }
        responses: dict[str, Any] = {}
        for status, (desc, model) in sorted(_responses(op).items()):
            resp: dict[str, Any] = {"description": desc}
            if model == "text/plain":
                resp["content"] = {"text/plain": {"schema": {"type": "string"}}}
            elif isinstance(model, tuple):
                refs = [{"$ref": REF.format(model=one.__name__)} for one in model]
                resp["content"] = {"application/json": {"schema": {"anyOf": refs}}}
            elif model is not None:
                resp["content"] = {
                    "application/json": {"schema": {"$ref": REF.format(model=model.__name__)}}
                }
            else:
                resp["content"] = {"application/json": {"schema": {"type": "object"}}}
            responses[str(status)] = resp
        entry["responses"] = responses
        if op.callbacks:
            entry["callbacks"] = _callbacks()
        paths.setdefault(op.path, {})[op.method] = entry

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "crbroker container registry agent",
            "version": VERSION,
            "description": (
                "The agent behind the broker client (CR_AGENT_URL). Registry credentials come "
                "with each request: the base64 CR_CREDENTIALS blob in the Authorization header "
                "(optionally prefixed 'Basic ' or 'Bearer '), or the 'credentials' field of a "
                "JSON body. The blob decodes to {type, username, password, registryBase} or, "
                "for ecr, {type, roleArn, extra: {region, externalId}}. Optional fields: "
                "'apiBase' (the vendor API for docker-hub, github-cr, gitlab-cr, "
                "digitalocean-cr, harbor-cr, quay-cr, google-artifact-cr), 'namespace'/"
                "'organization'/'group'/'registryName'/'location' (what the vendor listing "
                "covers); for gcr and google-artifact-cr a path in registryBase is a listing "
                "scope (project[/repository]); for ecr a 'registryBase' overrides the token's "
                "proxyEndpoint. registryBase may carry a scheme; plain http:// is used only "
                "when written. Unknown request fields are rejected. Errors are "
                "{error: {code, message, field, step}}; a job's results go to "
                "<BROKER_CLIENT_URL><callbackApiPrefix>/v2/import/result and its end to "
                ".../done (a request's callbackUrl must be that URL, unless the agent runs with "
                "CR_AGENT_ALLOW_REQUEST_CALLBACK_URL=true). Every route but /healthcheck, "
                "/metrics and /openapi.json needs the X-Crbroker-Agent-Secret header "
                "(CR_AGENT_SECRET). "
                "Every answer carries X-Request-Id (the caller's, if it sent a sane one)."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "agentSecret": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Crbroker-Agent-Secret",
                    "description": "the shared secret CR_AGENT_SECRET (broker client and agent); "
                    "every route but /healthcheck, /metrics and /openapi.json needs it unless "
                    "the agent runs with CR_AGENT_AUTH=disabled",
                },
                "crCredentials": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "base64 CR_CREDENTIALS blob",
                },
            },
        },
    }


def _callbacks() -> dict[str, Any]:
    def post(model: type[BaseModel], desc: str) -> dict[str, Any]:
        return {
            "post": {
                "description": desc,
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": True,
                        "schema": {"type": "string"},
                        "description": "the same for every retry of one body",
                    }
                ],
                "requestBody": {
                    "content": {
                        "application/json": {"schema": {"$ref": REF.format(model=model.__name__)}}
                    }
                },
                "responses": {"200": {"description": "received (409: already received)"}},
            }
        }

    return {
        "result": {
            "{$request.body#/callbackUrl}{$request.body#/callbackApiPrefix}/v2/import/result": post(
                m.ResultCallback, "one per image (several if split to stay under 10 MB)"
            )
        },
        "done": {
            "{$request.body#/callbackUrl}{$request.body#/callbackApiPrefix}/v2/import/done": post(
                m.DoneCallback, "once per /scan job, after its results"
            )
        },
    }


def document_text() -> str:
    return json.dumps(build_document(), indent=2, sort_keys=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(document_text())
