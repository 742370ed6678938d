"""Delivering scan results and job ends to the broker client's callback paths.

Each POST carries an ``Idempotency-Key`` so a receiver can drop the duplicates retries may
cause; a 409 from the receiver counts as "already delivered". The key is fixed when the
delivery is made and travels with it through the spool, so a callback retried after an outage
or a restart carries the same key. Every delivery is written to the :class:`Spool` before its
first attempt and removed only once delivered: a shutdown in the middle of a retry loses
nothing. Transient failures are retried with backoff (tenacity); what still fails stays in
the spool and a background loop retries it until it is delivered. Bodies stay under the
broker client's 10 MB limit by splitting a result into several bodies (see
:func:`result_bodies`), never by truncating it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from typing import Any

import aiohttp
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from cr_agent.service.metrics import AgentMetrics
from cr_agent.service.spool import Delivery, Spool
from shared.logging import get_logger

log = get_logger(__name__)

IDEMPOTENCY_HEADER = "Idempotency-Key"
#: receiver statuses worth another attempt right away; others go to the spool at once
RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}
#: room for the chunk marker and JSON punctuation around a slice
CHUNK_OVERHEAD = 512


class CallbackTooLarge(Exception):
    """One indivisible item of a result is larger than the body limit."""


class DeliveryFailed(Exception):
    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), default=str).encode()


def result_bodies(result: dict[str, Any], limit: int) -> list[bytes]:
    """``result`` as one JSON body, or as several under ``limit`` bytes each.

    Every list inside ``result["sbom"]`` (CycloneDX ``components`` and ``dependencies``, SPDX
    ``packages`` and ``relationships``, ...) is cut into the same number of consecutive
    slices; body *i* carries slice *i* of each, the rest of the document unchanged, and
    ``chunk: {index, count, fields}`` so the receiver can concatenate the lists back.
    """
    whole = _dumps(result)
    if len(whole) <= limit:
        return [whole]
    sbom = result.get("sbom") or {}
    fields = sorted(k for k, v in sbom.items() if isinstance(v, list) and v)
    if not fields:
        raise CallbackTooLarge(f"result is {len(whole)} bytes and has no list to split")
    longest = max(len(sbom[f]) for f in fields)
    empty = {**result, "sbom": {**sbom, **{f: [] for f in fields}}}
    room = limit - len(_dumps(empty)) - CHUNK_OVERHEAD
    if room <= 0:
        raise CallbackTooLarge(f"the result without its lists is already over {limit} bytes")
    count = max(2, -(-len(whole) // room))
    while count <= longest:
        bodies = [_dumps(_slice(result, sbom, fields, index, count)) for index in range(count)]
        if all(len(b) <= limit for b in bodies):
            return bodies
        count = min(longest, count * 2) if count < longest else count + 1
    raise CallbackTooLarge(f"one SBOM entry alone is larger than {limit} bytes")


def _slice(
    result: dict[str, Any], sbom: dict[str, Any], fields: list[str], index: int, count: int
) -> dict[str, Any]:
    part = dict(sbom)
    for name in fields:
        items = sbom[name]
        size = -(-len(items) // count)
        part[name] = items[index * size : (index + 1) * size]
    return {**result, "sbom": part, "chunk": {"index": index, "count": count, "fields": fields}}


class CallbackSender:
    """POSTs deliveries; retries; spools what cannot be delivered; drains the spool."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        spool: Spool,
        *,
        attempts: int = 4,
        retry_seconds: float = 30.0,
        timeout: float = 30.0,
        ssl_context: ssl.SSLContext | bool = True,
        metrics: AgentMetrics | None = None,
    ) -> None:
        self.metrics = metrics
        self.session = session
        self.spool = spool
        self.attempts = attempts
        self.retry_seconds = retry_seconds
        self.timeout = timeout
        self.ssl_context = ssl_context
        self._drainer: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        #: keys being sent by :meth:`send` right now: the drainer leaves them (and their job) alone
        self._inflight: set[str] = set()
        self.delivered = 0

    async def _post_once(self, delivery: Delivery) -> None:
        delivery.attempts += 1
        headers = {
            "Content-Type": "application/json",
            IDEMPOTENCY_HEADER: delivery.idempotency_key,
            "X-Crbroker-Job-Id": delivery.job_id,
        }
        try:
            async with asyncio.timeout(self.timeout):
                async with self.session.post(
                    delivery.url, data=delivery.body, headers=headers, ssl=self.ssl_context
                ) as resp:
                    await resp.read()
                    if resp.status < 300 or resp.status == 409:
                        return
                    raise DeliveryFailed(
                        f"callback answered {resp.status}",
                        retryable=resp.status in RETRYABLE_STATUS,
                    )
        except TimeoutError:
            raise DeliveryFailed(
                f"callback did not answer within {self.timeout:g}s", retryable=True
            ) from None
        except aiohttp.ClientError as exc:
            raise DeliveryFailed(
                f"callback unreachable: {exc.__class__.__name__}", retryable=True
            ) from None

    async def send(self, delivery: Delivery, *, after_spooled: bool = False) -> bool:
        """Spool, then deliver now (with retries); True when delivered (and unspooled).

        ``after_spooled``: an earlier callback of the same job is in the spool, so this one
        queues behind it to keep the order results-then-done.
        """
        self.spool.put(delivery)  # on disk before the first attempt; removed once delivered
        if after_spooled:
            self._spooled(delivery, "an earlier callback of this job is spooled")
            return False
        self._inflight.add(delivery.idempotency_key)
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self.attempts),
                wait=wait_exponential(multiplier=0.2, max=5),
                retry=retry_if_exception(_retryable),
                reraise=True,
            ):
                with attempt:
                    await self._post_once(delivery)
        except DeliveryFailed as exc:
            delivery.last_error = str(exc)
            self.spool.put(delivery)  # same name: records the attempts
            self._spooled(delivery, str(exc))
            return False
        finally:
            self._inflight.discard(delivery.idempotency_key)
        self.spool.remove(delivery)
        self.delivered += 1
        self._count("delivered")
        log.info(
            "callback delivered", kind=delivery.kind, job=delivery.job_id, path=_path(delivery.url)
        )
        return True

    def _spooled(self, delivery: Delivery, reason: str) -> None:
        self._count("spooled")
        log.warning(
            "callback spooled for retry",
            kind=delivery.kind,
            job=delivery.job_id,
            path=_path(delivery.url),
            reason=reason,
        )

    async def drain_once(self) -> int:
        """Try every spooled delivery once, oldest first; returns how many got through.

        A job whose callback fails again keeps its later callbacks waiting behind it.
        """
        blocked: set[str] = set()
        done = 0
        for delivery in self.spool.pending():
            if delivery.idempotency_key in self._inflight:
                blocked.add(delivery.job_id)  # being sent right now; its job waits behind it
            if delivery.job_id in blocked or not self.spool.holds(delivery):
                continue
            try:
                await self._post_once(delivery)
            except DeliveryFailed as exc:
                delivery.last_error = str(exc)
                self.spool.put(delivery)  # same name: updates attempts in place
                blocked.add(delivery.job_id)
                continue
            self.spool.remove(delivery)
            self.delivered += 1
            self._count("drained")
            done += 1
            log.info("spooled callback delivered", kind=delivery.kind, job=delivery.job_id)
        return done

    def _count(self, fate: str) -> None:
        if self.metrics is not None:
            self.metrics.callbacks.labels(fate=fate).inc()

    def start(self) -> None:
        if self._drainer is None:
            self._drainer = asyncio.create_task(self._drain_forever(), name="callback-spool")

    def wake(self) -> None:
        self._wake.set()

    async def _drain_forever(self) -> None:
        while True:
            if self.spool.count():
                try:
                    await self.drain_once()
                except Exception as exc:  # keep draining whatever one file did
                    log.error("spool drain failed", error=str(exc), exc_info=exc)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.retry_seconds):
                    await self._wake.wait()
            self._wake.clear()

    async def close(self) -> None:
        if self._drainer is not None:
            self._drainer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drainer
            self._drainer = None


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, DeliveryFailed) and exc.retryable


def _path(url: str) -> str:
    return "/" + url.split("://", 1)[-1].split("/", 1)[-1] if "://" in url else url
