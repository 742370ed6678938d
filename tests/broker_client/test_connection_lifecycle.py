"""Socket lifecycle of our client against a scripted peer built on the project's own
server-side protocol core (real websockets on loopback): identify contents and handshake headers,
heartbeats, a malformed frame that must not kill the connection, reconnect after a drop, and no
reconnect after ``primus::server::close``."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from broker_client.settings import CLIENT_VERSION
from shared import broker_protocol as bp
from shared.engineio import OpenHandshake
from tests.broker_client.agent import big_sha256
from tests.broker_client.conftest import Apps, start_our_client
from tests.broker_client.log_scan import wait_for_log
from tests.support.eventually import eventually

LEGACY_SIZE = 300_000


@dataclass
class Peer:
    """What the scripted server saw."""

    mode: str  # "drop", "server-close" or "mute"
    paths: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    identities: list[bp.ClientIdentified] = field(default_factory=list)
    engine_pongs: int = 0
    primus_pongs: list[str] = field(default_factory=list)
    client_pings: int = 0
    chunk_sets: list[list[list[Any]]] = field(default_factory=list)


async def script(peer: Peer, ws: ServerConnection) -> None:
    conn = bp.BrokerConnection("server")
    assert ws.request is not None
    peer.paths.append(ws.request.path)
    peer.headers.append({k.lower(): v for k, v in ws.request.headers.raw_items()})
    await ws.send(
        conn.open(
            OpenHandshake(
                sid=f"s{len(peer.paths)}", upgrades=[], pingInterval=25000, pingTimeout=20000
            )
        )
    )
    capabilities = [] if peer.mode == "legacy" else ["receive-post-streams"]
    identify, _ = conn.send_event("identify", {"capabilities": capabilities})
    await ws.send(identify)
    await ws.send("4{this is not EJSON")  # must be logged and skipped
    await ws.send(conn.engine_ping())
    await ws.send(conn.send_data("primus::ping::4242"))
    deadline = time.monotonic() + 3
    identified = engine_pong = primus_pong = False
    while time.monotonic() < deadline and not (identified and engine_pong and primus_pong):
        try:
            message = await asyncio.wait_for(ws.recv(), timeout=0.5)
        except TimeoutError:
            continue
        for event in conn.receive(message):
            if isinstance(event, bp.ClientIdentified):
                peer.identities.append(event)
                identified = True
            elif isinstance(event, bp.EnginePong):
                peer.engine_pongs += 1
                engine_pong = True
            elif isinstance(event, bp.PrimusPong):
                peer.primus_pongs.append(event.value)
                primus_pong = True
            elif isinstance(event, bp.PrimusPing):
                peer.client_pings += 1
                if peer.mode != "mute":
                    await ws.send(conn.pong_for(event))
    if peer.mode == "legacy":
        request, _ = conn.send_event(
            "request",
            {
                "url": f"/list/big/{LEGACY_SIZE}",
                "method": "GET",
                "headers": {},
                "streamingID": "sid-1",
            },
        )
        await ws.send(request)
        chunks: list[list[Any]] = []
        while not (chunks and chunks[-1][2] is True):
            for event in conn.receive(await asyncio.wait_for(ws.recv(), timeout=10)):
                if isinstance(event, bp.EventReceived) and event.event.name == "chunk":
                    chunks.append(list(event.event.args))
        peer.chunk_sets.append(chunks)  # one answer per socket (primary and secondary)
    if peer.mode == "server-close":
        await ws.send(conn.server_close())
    if peer.mode == "mute":
        # stay connected but never answer the client's Primus pings
        async for message in ws:
            for event in conn.receive(message):
                if isinstance(event, bp.PrimusPing):
                    peer.client_pings += 1
    await ws.close()


class ScriptedServer:
    def __init__(self, mode: str) -> None:
        self.peer = Peer(mode)
        self.port = 0  # known once serving
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.stopping: asyncio.Event | None = None
        self.thread = threading.Thread(
            target=self.loop.run_until_complete, args=(self._main(),), daemon=True
        )
        self.thread.start()
        assert self.ready.wait(10)

    async def _main(self) -> None:
        self.stopping = asyncio.Event()
        async with serve(lambda ws: script(self.peer, ws), "127.0.0.1", 0) as server:
            self.port = server.sockets[0].getsockname()[1]
            self.ready.set()
            await self.stopping.wait()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        assert self.stopping is not None
        self.loop.call_soon_threadsafe(self.stopping.set)
        self.thread.join(10)


@pytest.fixture
def scripted(request: pytest.FixtureRequest) -> Iterator[ScriptedServer]:
    server = ScriptedServer(request.param)
    yield server
    server.close()


def wait_until(predicate: Any, timeout: float) -> bool:
    """Whether ``predicate`` came true within ``timeout`` (the caller asserts, with context)."""
    with contextlib.suppress(AssertionError):
        eventually(lambda: bool(predicate()), timeout=timeout)
        return True
    return False


@pytest.mark.parametrize("scripted", ["drop"], indirect=True)
def test_identify_headers_heartbeats_and_reconnect_after_a_drop(
    scripted: ScriptedServer, apps: Apps, tmp_path: Path
) -> None:
    client = start_our_client(tmp_path, server_url=scripted.url, agent_url=apps.agent_url)
    peer = scripted.peer
    try:
        # each of the two sockets is dropped after the script; both come back
        assert wait_until(lambda: len(peer.identities) >= 4, 15), peer.paths
    finally:
        client.stop()
    token = client.token
    assert {p.split("?")[0] for p in peer.paths} == {f"/primus/{token}/"}
    assert {"connection_role=primary", "connection_role=secondary"} <= {
        q for p in peer.paths for q in p.split("?")[1].split("&")
    }
    assert all("EIO=4" in p for p in peer.paths)
    first = peer.headers[0]
    assert first["x-broker-client-version"] == CLIENT_VERSION
    assert first["x-snyk-broker-client-role"] in ("primary", "secondary")
    assert (
        len({h["x-snyk-broker-client-id"] for h in peer.headers}) == 1
    )  # one client id per process
    assert len({h["snyk-request-id"] for h in peer.headers}) == len(
        peer.headers
    )  # renewed per connect
    ident = peer.identities[0]
    assert ident.token == token
    meta = ident.metadata.raw
    assert meta["capabilities"] == ["post-streams"]
    assert meta["identifier"] == hashlib.sha256(token.encode()).hexdigest()
    assert meta["version"] == CLIENT_VERSION
    assert meta["role"] in ("primary", "secondary")
    assert meta["clientId"] == first["x-snyk-broker-client-id"]
    assert set(meta["filters"]) == {"private", "public"}
    assert meta["clientConfig"]["brokerClientId"] == meta["clientId"]
    # the malformed frame was skipped: pings after it were still answered
    assert peer.engine_pongs >= 1 and "4242" in peer.primus_pongs
    log = wait_for_log(client.process.log_text, "protocol fault", "reconnecting")
    assert "protocol fault" in log and "reconnecting" in log


@pytest.mark.parametrize("scripted", ["server-close"], indirect=True)
def test_no_reconnect_after_primus_server_close(
    scripted: ScriptedServer, apps: Apps, tmp_path: Path
) -> None:
    client = start_our_client(tmp_path, server_url=scripted.url, agent_url=apps.agent_url)
    try:
        assert wait_until(lambda: len(scripted.peer.identities) >= 2, 10)
        time.sleep(3)  # back-off would have reconnected within ~1 s
        assert len(scripted.peer.paths) == 2
        assert client.process.alive()
        assert "not reconnecting" in wait_for_log(client.process.log_text, "not reconnecting")
    finally:
        client.stop()


@pytest.mark.parametrize("scripted", ["mute"], indirect=True)
def test_missing_primus_pong_makes_the_client_reconnect(
    scripted: ScriptedServer, apps: Apps, tmp_path: Path
) -> None:
    client = start_our_client(
        tmp_path,
        server_url=scripted.url,
        agent_url=apps.agent_url,
        extra={"SOCKET_PING_INTERVAL": "400", "SOCKET_PONG_TIMEOUT": "300"},
    )
    try:
        assert wait_until(lambda: len(scripted.peer.paths) >= 4, 10), scripted.peer.paths
    finally:
        client.stop()
    assert scripted.peer.client_pings >= 2
    assert "no primus pong in time" in client.process.log_text()


@pytest.mark.parametrize("scripted", ["legacy"], indirect=True)
def test_server_without_post_streams_gets_chunk_events(
    scripted: ScriptedServer, apps: Apps, tmp_path: Path
) -> None:
    client = start_our_client(tmp_path, server_url=scripted.url, agent_url=apps.agent_url)
    try:
        assert wait_until(lambda: len(scripted.peer.chunk_sets) >= 1, 15)
    finally:
        client.stop()
    chunks = scripted.peer.chunk_sets[0]
    first = chunks[0]
    assert first[0] == "sid-1" and first[2] is False and first[3]["status"] == 200
    body = b"".join(c[1] for c in chunks[1:] if isinstance(c[1], bytes))
    assert hashlib.sha256(body).hexdigest() == big_sha256(LEGACY_SIZE)
    assert chunks[-1][1:3] == ["", True]


@pytest.mark.parametrize("scripted", ["drop"], indirect=True)
def test_reconnect_after_post_filters_identifies_with_the_reloaded_rules(
    scripted: ScriptedServer, apps: Apps, tmp_path: Path
) -> None:
    accept = tmp_path / "reloadable.json"
    accept.write_text(json.dumps({"private": [], "public": [{"method": "POST", "path": "/first"}]}))
    client = start_our_client(
        tmp_path, server_url=scripted.url, agent_url=apps.agent_url, extra={"ACCEPT": str(accept)}
    )
    peer = scripted.peer
    try:
        assert wait_until(lambda: len(peer.identities) >= 1, 15), peer.paths
        assert peer.identities[0].metadata.raw["filters"]["public"][0]["path"] == "/first"
        accept.write_text(
            json.dumps({"private": [], "public": [{"method": "POST", "path": "/second"}]})
        )
        reload = urllib.request.Request(f"{client.url}/filters", data=b"", method="POST")
        with urllib.request.urlopen(reload, timeout=10) as answer:
            assert answer.status == 200
        seen = len(peer.identities)
        # the scripted server drops every socket: the next identify comes from a reconnect
        assert wait_until(lambda: len(peer.identities) >= seen + 2, 20), peer.paths
    finally:
        client.stop()
    later = [i.metadata.raw["filters"]["public"][0]["path"] for i in peer.identities[seen:]]
    assert later and set(later) == {"/second"}
