"""Fault run of issue 16: scans, callback receiver down, the agent restarted twice (real
processes, SIGTERM), receiver back: every result and every ``done`` arrives, and a callback
seen twice upstream carries the same Idempotency-Key both times."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from deploy.processes import ServerProcess, reserve_port, start_reporting, wait_for_http
from tests.cr_agent.service.agent import SECRET_HEADERS, AgentFactory, creds_for
from tests.cr_agent.service.images import debian_image, push_image
from tests.cr_agent.service.test_serve import ROOT, agent_env
from tests.fakes.callback_receiver import CallbackReceiver
from tests.support.eventually import eventually_async
from tests.support.registry import RunningRegistry

pytestmark = pytest.mark.registry

RESULT = "/api/v2/import/result"
DONE = "/api/v2/import/done"
SCANS = 50


def _start_agent(tmp_path: Path, name: str, callback_url: str) -> tuple[ServerProcess, str]:
    server, ports = start_reporting(
        [sys.executable, "-m", "cr_agent", "serve"],
        env=agent_env(
            tmp_path,
            SNYK_PORT="0",
            MAX_ACTIVE_OPERATIONS="1",
            CALLBACK_RETRY_SECONDS="0.5",
            LAYER_CACHE_DIR=str(tmp_path / "layers"),
            REGISTRY_TIMEOUT="5",
            BROKER_CLIENT_URL=callback_url,  # the only place results go
        ),
        cwd=ROOT,
        log_path=tmp_path / f"agent-{name}.log",
        name="cr-agent",
    )
    url = f"http://127.0.0.1:{ports['SNYK_PORT']}"
    wait_for_http(url + "/healthcheck", timeout=30)
    return server, url


def _stop(server: ServerProcess) -> None:
    os.kill(server.pid, signal.SIGTERM)
    assert server.proc is not None
    assert server.proc.wait(timeout=20) == 0, server.log_text()[-3000:]


def _call(url: str, body: Any = None, creds: str | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    request.add_header("Content-Type", "application/json")
    for name, value in SECRET_HEADERS.items():
        request.add_header(name, value)
    if creds:
        request.add_header("Authorization", creds)
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.load(resp)


async def test_fifty_scans_survive_two_restarts_while_the_receiver_is_down(
    plain_registry: RunningRegistry, unique_repo: str, tmp_path: Path
) -> None:
    await push_image(plain_registry, unique_repo, "1", debian_image(2))
    reserved = reserve_port()  # nothing listens there until the end
    callback_port = reserved.getsockname()[1]
    creds = creds_for(plain_registry)
    callback_url = f"http://127.0.0.1:{callback_port}"
    body = {"images": [f"{unique_repo}:1"], "callbackUrl": callback_url}

    first, url = await asyncio.to_thread(_start_agent, tmp_path, "first", callback_url)
    try:
        accepted = [
            await asyncio.to_thread(_call, url + "/scan", body, creds) for _ in range(SCANS)
        ]
        jobs = {a["jobId"] for a in accepted}

        # stop once the first result is scanned and in its retry loop, the rest queued
        async def first_scanned() -> None:
            status = await asyncio.to_thread(_call, url + accepted[0]["statusPath"])
            assert status["images"][0]["status"] == "succeeded", status

        await eventually_async(first_scanned, timeout=20)
        await asyncio.to_thread(_stop, first)
    finally:
        first.stop()

    second, _ = await asyncio.to_thread(_start_agent, tmp_path, "second", callback_url)
    try:
        # its drainer tries the receiver and fails (silently: a failed drain is not logged)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(_stop, second)
    finally:
        second.stop()
    assert len(list((tmp_path / "spool").glob("*.json"))) >= 2 * SCANS

    receiver = await CallbackReceiver().start(reserved)
    third, _ = await asyncio.to_thread(_start_agent, tmp_path, "third", callback_url)
    try:
        await receiver.wait_for(DONE, SCANS, wait_seconds=40)
        await receiver.wait_for(RESULT, SCANS, wait_seconds=10)
    finally:
        third.stop()
        await receiver.stop()

    results = [r.json() for r in receiver.on(RESULT)]
    dones = [r.json() for r in receiver.on(DONE)]
    assert {r["jobId"] for r in results} == jobs and len(results) == SCANS
    assert {d["jobId"] for d in dones} == jobs and len(dones) == SCANS
    # the first image was scanned before the first SIGTERM: its result survived its retries
    first_result = next(r for r in results if r["jobId"] == accepted[0]["jobId"])
    assert first_result["status"] == "success" and first_result["packageCount"] == 2
    for result in results:
        if result["status"] == "error":  # caught by the shutdown: says so, to be sent again
            assert result["error"]["code"] in ("not-run", "agent-stopped"), result
    for done in dones:
        [image] = done["images"]
        assert image["status"] in ("succeeded", "failed")
    # a callback POSTed more than once always carried one key; no callback has two keys
    keys_per_callback: dict[tuple[str, str], set[str]] = defaultdict(set)
    for request in receiver.received:
        keys_per_callback[(request.path, request.json()["jobId"])].add(
            request.headers["Idempotency-Key"]
        )
    assert all(len(keys) == 1 for keys in keys_per_callback.values())
    assert {key for _, key in receiver.posts} == receiver.keys
    assert not list((tmp_path / "spool").glob("*.json"))


async def test_a_callback_cut_off_by_shutdown_is_sent_again_with_the_same_key(
    make_agent: AgentFactory, plain_registry: RunningRegistry, unique_repo: str
) -> None:
    """The receiver takes the result but the agent stops before the answer: the next start
    sends it again, under the key it had, so the upstream can drop the repeat."""
    posts: list[tuple[str, str]] = []
    first_seen = asyncio.Event()
    done_seen = asyncio.Event()

    async def slow_then_fine(request: web.Request) -> web.Response:
        await request.read()
        posts.append((request.path, request.headers["Idempotency-Key"]))
        if len(posts) == 1:
            first_seen.set()
            await asyncio.sleep(30)  # the agent is stopped meanwhile
        if request.path == DONE:
            done_seen.set()
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/{tail:.*}", slow_then_fine)
    receiver = TestServer(app, host="127.0.0.1")
    await receiver.start_server()
    try:
        await push_image(plain_registry, unique_repo, "1", debian_image(1))
        first = await make_agent(CALLBACK_RETRY_SECONDS=60)
        status, _ = await first.post(
            "/scan",
            {"images": [f"{unique_repo}:1"], "callbackUrl": f"http://127.0.0.1:{receiver.port}"},
            creds_for(plain_registry),
        )
        assert status == 202
        async with asyncio.timeout(30):
            await first_seen.wait()
        await first.server.close()  # SIGTERM's path: the POST in flight is cut off

        await make_agent(CALLBACK_RETRY_SECONDS=60)  # same SPOOL_DIR
        async with asyncio.timeout(30):
            await done_seen.wait()
    finally:
        await receiver.close()
    results = [key for path, key in posts if path == RESULT]
    assert len(results) == 2 and results[0] == results[1]  # sent twice, one key
    assert [path for path, _ in posts] == [RESULT, RESULT, DONE]
