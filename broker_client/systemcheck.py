"""``/systemcheck``: can the client reach the agent (and the agent the registry) with our credentials?

Calls ``BROKER_CLIENT_VALIDATION_URL`` once per configured credential (snyk-broker's order of
precedence; ``CR_CREDENTIALS`` as the Authorization value when nothing else is set, as the CRA
image does). Unlike snyk-broker every credential counts: 200 only when all checks pass.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from broker_client.agent_secret import add_agent_secret
from broker_client.settings import Settings
from shared.redaction import SECRETS, mask_credentials


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
            await resp.read()
            result["brokerClientValidationUrlStatusCode"] = resp.status
            if resp.status in (401, 403):
                result.update(ok=False, error="Failed due to invalid credentials")
            elif not 200 <= resp.status < 300:
                result.update(ok=False, error="Status code is not 2xx")
            else:
                result["ok"] = True
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
