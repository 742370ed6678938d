"""``/systemcheck``: can the client reach the agent (and the agent the registry) with our credentials?

Calls ``BROKER_CLIENT_VALIDATION_URL`` once per configured credential (snyk-broker's order of
precedence; ``CR_CREDENTIALS`` as the Authorization value when nothing else is set, as the CRA
image does). Unlike snyk-broker every credential counts: 200 only when all checks pass; a
failed check carries the agent's own reason (which step failed and why) and is logged.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from broker_client.agent_secret import add_agent_secret
from broker_client.settings import Settings
from shared.logging import get_logger
from shared.redaction import SECRETS, mask_credentials

log = get_logger("broker_client.systemcheck")
#: how much of an answer that is not the agent's JSON is quoted
REASON_CHARS = 300


async def run_systemcheck(
    settings: Settings, session: aiohttp.ClientSession
) -> tuple[int, list[dict[str, Any]]]:
    """(HTTP status, snyk-broker's JSON array with one object per credential)."""
    base = {
        "brokerClientValidationMethod": settings.BROKER_CLIENT_VALIDATION_METHOD,
        "brokerClientValidationTimeoutMs": settings.BROKER_CLIENT_VALIDATION_TIMEOUT_MS,
    }
    url = settings.BROKER_CLIENT_VALIDATION_URL
    if url is None:
        return 500, [
            {
                **base,
                "ok": False,
                "error": "BROKER_CLIENT_VALIDATION_URL is not set",
                "maskedCredentials": None,
            }
        ]
    checks = [_check(settings, session, url, cred) for cred in settings.validation_credentials()]
    results = await asyncio.gather(*checks)
    for result in results:
        if not result["ok"]:
            log.warning(
                "system check failed",
                url=result["brokerClientValidationUrl"],
                status=result.get("brokerClientValidationUrlStatusCode"),
                error=result["error"],
                maskedCredentials=result["maskedCredentials"],
            )
    status = 200 if all(r["ok"] for r in results) else 500
    return status, [{**base, **r} for r in results]


async def _check(
    settings: Settings, session: aiohttp.ClientSession, url: str, credential: str | None
) -> dict[str, Any]:
    result: dict[str, Any] = {"brokerClientValidationUrl": _sanitise(url, settings)}
    headers = {"authorization": credential} if credential else {}
    add_agent_secret(settings, url, headers)
    timeout = aiohttp.ClientTimeout(total=settings.BROKER_CLIENT_VALIDATION_TIMEOUT_MS / 1000)
    try:
        async with session.request(
            settings.BROKER_CLIENT_VALIDATION_METHOD,
            url,
            headers=headers,
            timeout=timeout,
            proxy=settings.proxy_for(url),
            ssl=settings.ssl_context,
        ) as resp:
            answer = await resp.content.read(64 * 1024)
            result["brokerClientValidationUrlStatusCode"] = resp.status
            if resp.status in (401, 403):
                error = "Failed due to invalid credentials"
            elif not 200 <= resp.status < 300:
                error = "Status code is not 2xx"
            else:
                error = None
            if error is None:
                result["ok"] = True
            else:
                reason = agent_reason(answer)
                result.update(ok=False, error=f"{error}: {reason}" if reason else error)
    except TimeoutError:
        result.update(
            ok=False, error=f"timed out after {settings.BROKER_CLIENT_VALIDATION_TIMEOUT_MS} ms"
        )
    except aiohttp.ClientError as exc:
        result.update(ok=False, error=SECRETS.scrub(f"{type(exc).__name__}: {exc}"))
    result["maskedCredentials"] = mask_credentials(credential)
    return result


def _sanitise(url: str, settings: Settings) -> str:
    # show where the URL came from rather than the agent's address (snyk-broker does the same)
    if settings.CR_AGENT_URL and url.startswith(settings.CR_AGENT_URL):
        url = "${CR_AGENT_URL}" + url[len(settings.CR_AGENT_URL) :]
    return SECRETS.scrub(url)


def agent_reason(answer: bytes) -> str | None:
    """The reason in a failed answer: the agent's failing step and message, its error message,
    or the start of whatever else it sent (redacted, then cut to one short line)."""
    try:
        body = json.loads(answer)
    except (ValueError, UnicodeDecodeError):
        body = None
    reason: str | None = None
    if isinstance(body, dict):
        steps = [s for s in body.get("steps") or [] if isinstance(s, dict) and not s.get("ok")]
        error = body.get("error")
        if steps and body.get("failedStep"):
            reason = f"{body['failedStep']} failed ({body.get('reason', 'error')})"
            if steps[-1].get("message"):
                reason += f": {steps[-1]['message']}"
        elif isinstance(error, dict) and error.get("message"):
            reason = str(error["message"])
        elif isinstance(error, str):
            reason = error
        elif body.get("message"):
            reason = str(body["message"])
    if reason is None:
        if body is not None:
            return None  # JSON that gives no reason: snyk-broker's words alone
        reason = answer.decode("utf-8", "replace")
    # redact first, cut after: a cut could split a secret so that no registered form matches
    text = " ".join(SECRETS.scrub(reason).split())
    return text[:REASON_CHARS] or None
