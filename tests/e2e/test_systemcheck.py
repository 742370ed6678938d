"""/systemcheck through our broker client and the real agent to docker-registry (issue 10 item
11): a failed check says what the agent found, by step, and the client logs it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from deploy import stack as st
from tests.e2e.conftest import REGISTRY_PASSWORD, Registry

pytestmark = [pytest.mark.registry, pytest.mark.timeout(120)]


def test_failed_systemcheck_carries_the_agents_reason_and_is_logged(
    registry: Registry, agent: st.Service, e2e_dir: Path
) -> None:
    wrong = "Wrong-pw-31d2c4"
    client = st.start_broker_client(
        e2e_dir / f"systemcheck-{uuid.uuid4().hex[:6]}",
        token=str(uuid.uuid4()),
        server_url="http://127.0.0.1:9",  # no server needed for /systemcheck
        agent_url=agent.url,
        agent_secret=agent.env["CR_AGENT_SECRET"],
        registry={**registry.cr_env, "CR_PASSWORD": wrong},
        startup=st.Startup(ready=(200, 500)),
    )
    try:
        try:
            urllib.request.urlopen(f"{client.url}/systemcheck", timeout=30)
            raise AssertionError("systemcheck passed with a wrong password")
        except urllib.error.HTTPError as exc:
            assert exc.code == 500
            (check,) = json.loads(exc.read())
        assert check["ok"] is False
        assert check["brokerClientValidationUrlStatusCode"] == 401
        error = check["error"]
        assert error.startswith("Failed due to invalid credentials: authenticate failed")
        assert "credentials-refused" in error
        host = registry.running.url.split("://", 1)[1]
        assert host in error  # the agent's message names the registry (not a secret)
        log = client.log_text()
        (line,) = [json.loads(x) for x in log.splitlines() if "system check failed" in x]
        assert line["level"] == "warning" and line["error"] == error
        for secret in (wrong, REGISTRY_PASSWORD):
            assert secret not in log and secret not in error
    finally:
        client.stop()
