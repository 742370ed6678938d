"""A :class:`RegistryClient` over either HTTP transport, for tests (production callers choose
their transport themselves: the service aiohttp, ``cr-agent scan`` the stream one)."""

from __future__ import annotations

from typing import Any

from cr_agent.registry.aiohttp_transport import AiohttpTransport
from cr_agent.registry.auth import RegistryAuth
from cr_agent.registry.client import RegistryClient, normalize_base_url
from cr_agent.registry.stream_transport import StreamTransport
from cr_agent.registry.transport import Transport, tls_context

TRANSPORTS = ("aiohttp", "stream")


def make_transport(
    kind: str,
    base_url: str,
    *,
    ca_file: str | None = None,
    insecure: bool = False,
    timeout: float = 60.0,
) -> Transport:
    tls = tls_context(normalize_base_url(base_url), ca_file=ca_file, insecure=insecure)
    if kind == "stream":
        return StreamTransport(tls, timeout)
    assert kind == "aiohttp", kind
    return AiohttpTransport(tls, timeout)


def registry_client(
    base_url: str,
    auth: RegistryAuth | None = None,
    *,
    transport: str = "aiohttp",
    ca_file: str | None = None,
    insecure: bool = False,
    timeout: float = 60.0,
    **kw: Any,
) -> RegistryClient:
    http = make_transport(transport, base_url, ca_file=ca_file, insecure=insecure, timeout=timeout)
    return RegistryClient(base_url, auth, transport=http, insecure=insecure, timeout=timeout, **kw)
