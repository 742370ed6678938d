"""No answer and no log line (at DEBUG, wire detail on) ever contains a secret."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import secrets
from collections.abc import Iterator

import pytest

from shared.credentials import build_credentials_json, encode_credentials
from shared.logging import configure_logging
from tests.cr_agent.service.agent import AgentFactory
from tests.cr_agent.service.images import debian_image, push_image
from tests.fakes.callback_receiver import CallbackReceiver
from tests.support.registry import RunningRegistry

pytestmark = pytest.mark.registry


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    configure_logging("debug", service="cr-agent", debug=True, stream=stream)
    yield stream
    root.handlers[:], level = saved
    root.setLevel(level)


async def test_secrets_never_reach_answers_or_logs(
    make_agent: AgentFactory,
    htpasswd_registry: RunningRegistry,
    unique_repo: str,
    captured_logs: io.StringIO,
) -> None:
    await push_image(htpasswd_registry, unique_repo, "1", debian_image())
    password = htpasswd_registry.password
    assert password
    good = encode_credentials(
        build_credentials_json(
            "generic-cr", base=htpasswd_registry.url, username="scanner", password=password
        )
    )
    wrong_password = "wrong-" + secrets.token_urlsafe(12)
    bad = encode_credentials(
        build_credentials_json(
            "generic-cr", base=htpasswd_registry.url, username="scanner", password=wrong_password
        )
    )
    receiver = await CallbackReceiver().start()
    agent = await make_agent()
    answers: list[str] = []
    try:
        for creds in (good, bad, "Bearer " + good):
            for path in (
                "/validate-credentials",
                "/list",
                f"/list/{unique_repo}",
                f"/list-with-metadata/{unique_repo}",
                f"/image-metadata/{unique_repo}/1",
                f"/get-state-identifier?image={unique_repo}:1",
                "/list?unknown=1",
            ):
                status, body = await agent.get(path, creds)
                answers.append(json.dumps(body))
        # credentials in the body this time, and a scan that runs and calls back
        status, body = await agent.post(
            "/scan",
            {"images": [f"{unique_repo}:1"], "credentials": good, "callbackUrl": receiver.url},
        )
        assert status == 202, body
        answers.append(json.dumps(body))
        await receiver.wait_for("/api/v2/import/done", wait_seconds=60)
        status, job = await agent.get(f"/scan/{body['jobId']}")
        answers.append(json.dumps(job))
        # a malformed blob that still contains the password in clear text
        leaky = base64.b64encode(f'{{"type":"generic-cr","password":"{password}"'.encode()).decode()
        status, body = await agent.get("/list", leaky)
        assert status == 400
        answers.append(json.dumps(body))
        await asyncio.sleep(0.1)  # late log lines land too: all are searched for secrets below
    finally:
        await receiver.stop()

    logs = captured_logs.getvalue()
    events = [json.loads(line).get("event") for line in logs.splitlines() if line.startswith("{")]
    assert "request" in events and "registry http" in events  # DEBUG captured the wire level
    lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert all("request_id" in line for line in lines if line.get("event") == "request")
    assert any(
        "job" in line and "request_id" in line
        for line in lines
        if line.get("event") == "job finished"
    )
    everything = logs + "\n".join(answers) + "".join(r.body.decode() for r in receiver.received)
    basic = base64.b64encode(f"scanner:{password}".encode()).decode()
    for secret in (password, wrong_password, good, bad, basic):
        assert secret not in everything
