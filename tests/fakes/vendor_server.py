"""Running a vendor fake on 127.0.0.1 and recording what it was asked."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.test_utils import TestServer


@dataclass
class FakeServer:
    app: web.Application
    requests: list[str] = field(default_factory=list)
    server: TestServer | None = None

    async def start(self) -> FakeServer:
        @web.middleware
        async def record(request: web.Request, handler):
            self.requests.append(f"{request.method} {request.path_qs}")
            return await handler(request)

        self.app.middlewares.append(record)
        self.server = TestServer(self.app, host="127.0.0.1")
        await self.server.start_server()
        return self

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}"

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.close()


def page_of(
    items: list,
    request: web.Request,
    *,
    size_param: str,
    page_param: str = "page",
    default: int = 30,
) -> tuple[list, int, bool]:
    size = int(request.query.get(size_param, default))
    page = int(request.query.get(page_param, 1))
    start = (page - 1) * size
    return items[start : start + size], page, start + size < len(items)
