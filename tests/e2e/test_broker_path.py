"""End to end: the scanning service's requests go through /broker/<token>/... on a broker
server (snyk-broker from npm, or ours), our broker client and our agent to Debian's
docker-registry; the agent's CycloneDX results come back through the client's callback path
and the server's accept rules to the upstream receiver.
"""

from __future__ import annotations

import base64
import json
import urllib.request
import uuid
from typing import Any

import pytest
from packageurl import PackageURL

from deploy import stack as st
from deploy.upstream_receiver import UpstreamReceiver
from shared.credentials import build_credentials_json, decode_credentials, encode_credentials
from tests.e2e.conftest import CALLBACK_LIMIT, REGISTRY_PASSWORD, REGISTRY_USER, Broker, Registry

pytestmark = [pytest.mark.registry, pytest.mark.timeout(120)]


def components(result: dict[str, Any]) -> dict[str, str]:
    """name -> full version (``epoch:`` from the purl, as rpm writes it) of each package."""
    sbom = result["sbom"]
    assert sbom["bomFormat"] == "CycloneDX"
    found = {}
    for component in sbom.get("components", []):
        if not component.get("purl"):
            continue  # the operating-system component
        purl = PackageURL.from_string(component["purl"])
        epoch = (purl.qualifiers or {}).get("epoch")
        version = component["version"]
        found[component["name"]] = f"{epoch}:{version}" if epoch not in (None, "0") else version
    return found


def test_client_systemcheck_validates_the_registry_through_the_agent(broker: Broker) -> None:
    # broker client -> agent /systemcheck (with CR_CREDENTIALS) -> authenticate + list
    with urllib.request.urlopen(f"{broker.client.url}/systemcheck", timeout=30) as resp:
        assert resp.status == 200
        checks = json.loads(resp.read())
    assert checks and all(c["ok"] for c in checks), checks
    assert REGISTRY_PASSWORD not in json.dumps(checks)


def test_list_repositories(broker: Broker, registry: Registry) -> None:
    status, body = broker.request("GET", "/list")
    assert status == 200, body
    assert isinstance(body, dict)
    assert set(body["repositories"]) >= {s.repository for s in registry.images}


def test_list_tags_with_metadata(broker: Broker, registry: Registry) -> None:
    sample = registry.images[0]
    status, body = broker.request("GET", f"/list-with-metadata/{sample.repository}")
    assert status == 200, body
    assert isinstance(body, dict)
    assert body["repository"].endswith(sample.repository)
    tags = {t["tag"]: t for t in body["tags"]}
    assert set(tags) == {sample.tag}
    assert tags[sample.tag]["digest"] == registry.digests[sample.reference]


def test_scan_through_the_broker_reaches_upstream(
    broker: Broker, registry: Registry, receiver: UpstreamReceiver
) -> None:
    request_id = f"e2e-{uuid.uuid4()}"
    job = st.request_scan(
        broker.server_url,
        broker.token,
        [s.reference for s in registry.images],
        request_id=request_id,
    )
    done = receiver.wait_for_job(job, timeout=90)
    assert done["status"] == "done"
    assert (done["succeeded"], done["failed"]) == (len(registry.images), 0)
    results = {r["image"]: r for r in receiver.job_results(job)}
    assert set(results) == {s.reference for s in registry.images}
    for sample in registry.images:
        result = results[sample.reference]
        assert result["status"] == "success", result.get("error")
        assert result["requestId"] == request_id
        assert result["format"] == "cyclonedx-json"
        assert result["distro"]["id"] == sample.distro_id
        assert result["packageCount"] == len(sample.packages)
        assert components(result) == sample.packages, sample.reference
    # the callbacks came through the broker server, which marks them with the token
    callbacks = [
        r
        for r in receiver.requests
        if r.path.startswith("/api/v2/import/") and r.json().get("jobId") == job
    ]
    assert len({r.headers.get("idempotency-key") for r in callbacks}) == len(registry.images) + 1
    assert callbacks and all(r.headers.get("x-broker-token") == broker.token for r in callbacks)


def test_large_result_arrives_split_and_whole(
    broker: Broker, registry: Registry, receiver: UpstreamReceiver
) -> None:
    big = registry.big
    job = st.request_scan(broker.server_url, broker.token, [big.reference])
    done = receiver.wait_for_job(job, timeout=60)
    assert done["succeeded"] == 1, done
    bodies = [
        r.body
        for r in receiver.requests
        if r.path == "/api/v2/import/result" and r.json().get("jobId") == job
    ]
    assert len(bodies) >= 3, "expected the SBOM to be split into several callbacks"
    assert all(len(b) <= CALLBACK_LIMIT for b in bodies)
    (result,) = receiver.job_results(job)
    assert components(result) == big.packages


def test_image_metadata_and_state_identifier(broker: Broker, registry: Registry) -> None:
    sample = registry.images[0]
    digest = registry.digests[sample.reference]
    status, meta = broker.request("GET", f"/image-metadata/{sample.repository}/{sample.tag}")
    assert status == 200, meta
    assert isinstance(meta, dict)
    assert meta["digest"] == digest
    assert len(meta["layers"]) == len(sample.image.layer_digests)
    status, state = broker.request("GET", f"/get-state-identifier?image={sample.reference}")
    assert status == 200, state
    assert isinstance(state, dict)
    assert state["digest"] == digest and state["stateIdentifier"].startswith("sha256:")


def test_status_path_the_agent_advertises_is_allowed(broker: Broker, registry: Registry) -> None:
    """Issue 10 item 6: ``statusPath`` from POST /scan answers through the shipped filter."""
    status, answer = broker.request(
        "POST", "/scan", body=st.scan_body([registry.images[0].reference])
    )
    assert status == 202, answer
    assert isinstance(answer, dict)
    status, job = broker.request("GET", answer["statusPath"])
    assert status == 200, job
    assert isinstance(job, dict)
    assert job["jobId"] == answer["jobId"]


def test_credentials_in_the_body_via_broker_var_sub(
    broker: Broker, registry: Registry, receiver: UpstreamReceiver
) -> None:
    sample = registry.images[-1]
    body = {
        "images": [sample.reference],
        "credentials": "${CR_CREDENTIALS}",
        "callbackUrl": "${BROKER_CLIENT_URL}",
        "BROKER_VAR_SUB": ["credentials", "callbackUrl"],
    }
    status, answer = broker.request("POST", "/scan", body=body, credentials=False)
    assert status == 202, answer
    assert isinstance(answer, dict)
    done = receiver.wait_for_job(answer["jobId"], timeout=60)
    assert done["succeeded"] == 1
    (result,) = receiver.job_results(answer["jobId"])
    assert components(result) == sample.packages


def test_missing_image_is_reported_through_the_callbacks(
    broker: Broker, registry: Registry, receiver: UpstreamReceiver
) -> None:
    good = registry.images[0]
    job = st.request_scan(
        broker.server_url, broker.token, [good.reference, "demo/does-not-exist:1"]
    )
    done = receiver.wait_for_job(job, timeout=60)
    assert (done["status"], done["succeeded"], done["failed"]) == ("done", 1, 1)
    results = {r["image"]: r for r in receiver.job_results(job)}
    assert results[good.reference]["status"] == "success"
    failed = results["demo/does-not-exist:1"]
    assert failed["status"] == "error" and "sbom" not in failed
    assert failed["error"]["code"] and failed["error"]["message"]


def test_discover_v1_callback_path(
    broker: Broker, registry: Registry, receiver: UpstreamReceiver
) -> None:
    sample = registry.images[1]
    status, answer = broker.request(
        "POST", "/discover", body=st.scan_body([sample.reference], request_id="discover-e2e")
    )
    assert status == 202, answer
    assert isinstance(answer, dict)
    job = answer["jobId"]
    path = "/api/v1/recurring-tests/dependencies"

    def arrived() -> list[dict[str, Any]]:
        return [
            r.json()
            for r in list(receiver.requests)
            if r.path == path and r.json().get("jobId") == job
        ]

    receiver.wait_until(lambda: bool(arrived()), 60, f"{path} callback of job {job}")
    (result,) = arrived()
    assert result["status"] == "success" and result["requestId"] == "discover-e2e"
    assert components(result) == sample.packages


def test_without_server_credentials_the_agent_gets_the_clients(
    broker: Broker, registry: Registry
) -> None:
    # the credentials are the broker client's alone: nothing from the server is needed
    status, body = broker.request("GET", "/list", credentials=False)
    assert status == 200, body
    assert isinstance(body, dict)
    assert set(body["repositories"]) >= {s.repository for s in registry.images}


def test_server_written_credentials_cannot_point_the_agent_elsewhere(
    broker: Broker, registry: Registry
) -> None:
    """Issue 10 item 2: a literal blob naming an internal host, in the header and the body."""
    internal = UpstreamReceiver().start()  # an internal HTTP service the attacker wants read
    try:
        blob = encode_credentials(
            build_credentials_json("generic-cr", base=internal.url, username="a", password="b")
        )
        status, body = broker.request(
            "GET", "/list", headers={"authorization": blob}, credentials=False
        )
        assert status == 200, body
        assert isinstance(body, dict)
        assert set(body["repositories"]) >= {s.repository for s in registry.images}
        sample = registry.images[0]
        status, meta = broker.request(
            "POST",
            "/scan",
            body={**st.scan_body([sample.reference]), "credentials": blob},
            credentials=False,
        )
        assert status == 202, meta
        assert internal.requests == []
    finally:
        internal.stop()


def test_echoed_request_id_keeps_client_variables_literal(
    broker: Broker, registry: Registry, receiver: UpstreamReceiver
) -> None:
    """Issue 10 item 4: the agent echoes requestId upstream; it must not carry the token.

    Two layers hold: the client leaves the placeholders literal (not on its substitution
    allow-list), and the agent refuses a requestId that is not a plain identifier, so nothing
    is scanned and nothing is echoed."""
    sample = registry.images[0]
    body = st.scan_body([sample.reference])
    body["requestId"] = "${BROKER_TOKEN}:${CR_PASSWORD}"
    body["BROKER_VAR_SUB"] = ["callbackUrl", "requestId"]
    before = len(receiver.all_bytes())
    status, answer = broker.request("POST", "/scan", body=body)
    assert status == 400, answer
    assert isinstance(answer, dict)
    assert answer["error"]["field"] == "requestId"
    text = json.dumps(answer)
    # the literal placeholder may be quoted back; neither value it names ever is
    assert REGISTRY_PASSWORD not in text and broker.token not in text
    assert REGISTRY_PASSWORD.encode() not in receiver.all_bytes()[before:]


def test_registry_api_is_not_reachable_through_the_broker(broker: Broker) -> None:
    status, body = broker.request("GET", "/v2/_catalog")
    assert status == 401, body
    assert "FILTER_BLOCKED" in str(body) or "blocked" in str(body).lower()


def test_no_registry_secret_reaches_upstream_or_any_log(
    broker: Broker, registry: Registry, receiver: UpstreamReceiver
) -> None:
    # runs after the scans of this module (pytest keeps file order)
    assert receiver.dones, "no scan reached the receiver, nothing to check"
    blob = encode_credentials(
        build_credentials_json(
            "generic-cr",
            base=registry.running.url,
            username=REGISTRY_USER,
            password=REGISTRY_PASSWORD,
        )
    )
    assert decode_credentials(blob).password == REGISTRY_PASSWORD
    basic = base64.b64encode(f"{REGISTRY_USER}:{REGISTRY_PASSWORD}".encode()).decode()
    secrets_ = [REGISTRY_PASSWORD, REGISTRY_USER, blob.strip(), basic]
    seen = receiver.all_bytes()
    for secret in secrets_:
        assert secret.encode() not in seen
    for log in broker.logs:
        text = log.read_text(errors="replace")
        assert text, f"{log} is empty"
        for secret in secrets_:
            assert secret not in text, f"{log.name} contains a registry secret"
