"""The control plane end to end: ``crbroker-server`` (relay + control plane in one process),
a broker client (ours, or the real snyk-broker from npm) and our agent in front of Debian's
docker-registry with password auth.

A brokered integration is created over REST; three images are imported with Snyk's v1 call;
the agent scans them through the relay, its callbacks come back through the relay to the
control plane; the projects list shows them with their types; the SBOM download equals what
the agent produced; a re-test adds a second scan to the history.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from deploy import stack as st
from deploy.control_plane_client import ControlPlaneClient
from tests.e2e.conftest import (
    AGENT_MAX_ACTIVE,
    REGISTRY_PASSWORD,
    REGISTRY_USER,
    Registry,
    agent_env,
    start_control_plane_with_agent,
)
from tests.support import snyk_broker

pytestmark = [pytest.mark.registry, pytest.mark.timeout(240)]

#: sample distro id -> the project type a scan must find
TYPES = {"debian": "deb", "alpine": "apk", "rocky": "rpm", "fedora": "rpm", "rhel": "rpm"}


@dataclass
class Plane:
    flavour: str
    server: st.CrbrokerServer
    api: ControlPlaneClient
    org: str
    integration: str
    logs: list[Path]


def _client(
    flavour: str,
    workdir: Path,
    token: str,
    server: st.Service,
    registry: Registry,
    stoppers: list[Callable[[], None]],
) -> tuple[st.Service, st.Service]:
    """The broker client of ``flavour`` and the agent behind it, which calls back to it only.

    snyk-broker's client cannot send the agent's shared secret, so its agent runs with
    ``CR_AGENT_AUTH=disabled`` (as the README says to run it behind snyk's client)."""

    def client(port: int, agent: st.Service) -> st.Service:
        if flavour == "snyk-client":
            snyk_broker.require_snyk_broker()
            return snyk_broker.start_client(
                workdir,
                token=token,
                port=port,
                server_url=server.url,
                env={
                    "CR_AGENT_URL": agent.url,
                    **registry.cr_env,
                    "CR_CREDENTIALS": _credentials(registry),
                },
                wait_connected=False,
            )
        return st.start_broker_client(
            workdir,
            token=token,
            port=port,
            server_url=server.url,
            agent_url=agent.url,
            agent_secret=agent.env["CR_AGENT_SECRET"],
            registry=registry.cr_env,
            startup=st.Startup(ready=(200, 500)),
        )

    no_secret = {"CR_AGENT_AUTH": "disabled"} if flavour == "snyk-client" else {}
    agent, started = st.start_agent_calling_back(
        workdir / "agent", client, max_active=AGENT_MAX_ACTIVE, env=agent_env(**no_secret)
    )
    stoppers.append(agent.stop)
    return started, agent


def _credentials(registry: Registry) -> str:
    from shared.credentials import build_credentials_json, encode_credentials

    return encode_credentials(
        build_credentials_json(
            "generic-cr",
            base=registry.running.url,
            username=REGISTRY_USER,
            password=REGISTRY_PASSWORD,
        )
    ).strip()


@pytest.fixture(
    scope="module",
    params=["our-client", pytest.param("snyk-client", marks=pytest.mark.interop)],
)
def plane(request: pytest.FixtureRequest, registry: Registry, e2e_dir: Path) -> Iterator[Plane]:
    flavour: str = request.param
    workdir = e2e_dir / f"control-plane-{flavour}"
    admin = "adm-" + secrets.token_hex(16)
    stoppers: list[Callable[[], None]] = []
    try:
        # the agent co-located with the control plane, for direct integrations: it calls back
        # to the control plane's own listener only, and requires the secret the server sends
        direct_agent, server = start_control_plane_with_agent(
            workdir, {"CRBROKER_ADMIN_TOKEN": admin, "LOG_LEVEL": "debug"}
        )
        stoppers += [direct_agent.stop, server.stop]
        api = ControlPlaneClient(server.api_url, admin)
        org = api.default_org()
        integration = api.create_integration(
            org,
            {
                "integration_type": "generic-cr",
                "profile_name": "e2e registry",
                "has_broker": True,
                "registry_base": registry.running.url,
            },
        )
        token = integration["attributes"]["broker_token"]
        client, agent = _client(flavour, workdir, token, server, registry, stoppers)
        stoppers.append(client.stop)
        st.wait_for_connection(server.url, token)
        logs = [server.log_path, client.process.log_path, agent.log_path, direct_agent.log_path]
        yield Plane(flavour, server, api, org, integration["id"], logs)
    finally:
        for stop in reversed(stoppers):
            stop()


def _expected_type(registry: Registry, reference: str) -> str:
    sample = next(s for s in registry.images if s.reference == reference)
    return TYPES.get(sample.distro_id, "linux") if sample.packages else "linux"


def test_imported_images_are_scanned_through_the_broker_and_listed_with_their_types(
    plane: Plane, registry: Registry
) -> None:
    chosen = registry.images[:3] if len(registry.images) >= 3 else registry.images
    jobs = {
        s.reference: plane.api.import_image(plane.org, plane.integration, s.reference)
        for s in chosen
    }
    for reference, job_path in jobs.items():
        job = plane.api.wait_import(job_path)
        assert job["status"] == "complete", job
        (log,) = job["logs"]
        assert log["name"] == reference and log["projects"][0]["success"] is True
    projects = {p["attributes"]["name"]: p for p in plane.api.projects(plane.org, expand="target")}
    for sample in chosen:
        project = projects[sample.reference]
        attributes = project["attributes"]
        assert attributes["type"] == _expected_type(registry, sample.reference), project
        assert attributes["origin"] == "generic-cr"
        assert attributes["target_reference"] == sample.tag
        target = project["relationships"]["target"]["data"]
        assert target["attributes"]["display_name"] == sample.repository
        sbom = plane.api.sbom(plane.org, project["id"])
        names = {c["name"] for c in sbom["components"] if c.get("purl")}
        assert names == set(sample.packages), sample.reference
        spdx = plane.api.sbom(plane.org, project["id"], "spdx")
        assert {p["name"] for p in spdx["packages"][1:]} == set(sample.packages)


def _agent_cli_sbom(registry: Registry, reference: str, workdir: Path) -> dict[str, Any]:
    """The same image scanned by ``cr-agent scan`` (the agent's scanner, run by hand)."""
    host = registry.running.url.split("://", 1)[1]
    out = workdir / "cli-sbom.json"
    done = subprocess.run(
        [
            *st.command("cr-agent", "cr_agent"),
            "scan",
            "--format",
            "cyclonedx",
            "--plain-http",
            "--no-cache",
            "--username",
            REGISTRY_USER,
            "--password-stdin",
            "--output",
            str(out),
            f"{host}/{reference}",
        ],
        input=REGISTRY_PASSWORD,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(out.read_text()))


def _stable(sbom: dict[str, Any]) -> dict[str, Any]:
    """Without what differs between two runs of one scan: serial number, time, and the
    reference asked for (the service pins a scan to the digest it resolved, the CLI does not)."""
    metadata = {k: v for k, v in sbom["metadata"].items() if k != "timestamp"}
    image = dict(metadata["component"])
    image["properties"] = [
        p for p in image["properties"] if p["name"] != "crbroker:image:reference"
    ]
    metadata["component"] = image
    return {**{k: v for k, v in sbom.items() if k != "serialNumber"}, "metadata": metadata}


def test_the_sbom_download_equals_what_the_agent_produced(
    plane: Plane, registry: Registry, tmp_path: Path
) -> None:
    # the big image's result exceeds the agent's callback body limit: it arrives in chunks
    big = registry.big
    job = plane.api.wait_import(plane.api.import_image(plane.org, plane.integration, big.reference))
    assert job["status"] == "complete", job
    project_id = job["logs"][0]["projects"][0]["projectId"]
    downloaded = plane.api.sbom(plane.org, project_id)
    assert _stable(downloaded) == _stable(_agent_cli_sbom(registry, big.reference, tmp_path))
    assert len([c for c in downloaded["components"] if c.get("purl")]) == len(big.packages)
    (scan,) = plane.api.scans(plane.org, project_id)
    assert scan["attributes"]["package_count"] == len(big.packages)
    assert scan["attributes"]["image_digest"] == registry.digests[big.reference]
    assert scan["attributes"]["duration_ms"] >= 0


def test_a_retest_adds_a_second_scan_and_keeps_the_first(plane: Plane, registry: Registry) -> None:
    sample = registry.images[0]
    job = plane.api.wait_import(
        plane.api.import_image(plane.org, plane.integration, sample.reference)
    )
    project_id = job["logs"][0]["projects"][0]["projectId"]
    before = plane.api.scans(plane.org, project_id)
    scan = plane.api.retest(plane.org, project_id)
    assert scan["attributes"]["status"] == "queued"
    done = plane.api.wait_scan(plane.org, project_id, scan["id"])
    assert done["attributes"]["status"] == "succeeded", done
    after = plane.api.scans(plane.org, project_id)
    assert [s["id"] for s in after] == [s["id"] for s in before] + [scan["id"]]
    assert all(s["attributes"]["status"] == "succeeded" for s in after)
    assert after[-1]["attributes"]["reason"] == "retest"
    assert after[-1]["attributes"]["image_digest"] == after[0]["attributes"]["image_digest"]


def test_a_direct_integration_scans_with_the_co_located_agent(
    plane: Plane, registry: Registry
) -> None:
    if plane.flavour != "our-client":
        pytest.skip("no broker client involved: once is enough")
    direct = plane.api.create_integration(
        plane.org,
        {
            "integration_type": "generic-cr",
            "profile_name": "direct",
            "has_broker": False,
            "credentials": {
                "username": REGISTRY_USER,
                "password": REGISTRY_PASSWORD,
                "registry_base": registry.running.url,
            },
        },
    )
    assert "credentials" not in direct["attributes"] and "broker_token" not in direct["attributes"]
    sample = registry.images[-1]
    job = plane.api.wait_import(plane.api.import_image(plane.org, direct["id"], sample.reference))
    assert job["status"] == "complete", job
    project_id = job["logs"][0]["projects"][0]["projectId"]
    sbom = plane.api.sbom(plane.org, project_id)
    assert {c["name"] for c in sbom["components"] if c.get("purl")} == set(sample.packages)
    (project,) = [p for p in plane.api.projects(plane.org) if p["id"] == project_id]
    assert project["attributes"]["type"] == _expected_type(registry, sample.reference)
    assert REGISTRY_PASSWORD not in json.dumps(
        plane.api.all_pages(f"/rest/orgs/{plane.org}/integrations")
    )


def test_no_registry_secret_reaches_the_control_plane_or_its_logs(plane: Plane) -> None:
    server_log = plane.server.log_text()
    assert REGISTRY_PASSWORD not in server_log
    assert plane.api.token not in server_log
    everything: list[Any] = [plane.api.projects(plane.org), plane.api.orgs()]
    assert REGISTRY_PASSWORD not in json.dumps(everything)
