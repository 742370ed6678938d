"""Names a hostile or broken agent lists: what cannot be stored is passed over and said once,
the rest of the listing goes on (the console's "Update images list" and the sync's lister)."""

from __future__ import annotations

from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import aiohttp
import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestServer

from control_plane.encryption import SecretBox
from control_plane.integrations.registry_agent import RegistryAgent
from control_plane.listed_names import listed_digest, name_fault
from control_plane.queue.dispatch import AgentBase
from control_plane.server_settings import ServerSettings
from control_plane.sync.listing import Lister

GOOD_DIGEST = "sha256:" + "a" * 64
LONG = "r" * 501

#: what the hostile agent lists: the good names among everything else
REPOSITORIES: list[Any] = ["app", "nul\x00repo", LONG, "", 7, {"a": 1}, None, "lib/base"]
TAGS: dict[str, list[Any]] = {
    "app": ["1.0", "bad\x00tag", "t" * 301, "", 3, ["x"], "2.0"],
    "lib/base": ["latest"],
}
DIGESTS = {"1.0": GOOD_DIGEST, "2.0": "sha256:" + "b" * 200, "latest": {"not": "a digest"}}


@pytest.fixture
async def hostile_agent() -> AsyncIterator[AgentBase]:
    async def repositories(request: web.Request) -> web.Response:
        return web.json_response({"repositories": REPOSITORIES})

    async def tags(request: web.Request) -> web.Response:
        return web.json_response({"tags": TAGS.get(request.match_info["repo"], "not a list")})

    async def with_metadata(request: web.Request) -> web.Response:
        listed = TAGS.get(request.match_info["repo"], [])
        entries = [
            {"tag": t, "digest": DIGESTS.get(t) if isinstance(t, str) else None} for t in listed
        ]
        return web.json_response({"tags": [*entries, "not an entry", {"tag": None}]})

    app = web.Application()
    app.router.add_get("/list", repositories)
    app.router.add_get("/list/{repo:.+}", tags)
    app.router.add_get("/list-with-metadata/{repo:.+}", with_metadata)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    url = f"http://127.0.0.1:{server.port}"
    try:
        yield AgentBase(url=url, headers={}, where=url, brokered=False)
    finally:
        await server.close()


def _passed_over(logs: list[MutableMapping[str, Any]]) -> MutableMapping[str, Any]:
    [line] = [e for e in logs if e["event"] == "listed names passed over"]
    return line


async def test_update_images_list_keeps_the_storable_names_and_says_what_it_passed_over(
    hostile_agent: AgentBase, box: SecretBox
) -> None:
    agent = RegistryAgent(ServerSettings(), box, None)
    try:
        with structlog.testing.capture_logs() as logs:
            images = await agent.list_images(hostile_agent)
    finally:
        await agent.close()
    assert images == [("app", "1.0"), ("app", "2.0"), ("lib/base", "latest")]
    line = _passed_over(logs)
    assert line["registry"] == hostile_agent.where and line["log_level"] == "warning"
    # 6 repositories and 5 tags of "app"; five examples, each saying why
    assert line["count"] == 11
    assert len(line["examples"]) == 5
    assert "'nul\\x00repo' (holds control characters)" in line["examples"]
    assert any("longer than 500 characters" in e for e in line["examples"])


async def test_the_sync_lister_keeps_the_storable_names_and_digests(
    hostile_agent: AgentBase,
) -> None:
    async with aiohttp.ClientSession() as http:
        lister = Lister(http, hostile_agent)
        with structlog.testing.capture_logs() as logs:
            repositories, tags = await lister.everything(frozenset({"app", "lib/base"}))
    assert repositories == ["app", "lib/base"]
    assert [(t.repository, t.tag, t.digest) for t in tags] == [
        ("app", "1.0", GOOD_DIGEST),
        ("app", "2.0", None),  # a digest longer than any column: unknown, the tag kept
        ("lib/base", "latest", None),
    ]
    # 6 repositories, 5 tags of "app", and each repository's entry whose tag is None
    assert _passed_over(logs)["count"] == 6 + 5 + 2


@pytest.mark.parametrize(
    ("value", "fault"),
    [
        ("ok/name", None),
        ("", "empty"),
        ("a\tb", "holds control characters"),
        ("a\x7fb", "holds control characters"),
        (b"bytes", "not a string (bytes)"),
        ("x" * 301, "longer than 300 characters"),
    ],
)
def test_name_fault_says_why(value: object, fault: str | None) -> None:
    assert name_fault(value, most=300) == fault


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        (GOOD_DIGEST, GOOD_DIGEST),
        ("sha512:" + "c" * 128, None),  # over the column: taken as unknown
        ("sha256:abc/../x", None),
        ("SHA256:abc", None),
        (17, None),
    ],
)
def test_listed_digest(value: object, kept: str | None) -> None:
    assert listed_digest(value) == kept
