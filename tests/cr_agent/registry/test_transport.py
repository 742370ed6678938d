"""The two HTTP transports under the registry client: choice, headers, and the CLI's lean path."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from cr_agent.cli import scan_transport
from cr_agent.registry.aiohttp_transport import AiohttpTransport
from cr_agent.registry.stream_transport import StreamTransport
from cr_agent.registry.transport import (
    BodyInterrupted,
    ConnectFailed,
    Headers,
    proxy_in_environment,
    tls_context,
)
from deploy.processes import refused_port
from shared.http_client import HttpClient
from tests.support.images import Layer, build_image, push

ROOT = Path(__file__).resolve().parents[3]
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture
def no_proxy_env(monkeypatch):
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)


def test_headers_are_case_insensitive_and_keep_every_value():
    headers = Headers([("WWW-Authenticate", "Basic realm=x"), ("www-authenticate", "Bearer")])
    assert headers["www-authenticate"] == "Basic realm=x"
    assert headers.get("Www-Authenticate") == "Basic realm=x"
    assert "WWW-AUTHENTICATE" in headers and "Link" not in headers
    assert headers.get_all("www-authenticate") == ["Basic realm=x", "Bearer"]
    assert len(headers) == 1 and list(headers) == ["www-authenticate"]


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, False),
        ({"HTTPS_PROXY": "http://proxy:3128"}, True),
        ({"http_proxy": "http://proxy:3128"}, True),
        ({"ALL_PROXY": "socks5://proxy:1080"}, True),
        ({"HTTPS_PROXY": ""}, False),
        ({"NO_PROXY": "*"}, False),
        # NO_PROXY cannot rule aiohttp out: blob storage may sit behind the proxy
        ({"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "registry.local"}, True),
    ],
)
def test_proxy_in_environment(environ, expected):
    assert proxy_in_environment(environ) is expected


async def test_the_scan_command_takes_the_stream_transport_unless_a_proxy_is_named(
    no_proxy_env, monkeypatch
):
    stream = scan_transport("http://127.0.0.1:1", ca_file=None, insecure=False, timeout=5.0)
    assert isinstance(stream, StreamTransport)
    await stream.close()
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    proxied = scan_transport("http://127.0.0.1:1", ca_file=None, insecure=False, timeout=5.0)
    assert isinstance(proxied, AiohttpTransport)
    await proxied.close()


def test_tls_context_only_for_https_and_insecure_turns_verification_off():
    assert tls_context("http://127.0.0.1:5000") is None
    verified = tls_context("https://registry.example")
    assert verified is not None and verified.verify_mode == ssl.CERT_REQUIRED
    assert verified.check_hostname
    loose = tls_context("https://registry.example", insecure=True)
    assert loose is not None and loose.verify_mode == ssl.CERT_NONE
    assert not loose.check_hostname


async def test_stream_transport_connect_failure_and_cut_body(no_proxy_env):
    async def answer_short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer_short, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport = StreamTransport(None, 5.0)
    try:
        with pytest.raises(ConnectFailed, match="ConnectionRefused"):
            await transport.request("GET", f"http://127.0.0.1:{refused_port()}/v2/", headers={})
        resp = await transport.request("GET", f"http://127.0.0.1:{port}/blob", headers={})
        assert resp.status == 200 and resp.headers["content-length"] == "100000"
        received = 0
        with pytest.raises(BodyInterrupted, match="99000 body bytes missing"):
            async for chunk in resp.chunks(65536):
                received += len(chunk)
        assert received == 1000
    finally:
        await transport.close()
        server.close()
        await server.wait_closed()


async def test_stream_transport_builds_a_tls_context_only_for_https(no_proxy_env):
    transport = StreamTransport(None, 1.0)
    client: HttpClient = transport._client
    with pytest.raises(ConnectFailed):
        await transport.request("GET", f"http://127.0.0.1:{refused_port()}/", headers={})
    assert client.ssl_context is None
    with pytest.raises(ConnectFailed):
        await transport.request("GET", f"https://127.0.0.1:{refused_port()}/", headers={})
    assert client.ssl_context is not None
    await transport.close()


def test_cli_scan_never_imports_aiohttp(plain_registry, unique_repo, tmp_path):
    push(plain_registry.url, unique_repo, build_image([Layer({"etc/hostname": b"x\n"})]), tag="v1")
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
    env["HOME"] = str(tmp_path)
    code = (
        "import sys; from cr_agent.__main__ import main; "
        f"rc = main(['scan', '{plain_registry.host}/{unique_repo}:v1', '--plain-http', "
        f"'--no-cache', '--output', {str(tmp_path / 'out.json')!r}]); "
        "print(rc, sorted(m for m in sys.modules if m.split('.')[0] in ('aiohttp', 'multidict', 'yarl')))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split(None, 1) == ["0", "[]\n"]
    assert json.loads((tmp_path / "out.json").read_text())["image"]["digest"].startswith("sha256:")
