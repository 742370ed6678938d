"""A vendor listing API whose pages never end, or whose answer is huge, stops at the listing
limits with an error naming them, instead of a silent cut at some page."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from cr_agent.registry.errors import ListingTooLong
from cr_agent.registry.pagination import ListingLimits
from cr_agent.registry_types.base import TypeContext
from cr_agent.registry_types.vendor_api import VendorApi


@pytest.fixture
async def endless_api() -> AsyncIterator[tuple[str, list[str]]]:
    asked: list[str] = []

    async def link_pages(request: web.Request) -> web.Response:
        asked.append(request.path_qs)
        page = int(request.query.get("page", "0"))
        nxt = f"http://127.0.0.1:{request.url.port}/link?page={page + 1}"
        return web.json_response([f"r{page}"], headers={"Link": f'<{nxt}>; rel="next"'})

    async def next_field(request: web.Request) -> web.Response:
        asked.append(request.path_qs)
        page = int(request.query.get("page", "0"))
        nxt = f"http://127.0.0.1:{request.url.port}/field?page={page + 1}"
        return web.json_response({"results": [f"r{page}"], "next": nxt})

    async def huge(request: web.Request) -> web.Response:
        asked.append(request.path_qs)
        return web.json_response({"results": ["x" * 1000] * 2000})

    app = web.Application()
    app.router.add_get("/link", link_pages)
    app.router.add_get("/field", next_field)
    app.router.add_get("/huge", huge)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield f"http://127.0.0.1:{server.port}", asked
    await server.close()


async def test_endless_vendor_pages_and_huge_answers_stop_at_the_limits(
    endless_api: tuple[str, list[str]],
) -> None:
    base, asked = endless_api
    async with aiohttp.ClientSession() as http:
        ctx = TypeContext(
            http=http, timeout=5, listing=ListingLimits(max_pages=5, max_bytes=1 << 20)
        )
        api = VendorApi(ctx, base, {}, vendor="Example")
        with pytest.raises(ListingTooLong, match="LISTING_MAX_PAGES=5"):
            _ = [page async for page in api.pages_by_link("/link")]
        assert len(asked) == 5
        with pytest.raises(ListingTooLong, match="LISTING_MAX_PAGES=5"):
            _ = [page async for page in api.pages_by_next_field("/field")]
        assert len(asked) == 10
        with pytest.raises(ListingTooLong, match="LISTING_MAX_BYTES=1048576"):
            await api.get_json("/huge")
