"""POST /scan end to end on loopback: real registry, real scan, real callback receiver."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from cr_agent.service.app import STATE
from cr_agent.service.image_scanner import RegistryImageScanner
from cr_agent.service.models import DoneCallback, ResultCallback
from deploy.processes import reserve_port
from tests.cr_agent.service.agent import Agent, AgentFactory, creds_for
from tests.cr_agent.service.images import debian_image, push_image, push_multiarch
from tests.fakes.callback_receiver import CallbackReceiver
from tests.support.eventually import eventually_async
from tests.support.registry import RunningRegistry

pytestmark = pytest.mark.registry

RESULT = "/api/v2/import/result"
DONE = "/api/v2/import/done"


@pytest.fixture
async def receiver() -> Any:
    rec = await CallbackReceiver().start()
    yield rec
    await rec.stop()


def component_names(body: dict[str, Any]) -> set[str]:
    return {c["name"] for c in body["sbom"].get("components", [])}


async def test_scan_answers_202_then_posts_cyclonedx_result_and_done(
    agent: Agent, plain_registry: RunningRegistry, unique_repo: str, receiver: CallbackReceiver
) -> None:
    digest = await push_image(plain_registry, unique_repo, "1.0", debian_image(3))
    status, accepted = await agent.post(
        "/scan",
        {
            "images": [f"{unique_repo}:1.0"],
            "callbackUrl": receiver.url,
            "requestId": "req-1",
            "context": {"orgId": "o1"},
        },
        creds_for(plain_registry),
    )
    assert status == 202, accepted
    assert accepted["status"] == "queued" and accepted["images"] == 1

    [done] = await receiver.wait_for(DONE)
    [result] = receiver.on(RESULT)
    body = result.json()
    # the callbacks are exactly what docs/openapi.json describes (unknown fields refused)
    ResultCallback.model_validate(body)
    DoneCallback.model_validate(done.json())
    assert body["status"] == "success"
    assert body["digest"] == digest
    assert body["format"] == "cyclonedx-json"
    assert body["requestId"] == "req-1" and body["context"] == {"orgId": "o1"}
    assert body["distro"]["id"] == "debian"
    assert body["packageCount"] == 3
    assert body["sbom"]["bomFormat"] == "CycloneDX"
    assert {"pkg0", "pkg1", "pkg2"} <= component_names(body)
    assert result.headers["Idempotency-Key"]
    assert receiver.received.index(result) < receiver.received.index(done)

    done_body = done.json()
    assert done_body["jobId"] == accepted["jobId"]
    assert (done_body["succeeded"], done_body["failed"]) == (1, 0)

    status, job = await agent.get(accepted["statusPath"])
    assert status == 200
    assert job["status"] == "done" and job["images"][0]["packages"] == 3


async def test_missing_image_gives_an_error_result_and_a_failed_done(
    agent: Agent, plain_registry: RunningRegistry, unique_repo: str, receiver: CallbackReceiver
) -> None:
    status, accepted = await agent.post(
        "/scan",
        {"images": [f"{unique_repo}:nope"], "callbackUrl": receiver.url},
        creds_for(plain_registry),
    )
    assert status == 202
    [done] = await receiver.wait_for(DONE)
    result = receiver.on(RESULT)[0].json()
    assert result["status"] == "error"
    assert result["error"]["code"] == "not-found" and result["error"]["step"] == "manifest"
    assert done.json()["status"] == "failed"
    assert done.json()["jobId"] == accepted["jobId"]


async def test_image_over_the_size_cap_is_refused_from_its_manifest(
    make_agent: AgentFactory,
    plain_registry: RunningRegistry,
    unique_repo: str,
    receiver: CallbackReceiver,
) -> None:
    agent = await make_agent(MAX_IMAGE_SIZE_IN_BYTES=100)
    await push_image(plain_registry, unique_repo, "big", debian_image(50))
    await agent.post(
        "/scan",
        {"images": [f"{unique_repo}:big"], "callbackUrl": receiver.url},
        creds_for(plain_registry),
    )
    await receiver.wait_for(DONE)
    result = receiver.on(RESULT)[0].json()
    assert result["error"]["code"] == "image-too-large"
    assert result["error"]["step"] == "size"
    assert "MAX_IMAGE_SIZE_IN_BYTES" in result["error"]["message"]


class CountingScanner(RegistryImageScanner):
    """The real scanner, counting how many scans run at once (and holding each a moment)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.running = 0
        self.peak = 0

    async def scan(self, *args: Any, **kwargs: Any) -> Any:
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await asyncio.sleep(0.2)  # a slow scan: jobs overlap if the limit lets them
            return await super().scan(*args, **kwargs)
        finally:
            self.running -= 1


@pytest.mark.parametrize("limit", [1, 2])
async def test_max_active_operations_bounds_concurrent_scans(
    make_agent: AgentFactory,
    plain_registry: RunningRegistry,
    unique_repo: str,
    receiver: CallbackReceiver,
    limit: int,
) -> None:
    probe = await make_agent()
    scanner = CountingScanner(probe.app[STATE].type_context, 1 << 30)
    agent = await make_agent(scanner=scanner, MAX_ACTIVE_OPERATIONS=limit)
    for tag in "abcde":
        await push_image(plain_registry, unique_repo, tag, debian_image(1, marker=tag))
    creds = creds_for(plain_registry)
    # two jobs at once: the limit holds across jobs, not only within one
    await agent.post(
        "/scan",
        {"images": [f"{unique_repo}:{t}" for t in "abc"], "callbackUrl": receiver.url},
        creds,
    )
    await agent.post(
        "/scan",
        {"images": [f"{unique_repo}:{t}" for t in "de"], "callbackUrl": receiver.url},
        creds,
    )
    await receiver.wait_for(DONE, 2)
    assert len(receiver.on(RESULT)) == 5
    assert all(r.json()["status"] == "success" for r in receiver.on(RESULT))
    assert scanner.peak == limit


async def test_callback_failures_are_retried_with_the_same_idempotency_key(
    agent: Agent, plain_registry: RunningRegistry, unique_repo: str
) -> None:
    receiver = await CallbackReceiver(fail_first=2, fail_status=503).start()
    try:
        await push_image(plain_registry, unique_repo, "1", debian_image(1))
        await agent.post(
            "/scan",
            {"images": [f"{unique_repo}:1"], "callbackUrl": receiver.url},
            creds_for(plain_registry),
        )
        await receiver.wait_for(DONE)
        assert receiver.refused == 2
        assert len(receiver.on(RESULT)) == 1
    finally:
        await receiver.stop()


async def test_undeliverable_callbacks_are_spooled_and_delivered_in_order_later(
    make_agent: AgentFactory, plain_registry: RunningRegistry, unique_repo: str, tmp_path: Path
) -> None:
    reserved = reserve_port()  # the receiver listens here later
    port = reserved.getsockname()[1]
    agent = await make_agent(CALLBACK_ATTEMPTS=2, CALLBACK_RETRY_SECONDS=0.3)
    await push_image(plain_registry, unique_repo, "1", debian_image(2))
    status, accepted = await agent.post(
        "/scan",
        {"images": [f"{unique_repo}:1"], "callbackUrl": f"http://127.0.0.1:{port}"},
        creds_for(plain_registry),
    )
    assert status == 202

    async def finished() -> dict[str, Any]:
        _, job = await agent.get(accepted["statusPath"])
        assert job["status"] in ("done", "failed"), job
        return job

    job = await eventually_async(finished)
    assert job["callbacksSpooled"] == 2 and job["callbacksDelivered"] == 0
    assert job["callbacksPending"] == 2
    spooled = sorted((tmp_path / "spool").glob("*.json"))
    assert len(spooled) == 2
    assert all("password" not in p.read_text() for p in spooled)
    _, health = await agent.get("/healthcheck")
    assert health["spooledCallbacks"] == 2

    receiver = await CallbackReceiver().start(reserved)
    try:
        await receiver.wait_for(DONE, wait_seconds=30)
        assert [r.path for r in receiver.received] == [RESULT, DONE]
        assert receiver.on(RESULT)[0].json()["packageCount"] == 2
        # the file goes once the POST has returned
        await eventually_async(lambda: not list((tmp_path / "spool").glob("*.json")))
        _, job = await agent.get(accepted["statusPath"])
        assert job["callbacksPending"] == 0
    finally:
        await receiver.stop()


async def test_spool_survives_a_restart(
    make_agent: AgentFactory, plain_registry: RunningRegistry, unique_repo: str, tmp_path: Path
) -> None:
    reserved = reserve_port()  # the receiver listens here later
    port = reserved.getsockname()[1]
    first = await make_agent(CALLBACK_ATTEMPTS=1, CALLBACK_RETRY_SECONDS=60)
    await push_image(plain_registry, unique_repo, "1", debian_image(1))
    await first.post(
        "/scan",
        {"images": [f"{unique_repo}:1"], "callbackUrl": f"http://127.0.0.1:{port}"},
        creds_for(plain_registry),
    )
    await eventually_async(lambda: len(list((tmp_path / "spool").glob("*.json"))) == 2)
    await first.server.close()

    receiver = await CallbackReceiver().start(reserved)
    try:
        await make_agent(CALLBACK_RETRY_SECONDS=60)  # same SPOOL_DIR: drains at start-up
        await receiver.wait_for(DONE, wait_seconds=30)
        assert [r.path for r in receiver.received] == [RESULT, DONE]
    finally:
        await receiver.stop()


async def test_large_results_are_split_under_the_body_limit_never_truncated(
    make_agent: AgentFactory,
    plain_registry: RunningRegistry,
    unique_repo: str,
    receiver: CallbackReceiver,
) -> None:
    limit = 16 * 1024
    agent = await make_agent(MAX_CALLBACK_BODY_BYTES=limit)
    await push_image(plain_registry, unique_repo, "many", debian_image(120))
    await agent.post(
        "/scan",
        {"images": [f"{unique_repo}:many"], "callbackUrl": receiver.url},
        creds_for(plain_registry),
    )
    await receiver.wait_for(DONE)
    parts = receiver.on(RESULT)
    assert len(parts) > 1
    assert all(len(p.body) <= limit for p in parts)
    bodies = sorted((p.json() for p in parts), key=lambda b: b["chunk"]["index"])
    for b in bodies:
        ResultCallback.model_validate(b)
    assert {b["chunk"]["count"] for b in bodies} == {len(parts)}
    assert len({b["resultId"] for b in bodies}) == 1
    assert len({p.headers["Idempotency-Key"] for p in parts}) == len(parts)
    fields = bodies[0]["chunk"]["fields"]
    assert "components" in fields
    joined = {f: [item for b in bodies for item in b["sbom"][f]] for f in fields}
    names = [c["name"] for c in joined["components"] if c.get("type") == "library"]
    assert sorted(names) == sorted(f"pkg{i}" for i in range(120))  # each exactly once
    assert bodies[0]["packageCount"] == 120


async def test_discover_posts_to_the_v1_path_and_api_host_prefix_is_honoured(
    agent: Agent, plain_registry: RunningRegistry, unique_repo: str, receiver: CallbackReceiver
) -> None:
    await push_image(plain_registry, unique_repo, "1", debian_image(1))
    creds = creds_for(plain_registry)
    await agent.post(
        "/discover", {"images": [f"{unique_repo}:1"], "callbackUrl": receiver.url}, creds
    )
    [result] = await receiver.wait_for("/api/v1/recurring-tests/dependencies")
    assert result.json()["status"] == "success"

    await agent.post(
        "/scan",
        {
            "images": [f"{unique_repo}:1"],
            "callbackUrl": receiver.url,
            "callbackApiPrefix": "",
            "format": "spdx-json",
        },
        creds,
    )
    await receiver.wait_for("/v2/import/done")
    spdx = receiver.on("/v2/import/result")[0].json()
    assert spdx["format"] == "spdx-json" and spdx["sbom"]["spdxVersion"].startswith("SPDX-2")
    assert not receiver.on(DONE)  # the api-host variant was used, not /api/...


async def test_sbom_of_a_multi_platform_index_names_the_tag_asked_for_and_both_digests(
    agent: Agent, plain_registry: RunningRegistry, unique_repo: str, receiver: CallbackReceiver
) -> None:
    index = await push_multiarch(plain_registry, unique_repo, "multi")
    arm = index.children[1]
    creds = creds_for(plain_registry)
    for sbom_format in ("native-json", "cyclonedx-json"):
        await agent.post(
            "/scan",
            {
                "images": [f"{unique_repo}:multi"],
                "callbackUrl": receiver.url,
                "platform": "linux/arm64",
                "format": sbom_format,
            },
            creds,
        )
        await receiver.wait_for(DONE, count=1 if sbom_format == "native-json" else 2)
    native, cyclonedx = (r.json() for r in receiver.on(RESULT))
    assert native["digest"] == cyclonedx["digest"] == index.digest
    assert native["platform"] == "linux/arm64" and native["packageCount"] == 4
    image = native["sbom"]["image"]
    assert image["reference"] == "multi"
    assert image["indexDigest"] == index.digest
    assert image["digest"] == arm.digest
    component = cyclonedx["sbom"]["metadata"]["component"]
    assert component["version"] == arm.digest
    properties = {p["name"]: p["value"] for p in component["properties"]}
    assert properties["crbroker:image:reference"] == "multi"
    assert properties["crbroker:image:indexDigest"] == index.digest
    assert properties["crbroker:image:platform"] == "linux/arm64"


async def test_callback_url_from_settings_when_the_request_has_none(
    make_agent: AgentFactory,
    plain_registry: RunningRegistry,
    unique_repo: str,
    receiver: CallbackReceiver,
) -> None:
    agent = await make_agent(BROKER_CLIENT_URL=receiver.url)
    await push_image(plain_registry, unique_repo, "1", debian_image(1))
    blob = creds_for(plain_registry)
    status, _ = await agent.post(
        "/scan", {"images": [f"{unique_repo}:1"], "credentials": blob}, None
    )
    assert status == 202
    await receiver.wait_for(DONE)
    assert json.loads(receiver.on(RESULT)[0].body)["status"] == "success"


class StalledScanner(RegistryImageScanner):
    """The real scanner, but every scan first waits long enough for a shutdown to hit it."""

    async def scan(self, *args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(3600)
        return await super().scan(*args, **kwargs)


async def test_shutdown_spools_what_a_running_job_still_owes(
    make_agent: AgentFactory, plain_registry: RunningRegistry, unique_repo: str, tmp_path: Path
) -> None:
    reserved = reserve_port()  # the receiver listens here later
    port = reserved.getsockname()[1]
    probe = await make_agent()
    agent = await make_agent(scanner=StalledScanner(probe.app[STATE].type_context, 1 << 30))
    status, accepted = await agent.post(
        "/scan",
        {
            "images": [f"{unique_repo}:a", f"{unique_repo}:b"],
            "callbackUrl": f"http://127.0.0.1:{port}",
        },
        creds_for(plain_registry),
    )
    assert status == 202

    async def running() -> None:
        _, job = await agent.get(accepted["statusPath"])
        assert job["status"] == "running", job

    await eventually_async(running)  # the scan has started and stalls
    await agent.server.close()  # what SIGTERM does: app cleanup
    assert len(list((tmp_path / "spool").glob("*.json"))) == 3  # two results and the done

    receiver = await CallbackReceiver().start(reserved)
    try:
        await make_agent(CALLBACK_RETRY_SECONDS=60)
        [done] = await receiver.wait_for(DONE, wait_seconds=30)
        results = [r.json() for r in receiver.on(RESULT)]
        # the first image was scanning, the second never started: both say so
        assert [r["error"]["code"] for r in results] == ["agent-stopped", "not-run"]
        assert [r["error"]["step"] for r in results] == ["scan", "queue"]
        assert done.json()["jobId"] == accepted["jobId"] and done.json()["status"] == "failed"
    finally:
        await receiver.stop()


async def test_too_many_waiting_images_is_a_503_not_a_growing_queue(
    make_agent: AgentFactory, plain_registry: RunningRegistry, unique_repo: str
) -> None:
    probe = await make_agent()
    agent = await make_agent(
        scanner=StalledScanner(probe.app[STATE].type_context, 1 << 30), MAX_QUEUED_IMAGES=3
    )
    creds = creds_for(plain_registry)
    body = {"images": [f"{unique_repo}:a", f"{unique_repo}:b"], "callbackUrl": "http://127.0.0.1:9"}
    status, _ = await agent.post("/scan", body, creds)
    assert status == 202
    status, answer = await agent.post("/scan", body, creds)
    assert status == 503
    assert answer["error"]["code"] == "busy" and "MAX_QUEUED_IMAGES" in answer["error"]["message"]


async def test_layer_cache_serves_a_rescan(
    make_agent: AgentFactory,
    plain_registry: RunningRegistry,
    unique_repo: str,
    receiver: CallbackReceiver,
    tmp_path: Path,
) -> None:
    agent = await make_agent(LAYER_CACHE_DIR=tmp_path / "layers")
    await push_image(plain_registry, unique_repo, "1", debian_image(4))
    creds = creds_for(plain_registry)
    for round_ in (1, 2):
        await agent.post(
            "/scan", {"images": [f"{unique_repo}:1"], "callbackUrl": receiver.url}, creds
        )
        await receiver.wait_for(DONE, round_)
    first, second = (r.json() for r in receiver.on(RESULT))
    assert first["packageCount"] == second["packageCount"] == 4
    assert component_names(first) == component_names(second)
    scanner = agent.app[STATE].jobs.scanner
    assert scanner.cache is not None and scanner.cache.hits >= 2


async def test_metrics_count_scans_callbacks_and_requests(
    agent: Agent, plain_registry: RunningRegistry, unique_repo: str, receiver: CallbackReceiver
) -> None:
    await push_image(plain_registry, unique_repo, "1", debian_image(1))
    creds = creds_for(plain_registry)
    await agent.post(
        "/scan",
        {"images": [f"{unique_repo}:1", f"{unique_repo}:gone"], "callbackUrl": receiver.url},
        creds,
    )
    await receiver.wait_for(DONE)
    async with agent.http.get(agent.url + "/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = await resp.text()
    assert 'cr_agent_scans_total{outcome="succeeded"} 1.0' in text
    assert 'cr_agent_scans_total{outcome="failed"} 1.0' in text
    assert 'cr_agent_callbacks_total{fate="delivered"} 3.0' in text  # two results, one done
    assert 'cr_agent_requests_total{route="/scan",status="202"} 1.0' in text
    assert "cr_agent_spooled_callbacks 0.0" in text


async def test_empty_substituted_fields_fall_back_to_header_and_settings(
    make_agent: AgentFactory,
    plain_registry: RunningRegistry,
    unique_repo: str,
    receiver: CallbackReceiver,
) -> None:
    # what the broker client sends when ${VAR} names nothing it knows: empty strings
    agent = await make_agent(BROKER_CLIENT_URL=receiver.url)
    await push_image(plain_registry, unique_repo, "1", debian_image(1))
    body = {"images": [f"{unique_repo}:1"], "credentials": "", "callbackUrl": " "}
    status, answer = await agent.post("/scan", body, creds_for(plain_registry))
    assert status == 202, answer
    await receiver.wait_for(DONE)
    assert receiver.on(RESULT)[0].json()["status"] == "success"
