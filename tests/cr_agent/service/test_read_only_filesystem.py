"""Issue 10 item 8: with a read-only root filesystem the agent scans without a layer cache
instead of failing every scan, and an internal error leaves a traceback in the log only."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from cr_agent.service.app import STATE
from tests.cr_agent.service.agent import AgentFactory, creds_for
from tests.cr_agent.service.images import debian_image, push_image
from tests.cr_agent.service.test_no_secrets import captured_logs  # noqa: F401 - fixture
from tests.fakes.callback_receiver import CallbackReceiver
from tests.support.read_only import assert_unwritable, read_only_dir
from tests.support.registry import RunningRegistry

pytestmark = pytest.mark.registry

DONE = "/api/v2/import/done"
RESULT = "/api/v2/import/result"


def log_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]


async def test_scans_succeed_when_the_layer_cache_directory_is_read_only(
    make_agent: AgentFactory,
    plain_registry: RunningRegistry,
    unique_repo: str,
    tmp_path: Path,
    captured_logs: io.StringIO,  # noqa: F811
) -> None:
    await push_image(plain_registry, unique_repo, "1", debian_image(3))
    receiver = await CallbackReceiver().start()
    try:
        # the directory exists (as in an image), so mkdir succeeds; writing into it does not
        with read_only_dir(tmp_path / "layer-cache") as directory:
            assert_unwritable(directory)
            agent = await make_agent(LAYER_CACHE_DIR=directory)
            assert agent.app[STATE].jobs.scanner.cache is None
            body = {"images": [f"{unique_repo}:1"], "callbackUrl": receiver.url}
            status, answer = await agent.post("/scan", body, creds_for(plain_registry))
            assert status == 202, answer
            await receiver.wait_for(DONE)
        result = receiver.on(RESULT)[0].json()
        assert result["status"] == "success", result
        assert result["packageCount"] == 3
    finally:
        await receiver.stop()
    warnings = [e for e in log_lines(captured_logs) if "layer cache unavailable" in e["event"]]
    assert warnings and warnings[0]["directory"] == str(tmp_path / "layer-cache")


async def test_an_internal_error_is_logged_with_its_traceback_and_answered_without(
    make_agent: AgentFactory,
    plain_registry: RunningRegistry,
    monkeypatch: pytest.MonkeyPatch,
    captured_logs: io.StringIO,  # noqa: F811
) -> None:
    from cr_agent.service import registry_session

    async def broken(self: object, **_: object) -> list[str]:
        raise RuntimeError("a bug deep inside the listing")

    monkeypatch.setattr(registry_session.RegistrySession, "list_repositories", broken)
    agent = await make_agent()
    status, answer = await agent.get("/list", creds_for(plain_registry))
    assert status == 500
    assert answer["error"] == {"code": "internal", "message": "internal error (RuntimeError)"}
    assert "Traceback" not in json.dumps(answer)
    [line] = [e for e in log_lines(captured_logs) if e["event"] == "request failed"]
    assert line["level"] == "error"
    assert "Traceback" in line["exception"] and "a bug deep inside the listing" in line["exception"]
    assert "list_repositories" in line["exception"]


class BrokenScanner:
    async def scan(self, creds: object, image: str, *, platform: str, sbom_format: str) -> Any:
        raise RuntimeError("a bug deep inside the scan")


async def test_an_internal_error_in_a_scan_is_logged_with_its_traceback(
    make_agent: AgentFactory,
    plain_registry: RunningRegistry,
    captured_logs: io.StringIO,  # noqa: F811
) -> None:
    receiver = await CallbackReceiver().start()
    try:
        agent = await make_agent(scanner=BrokenScanner())
        body = {"images": ["repo:1"], "callbackUrl": receiver.url}
        status, answer = await agent.post("/scan", body, creds_for(plain_registry))
        assert status == 202, answer
        await receiver.wait_for(DONE)
        error = receiver.on(RESULT)[0].json()["error"]
    finally:
        await receiver.stop()
    assert error == {"code": "internal", "message": "internal error (RuntimeError)"}
    [line] = [e for e in log_lines(captured_logs) if e["event"] == "image scan failed"]
    assert line["level"] == "error" and "a bug deep inside the scan" in line["exception"]
    assert line["exception"].startswith("Traceback")
