"""One request to a registry over its transport: retried, its failures named.

Transport failures become :mod:`cr_agent.registry.errors` here and only here: an untrusted
certificate or failed handshake is a :class:`TlsError` at once, no answer or a 408/429/5xx is
tried again (:mod:`cr_agent.registry.retry`) and a :class:`RegistryUnreachable` when the tries
run out. Redirects and challenges are the caller's business.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from cr_agent.registry.errors import RegistryUnreachable, TlsError
from cr_agent.registry.rate_limit import RateLimit, parse_rate_limit, parse_retry_after
from cr_agent.registry.retry import RETRY_STATUSES, Retryable, RetryPolicy, with_retries
from cr_agent.registry.transport import (
    BodyInterrupted,
    CertificateRejected,
    ConnectFailed,
    Response,
    TlsFailed,
    Transport,
)
from shared.logging import get_logger

log = get_logger("cr_agent.registry.client")


def display(url: str) -> str:
    """``url`` without its query (which may carry a token or signature)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


async def read_body(resp: Response, step: str, limit: int) -> bytes:
    """The body (at most ``limit + 1`` bytes); a cut one is a :class:`RegistryUnreachable`."""
    try:
        return await resp.read(limit)
    except BodyInterrupted as exc:
        raise RegistryUnreachable(f"{step}: {exc}", step, resp.status) from None
    finally:
        resp.release()


class Exchange:
    """Requests over one transport with one retry policy; remembers the last rate limit seen."""

    def __init__(self, transport: Transport, policy: RetryPolicy) -> None:
        self.transport = transport
        self.policy = policy
        self.rate_limit: RateLimit | None = None

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        data: bytes | None = None,
        step: str,
    ) -> Response:
        """One request with retries on 408/429/5xx and network errors; redirects not followed."""
        try:
            return await with_retries(
                lambda: self._attempt(method, url, headers, data, step), self.policy
            )
        except Retryable as exc:
            what = "rate limited (429)" if exc.status == 429 else exc.detail
            raise RegistryUnreachable(
                f"{step}: {method} {display(url)} failed after {self.policy.tries} attempts: "
                f"{what}",
                step,
                exc.status,
            ) from None

    async def _attempt(
        self, method: str, url: str, headers: dict[str, str], data: bytes | None, step: str
    ) -> Response:
        try:
            resp = await self.transport.request(method, url, headers=headers, body=data)
        except CertificateRejected as exc:
            raise TlsError(
                f"{step}: TLS certificate of {urlsplit(url).netloc} not trusted "
                f"({exc.detail}); give a CA bundle or use the insecure switch",
                step,
            ) from None
        except TlsFailed as exc:
            raise TlsError(
                f"{step}: TLS handshake with {urlsplit(url).netloc} failed: {exc}", step
            ) from None
        except ConnectFailed as exc:
            raise Retryable(str(exc), None, None) from None
        limit = parse_rate_limit(resp.headers)
        if limit is not None:
            self.rate_limit = limit
        if resp.status in RETRY_STATUSES:
            wait = parse_retry_after(resp.headers.get("Retry-After"), cap=self.policy.max_wait)
            resp.release()
            log.info("registry_retry", step=step, status=resp.status, wait=wait)
            raise Retryable(f"HTTP {resp.status}", resp.status, wait)
        return resp
