"""A burst from the server does not become a burst of sockets to the agent (issue 16 item 8):
the client keeps at most BROKER_DOWNSTREAM_MAX_CONNECTIONS connections to it and queues the
rest. Our broker server in front, our client, and a test agent that counts its open
connections."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import aiohttp

from deploy import stack as st
from tests.broker_client.agent import BackgroundApps
from tests.broker_client.conftest import Apps, start_our_client

LIMIT = 8
BURST = 300


class CountingAgent:
    """HTTP/1.1 keep-alive answers after a short pause; counts connections open at once."""

    def __init__(self) -> None:
        self.open = 0
        self.peak = 0
        self.served = 0
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        self.connections += 1
        self.peak = max(self.peak, self.open)
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")  # GET requests: no body
                await asyncio.sleep(0.05)  # a slow agent: requests overlap
                body = b'{"repositories":[]}'
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                )
                await writer.drain()
                self.served += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open -= 1
            writer.close()


async def burst(url: str, count: int) -> list[int]:
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=count), timeout=aiohttp.ClientTimeout(total=120)
    ) as http:

        async def one() -> int:
            async with http.get(url) as resp:
                await resp.read()
                return resp.status

        return list(await asyncio.gather(*(one() for _ in range(count))))


def test_burst_is_queued_behind_a_bounded_agent_pool(apps: Apps, tmp_path: Path) -> None:
    background: BackgroundApps = apps.background
    agent = CountingAgent()
    server_socket = asyncio.run_coroutine_threadsafe(
        asyncio.start_server(agent.handle, "127.0.0.1", 0), background.loop
    ).result(10)
    agent_port = server_socket.sockets[0].getsockname()[1]
    token = str(uuid.uuid4())
    server = st.start_broker_server(tmp_path, token=token, upstream_url=apps.upstream_url)
    client = start_our_client(
        tmp_path,
        server_url=server.url,
        agent_url=f"http://127.0.0.1:{agent_port}",
        token=token,
        extra={"BROKER_DOWNSTREAM_MAX_CONNECTIONS": str(LIMIT), "LOG_LEVEL": "info", "DEBUG": ""},
    )
    try:
        st.wait_for_connection(server.url, token)
        statuses = asyncio.run(burst(f"{server.url}/broker/{token}/list", BURST))
    finally:
        client.stop()
        server.stop()
        background.loop.call_soon_threadsafe(server_socket.close)
    assert statuses == [200] * BURST
    assert agent.served == BURST
    # bounded, and the bound was reached: the rest waited for a free connection
    assert agent.peak == LIMIT, agent.peak
    assert agent.connections <= LIMIT  # kept alive and reused, not reopened per request
