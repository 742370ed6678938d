"""An HTTP client for the control plane's API that checks every answer against the OpenAPI
document the API serves (``docs/control-plane-openapi.json``)."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from aiohttp import ClientSession
from openapi_core import OpenAPI
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound
from openapi_core.testing import MockRequest, MockResponse
from openapi_schema_validator import OAS30Validator

from control_plane.db import Database

SPEC_PATH = Path(__file__).parents[2] / "docs" / "control-plane-openapi.json"
VERSION = "2024-05-31"


@functools.cache
def spec() -> OpenAPI:
    return OpenAPI.from_file_path(str(SPEC_PATH))


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    content_type: str

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def error(self) -> dict[str, Any]:
        """The one JSON:API error object of an error answer."""
        errors = self.json["errors"]
        assert len(errors) == 1, errors
        error: dict[str, Any] = errors[0]
        return error


@dataclass
class ApiClient:
    http: ClientSession
    base: str
    db: Database
    token: str | None = None
    seen: list[Answer] = field(default_factory=list)

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        body: Any = None,
        raw: bytes | None = None,
        content_type: str = "application/vnd.api+json",
        version: str | None = VERSION,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        """``path`` may carry a query string; ``version`` is added unless it is None."""
        if version is not None and path.startswith("/rest") and "version=" not in path:
            path += ("&" if "?" in path else "?") + f"version={version}"
        sent = {"Authorization": f"token {token or self.token}"} if (token or self.token) else {}
        sent |= headers or {}
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is not None:
            sent["Content-Type"] = content_type
        async with self.http.request(method, self.base + path, data=data, headers=sent) as resp:
            answer = Answer(resp.status, dict(resp.headers), await resp.read(), resp.content_type)
        self.check(method, path, answer, data, sent.get("Content-Type", "application/json"))
        self.seen.append(answer)
        return answer

    def check(
        self, method: str, path: str, answer: Answer, data: bytes | None, content_type: str
    ) -> None:
        """The answer matches the OpenAPI document (status, headers, body schema)."""
        parts = urlsplit(path)
        args: dict[str, Any] = {}
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            args.setdefault(key, value)
        request = MockRequest(
            "http://localhost",
            method.lower(),
            parts.path,
            args=args,
            data=data,
            content_type=content_type,
        )
        response = MockResponse(
            answer.body,
            status_code=answer.status,
            headers=answer.headers,
            content_type=answer.content_type,
        )
        try:
            spec().validate_response(request, response)
        except (PathNotFound, OperationNotFound):
            # a route the API does not have: the answer must still be an error document, in
            # JSON:API's shape under /rest and Snyk v1's under /v1
            document = json.loads(SPEC_PATH.read_text())
            name = "V1Error" if parts.path.startswith("/v1/") else "ErrorDocument"
            schema = {
                "$ref": f"#/components/schemas/{name}",
                "components": document["components"],
            }
            assert answer.status >= 400
            OAS30Validator(schema).validate(answer.json)

    async def get(self, path: str, **kw: Any) -> Answer:
        return await self.call("GET", path, **kw)
