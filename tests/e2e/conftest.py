"""The whole product on loopback: docker-registry with sample images, our agent, a broker
server (the real snyk-broker from npm, or ours), our broker client, and the upstream receiver.

Everything the two server flavours share is session-scoped (one registry, one agent, one
receiver); each flavour gets its own server and client for its module run.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from deploy import stack as st
from deploy.sample_images import SampleImage, many_packages_image, push_all, sample_images
from deploy.upstream_receiver import UpstreamReceiver
from tests.support import snyk_broker
from tests.support.registry import RunningRegistry, require_registry, running_registry

#: distinctive values, so a leak anywhere can be found by plain search
REGISTRY_USER = f"e2e-scanner-{secrets.token_hex(3)}"
REGISTRY_PASSWORD = f"e2e-Pw-{secrets.token_hex(8)}"
#: the agent's callback body limit in these tests (its minimum), so results get split
CALLBACK_LIMIT = 64 * 1024


@dataclass
class Registry:
    running: RunningRegistry
    images: list[SampleImage]
    digests: dict[str, str]
    big: SampleImage  # its SBOM is several times CALLBACK_LIMIT

    @property
    def cr_env(self) -> dict[str, str]:
        return {
            "CR_TYPE": "generic-cr",
            "CR_BASE": self.running.url,
            "CR_USERNAME": REGISTRY_USER,
            "CR_PASSWORD": REGISTRY_PASSWORD,
        }


@pytest.fixture(scope="session")
def registry() -> Iterator[Registry]:
    require_registry()
    with running_registry("htpasswd", username=REGISTRY_USER, password=REGISTRY_PASSWORD) as reg:
        images = sample_images()
        big = many_packages_image(300)
        digests = push_all(
            [*images, big], reg.url, username=REGISTRY_USER, password=REGISTRY_PASSWORD
        )
        yield Registry(reg, images, digests, big)


@pytest.fixture(scope="session")
def e2e_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e")


def recording_server() -> Iterator[UpstreamReceiver]:
    """An HTTP server that records every request (for fixtures)."""
    rec = UpstreamReceiver().start()
    try:
        yield rec
    finally:
        rec.stop()


@pytest.fixture(scope="session")
def receiver() -> Iterator[UpstreamReceiver]:
    yield from recording_server()


#: MAX_ACTIVE_OPERATIONS of the e2e agents
AGENT_MAX_ACTIVE = 2


def agent_env(**env: str) -> dict[str, str]:
    """The environment of the e2e agents, ``env`` added."""
    # debug logging everywhere: the secret scan at the end then covers the chattiest logs
    return {"MAX_CALLBACK_BODY_BYTES": str(CALLBACK_LIMIT), "LOG_LEVEL": "debug", **env}


def start_agent(workdir: Path, callback_url: str | None = None, **env: str) -> st.Service:
    return st.start_agent(
        workdir, max_active=AGENT_MAX_ACTIVE, callback_url=callback_url, env=agent_env(**env)
    )


def start_control_plane_with_agent(
    workdir: Path, env: dict[str, str]
) -> tuple[st.Service, st.CrbrokerServer]:
    """``crbroker-server`` (``env`` added) and the agent co-located with it for direct
    integrations: the agent calls back to the control plane's own listener only, and
    requires the secret the server sends."""

    def control_plane(api_port: int, direct_agent: st.Service) -> st.CrbrokerServer:
        return st.start_crbroker_server(
            workdir,
            env={
                **env,
                "CONTROL_PLANE_PORT": str(api_port),
                "CR_AGENT_URL": direct_agent.url,
                "CR_AGENT_SECRET": direct_agent.env["CR_AGENT_SECRET"],
            },
        )

    return st.start_agent_calling_back(
        workdir / "direct-agent", control_plane, max_active=AGENT_MAX_ACTIVE, env=agent_env()
    )


@pytest.fixture(scope="session")
def agent(e2e_dir: Path) -> Iterator[st.Service]:
    """An agent on its own (no broker client in front of it)."""
    service = start_agent(e2e_dir / "agent")
    try:
        yield service
    finally:
        service.stop()


@dataclass
class Broker:
    flavour: str
    server_url: str
    token: str
    client: st.Service
    agent: st.Service
    logs: list[Path]

    def request(self, method: str, path: str, **kwargs: object) -> tuple[int, object]:
        return st.broker_request(self.server_url, self.token, method, path, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(
    scope="module",
    params=[pytest.param("snyk-server", marks=pytest.mark.interop), "our-server"],
)
def broker(
    request: pytest.FixtureRequest,
    registry: Registry,
    receiver: UpstreamReceiver,
    e2e_dir: Path,
) -> Iterator[Broker]:
    """Server (snyk-broker or ours) -> our client -> our agent, which calls back to the client
    and talks only to the test registry (CR_ALLOWED_REGISTRIES)."""
    flavour: str = request.param
    workdir = e2e_dir / flavour
    token = str(uuid.uuid4())
    stoppers = []
    try:
        if flavour == "snyk-server":
            snyk_broker.require_snyk_broker()
            snyk = snyk_broker.start_server(
                workdir, accept=st.server_accept(receiver.url), log_level="debug"
            )
            stoppers.append(snyk.stop)
            server_url, server_log = snyk.url, snyk.log_path
        else:
            ours = st.start_broker_server(
                workdir, token=token, upstream_url=receiver.url, env={"LOG_LEVEL": "debug"}
            )
            stoppers.append(ours.stop)
            server_url, server_log = ours.url, ours.process.log_path
        agent, client = st.start_agent_and_client(
            workdir,
            token=token,
            server_url=server_url,
            registry=registry.cr_env,
            max_active=AGENT_MAX_ACTIVE,
            agent_env=agent_env(CR_ALLOWED_REGISTRIES=registry.running.url.split("://", 1)[1]),
            client_env={"LOG_LEVEL": "debug", "DEBUG": "true"},
        )
        stoppers += [agent.stop, client.stop]
        st.wait_for_connection(server_url, token)
        logs = [server_log, client.process.log_path, agent.process.log_path]
        yield Broker(flavour, server_url, token, client, agent, logs)
    finally:
        for stop in reversed(stoppers):
            stop()


@dataclass
class Trio:
    """Our three services, no registry: an agent, a broker server and a client connected to it."""

    agent: st.Service
    server: st.Service
    client: st.Service

    @property
    def token(self) -> str:
        return self.client.token


@pytest.fixture(scope="module")
def trio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trio]:
    workdir = tmp_path_factory.mktemp("trio")
    token = str(uuid.uuid4())
    stoppers = []
    try:
        agent = st.start_agent(workdir / "agent")
        stoppers.append(agent.stop)
        server = st.start_broker_server(
            workdir / "server", token=token, upstream_url="http://127.0.0.1:9"
        )
        stoppers.append(server.stop)
        client = st.start_broker_client(
            workdir / "client",
            token=token,
            server_url=server.url,
            agent_url=agent.url,
            registry={"CR_TYPE": "docker-hub", "CR_USERNAME": "u", "CR_PASSWORD": "p"},
            validation_path=None,
        )
        stoppers.append(client.stop)
        st.wait_for_connection(server.url, token)
        yield Trio(agent, server, client)
    finally:
        for stop in reversed(stoppers):
            stop()
