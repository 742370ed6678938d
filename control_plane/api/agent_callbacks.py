"""The agents' callbacks, received as the broker server's upstream (Snyk's "API" paths).

``/api/v2/import/result`` (and the api-host form ``/v2/import/result``, and the v1
``/api/v1/recurring-tests/dependencies``) carry one scan result; ``/api/v2/import/done`` ends
a job. Each handler reads the body, calls one domain function and renders its answer. No
token: a callback proves itself with the ticket the control plane put in the scan request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_plane.encryption import SecretBox
from control_plane.results import services as results

RESULT_PATHS = (
    "/api/v2/import/result",
    "/v2/import/result",
    "/api/v1/recurring-tests/dependencies",
    "/v1/recurring-tests/dependencies",
)
DONE_PATHS = ("/api/v2/import/done", "/v2/import/done")

Ingest = Callable[[async_sessionmaker[AsyncSession], SecretBox, bytes], Awaitable[results.Outcome]]


def _handler(
    ingest: Ingest, sessions: async_sessionmaker[AsyncSession], box: SecretBox
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            # the answer the agent reads is JSON, like every other refusal of a callback
            limit = request.client_max_size
            message = f"the body is larger than this control plane takes ({limit} bytes)"
            return web.json_response({"code": "too-large", "message": message}, status=413)
        outcome = await ingest(sessions, box, raw)
        return web.json_response(outcome.body, status=outcome.status)

    return handle


def add_routes(
    app: web.Application, sessions: async_sessionmaker[AsyncSession], box: SecretBox
) -> None:
    for path in RESULT_PATHS:
        app.router.add_post(path, _handler(results.ingest_result, sessions, box))
    for path in DONE_PATHS:
        app.router.add_post(path, _handler(results.ingest_done, sessions, box))
