"""The HTTP layer under the registry client: one small interface, two implementations.

:class:`~cr_agent.registry.client.RegistryClient` speaks the distribution protocol (challenges,
tokens, redirects, retries, digests) over a :class:`Transport` that only moves requests and
bytes; whoever builds the client chooses the transport. Two exist because the agent has two
very different lives:

- :class:`~cr_agent.registry.aiohttp_transport.AiohttpTransport`: the long-running agent
  service, which honours ``HTTP(S)_PROXY`` / ``NO_PROXY``.
- :class:`~cr_agent.registry.stream_transport.StreamTransport`: the one-shot ``cr-agent scan``
  command, over :mod:`shared.http_client` on asyncio streams. Importing aiohttp costs a cold
  process about 110 ms, more than half a scan of a 15 MB image; this transport costs nothing to
  import. It does not speak to proxies, so the command takes aiohttp whenever the environment
  names one (:func:`proxy_in_environment`).

Both raise the same :class:`TransportError` subclasses, so the client maps failures to
:mod:`cr_agent.registry.errors` once, and the registry tests run against both.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import Protocol

USER_AGENT = "crbroker-cr-agent/0.1"


class TransportError(Exception):
    """Base of the failures a transport reports; the message says what happened."""


class ConnectFailed(TransportError):
    """No answer: refused, reset, unresolvable, timed out, or not HTTP. Worth retrying."""


class CertificateRejected(TransportError):
    """The peer's TLS certificate is not trusted (``detail`` says why)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class TlsFailed(TransportError):
    """The TLS handshake failed for another reason than the certificate."""


class BodyInterrupted(TransportError):
    """The answer's body stopped before its end (connection lost, read timeout, bad framing)."""


class Headers(Mapping[str, str]):
    """Response headers, looked up without regard to case; the first value of a name wins."""

    __slots__ = ("_first", "_items")

    def __init__(self, items: Iterable[tuple[str, str]]) -> None:
        self._items = list(items)
        self._first: dict[str, str] = {}
        for name, value in self._items:
            self._first.setdefault(name.lower(), value)

    def __getitem__(self, name: str) -> str:
        return self._first[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._first

    def __iter__(self) -> Iterator[str]:
        return iter(self._first)

    def __len__(self) -> int:
        return len(self._first)

    def get_all(self, name: str) -> list[str]:
        lowered = name.lower()
        return [value for key, value in self._items if key.lower() == lowered]


class Response(Protocol):
    """One answer; read it to the end or :meth:`release` it."""

    status: int
    headers: Mapping[str, str]

    async def read(self, limit: int) -> bytes:
        """The body, but never more than ``limit + 1`` bytes (so a caller sees an oversize one)."""
        ...

    def chunks(self, size: int) -> AsyncIterator[bytes]:
        """The body as it arrives, at most ``size`` bytes a chunk."""
        ...

    def release(self) -> None:
        """Give the connection back (or close it when the body was not read to the end)."""
        ...


async def read_limited(response: Response, limit: int) -> bytes:
    """What :meth:`Response.read` does, for both implementations."""
    parts = []
    size = 0
    async for chunk in response.chunks(256 * 1024):
        parts.append(chunk)
        size += len(chunk)
        if size > limit:
            break
    response.release()
    return b"".join(parts)[: limit + 1]


class Transport(Protocol):
    async def request(
        self, method: str, url: str, *, headers: Mapping[str, str], body: bytes | None = None
    ) -> Response:
        """Send one request; redirects are not followed, bodies are not decompressed."""
        ...

    async def close(self) -> None: ...


def tls_context(
    base_url: str, *, ca_file: str | None = None, insecure: bool = False
) -> ssl.SSLContext | None:
    """The TLS context for a registry at ``base_url``: None for plain ``http://``; a CA bundle
    added when given; no verification at all with ``insecure``."""
    if base_url.lower().startswith("http://"):
        return None
    ctx = ssl.create_default_context()
    if ca_file:
        ctx.load_verify_locations(cafile=ca_file)
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def proxy_in_environment(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``HTTP_PROXY``, ``HTTPS_PROXY`` or ``ALL_PROXY`` (any case) is set.

    ``NO_PROXY`` is deliberately not consulted: a registry outside the proxy may still redirect
    blob downloads to storage that is only reachable through it.
    """
    env = os.environ if environ is None else environ
    names = ("http_proxy", "https_proxy", "all_proxy")
    return any(value and key.lower() in names for key, value in env.items())
