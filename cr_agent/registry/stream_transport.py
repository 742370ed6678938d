"""The registry client's HTTP on asyncio streams, for ``cr-agent scan`` (see :mod:`.transport`).

A thin adapter over :class:`shared.http_client.HttpClient`: keep-alive connections per origin,
TLS with the client's context, Content-Length / chunked / until-close framing. Its reason to
exist is start-up cost: it loads nothing beyond asyncio and ssl.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Mapping

from cr_agent.registry.transport import (
    USER_AGENT,
    BodyInterrupted,
    CertificateRejected,
    ConnectFailed,
    Headers,
    TlsFailed,
    read_limited,
)
from shared.http_client import HttpClient, HttpProtocolError, HttpResponse


class StreamResponse:
    def __init__(self, response: HttpResponse) -> None:
        self._response = response
        self.status = response.status
        self.headers: Mapping[str, str] = Headers(response.headers)

    async def read(self, limit: int) -> bytes:
        return await read_limited(self, limit)

    async def chunks(self, size: int) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.iter_chunks(size):
                yield chunk
        except HttpProtocolError as exc:
            raise BodyInterrupted(str(exc)) from None
        except TimeoutError:
            raise BodyInterrupted("read timed out") from None
        except OSError as exc:
            raise BodyInterrupted(f"connection lost ({exc})") from None

    def release(self) -> None:
        self._response.release()


class StreamTransport:
    def __init__(self, tls: ssl.SSLContext | None, timeout: float) -> None:
        self._timeout = timeout
        self._client = HttpClient(tls, max_idle_per_origin=8)

    async def request(
        self, method: str, url: str, *, headers: Mapping[str, str], body: bytes | None = None
    ) -> StreamResponse:
        if self._client.ssl_context is None and url[:6].lower() == "https:":
            # a plain-http registry may still redirect blobs to https storage; building the
            # default context loads the system CA store, so only when that happens
            self._client.ssl_context = ssl.create_default_context()
        sent = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **headers}
        try:
            response = await self._client.request(
                method,
                url,
                headers=sent,
                body=body,
                connect_timeout=self._timeout,
                read_timeout=self._timeout,
            )
        except ssl.SSLCertVerificationError as exc:
            raise CertificateRejected(exc.verify_message or str(exc)) from None
        except ssl.SSLError as exc:
            raise TlsFailed(str(exc)) from None
        except TimeoutError:
            raise ConnectFailed("TimeoutError") from None
        except (OSError, HttpProtocolError, asyncio.IncompleteReadError) as exc:
            raise ConnectFailed(
                f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            ) from None
        return StreamResponse(response)

    async def close(self) -> None:
        await self._client.close()
