"""Host names are not secrets (issue 10 item 10): answers and logs say which registry failed,
while the username, password and credential blob stay redacted."""

from __future__ import annotations

import io
import json

import pytest

from shared.logging import configure_logging
from shared.redaction import REDACTED, SECRETS
from tests.cr_agent.service.agent import AgentFactory, creds_for
from tests.support.registry import RunningRegistry

pytestmark = pytest.mark.registry


async def test_refused_password_names_the_registry_host(
    make_agent: AgentFactory, htpasswd_registry: RunningRegistry
) -> None:
    stream = io.StringIO()
    configure_logging("debug", service="cr-agent", stream=stream)
    try:
        agent = await make_agent()
        blob = creds_for(htpasswd_registry, password="wrong-Pw-5e6f7a")
        status, body = await agent.get("/validate-credentials", blob)
    finally:
        configure_logging("info", service="cr-agent")
        SECRETS.clear()
    host = htpasswd_registry.url.split("://", 1)[1]
    assert status == 401, body
    text = json.dumps(body)
    assert host in text and REDACTED not in text
    logged = stream.getvalue()
    assert host in logged
    assert f"{REDACTED}/v2" not in logged
    for secret in ("wrong-Pw-5e6f7a", blob):
        assert secret not in logged and secret not in text
