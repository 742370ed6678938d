"""The registry client's HTTP on aiohttp: for the agent service (see :mod:`.transport`)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Mapping

import aiohttp

from cr_agent.registry.transport import (
    USER_AGENT,
    BodyInterrupted,
    CertificateRejected,
    ConnectFailed,
    TlsFailed,
    read_limited,
)


class AiohttpResponse:
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers

    async def read(self, limit: int) -> bytes:
        return await read_limited(self, limit)

    async def chunks(self, size: int) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_chunked(size):
                yield chunk
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
            raise BodyInterrupted(f"connection lost ({exc})") from None
        except TimeoutError:
            raise BodyInterrupted("read timed out") from None

    def release(self) -> None:
        self._response.release()


class AiohttpTransport:
    def __init__(
        self,
        tls: ssl.SSLContext | None,
        timeout: float,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._ssl: ssl.SSLContext | bool = tls if tls is not None else True
        self._own = session is None
        self._session = session or aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(
                total=None, connect=timeout, sock_connect=timeout, sock_read=timeout
            ),
            headers={"User-Agent": USER_AGENT},
            auto_decompress=False,
            # HTTP(S)_PROXY / NO_PROXY from the environment, as docker and skopeo honour them
            trust_env=True,
        )

    async def request(
        self, method: str, url: str, *, headers: Mapping[str, str], body: bytes | None = None
    ) -> AiohttpResponse:
        try:
            resp = await self._session.request(
                method, url, headers=headers, data=body, allow_redirects=False, ssl=self._ssl
            )
        except aiohttp.ClientConnectorCertificateError as exc:
            raise CertificateRejected(str(exc.certificate_error)) from None
        except aiohttp.ClientSSLError as exc:
            raise TlsFailed(str(exc)) from None
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise ConnectFailed(
                f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            ) from None
        return AiohttpResponse(resp)

    async def close(self) -> None:
        if self._own:
            await self._session.close()
