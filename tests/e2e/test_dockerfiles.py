"""Dockerfile.broker and Dockerfile.agent, checked without a Docker engine.

The files are parsed (line continuations, comments, exec-form JSON) and checked for what the
deployment needs: the slim Python base, a non-root USER, an exec-form ENTRYPOINT that is one
of our console scripts, the documented port, sources that exist. Each HEALTHCHECK command is
run here for real against a live service (and against nothing) to show it tells the two apart.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from broker_client.settings import Settings as ClientSettings
from cr_agent.service.settings import DEFAULT_PORT as AGENT_PORT
from cr_agent.service.settings import Settings as AgentSettings
from deploy import stack as st
from deploy.processes import refused_port
from deploy.upstream_receiver import UpstreamReceiver

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]

Instruction = tuple[str, str]


def parse(path: Path) -> list[Instruction]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out: list[Instruction] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        out.append((keyword.upper(), args.strip()))
    assert not pending, f"{path.name}: dangling line continuation"
    return out


def values(instructions: list[Instruction], keyword: str) -> list[str]:
    return [args for kw, args in instructions if kw == keyword]


def env_of(instructions: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in values(instructions, "ENV"):
        for item in shlex.split(args):
            key, _, value = item.partition("=")
            env[key] = value
    return env


def healthcheck_argv(instructions: list[Instruction]) -> list[str]:
    (args,) = values(instructions, "HEALTHCHECK")
    options, _, command = args.partition("CMD ")
    assert "--timeout=" in options and "--interval=" in options
    argv = json.loads(command)  # exec form: no shell needed in the image
    assert isinstance(argv, list)
    return [str(a) for a in argv]


IMAGES = {
    "Dockerfile.broker": {
        "entrypoint": ["broker-client"],
        "port": ClientSettings.model_fields["PORT"].default,
    },
    "Dockerfile.agent": {"entrypoint": ["cr-agent", "serve"], "port": AGENT_PORT},
    # the relay's port and the control plane's
    "Dockerfile.server": {"entrypoint": ["crbroker-server"], "port": "7341 8080"},
}


BASE_PIN = re.compile(r"^BASE_IMAGE=python:3\.11[\w.-]*-slim[\w.-]*@sha256:[0-9a-f]{64}$")


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    last_from = max(i for i, (kw, _) in enumerate(instructions) if kw == "FROM")
    return instructions[last_from:]


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_dockerfile_shape(name: str) -> None:
    spec = IMAGES[name]
    everything = parse(REPO / name)
    # the slim Python base, pinned by digest; BASE_IMAGE lets a build (and the image test) swap it
    assert everything[0][0] == "ARG" and BASE_PIN.match(everything[0][1]), everything[0]
    assert {args.split()[0] for args in values(everything, "FROM")} == {"${BASE_IMAGE}"}
    instructions = final_stage(everything)
    users = values(instructions, "USER")
    assert users, "no USER: the container would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    # the user is created in the image, and USER comes after every RUN (installs run as root)
    assert any(f"--uid {user}" in run for run in values(instructions, "RUN"))
    last_user = max(i for i, (kw, _) in enumerate(instructions) if kw == "USER")
    assert all(kw != "RUN" for kw, _ in instructions[last_user:])
    entrypoint = json.loads(values(instructions, "ENTRYPOINT")[-1])
    assert entrypoint == spec["entrypoint"]
    assert entrypoint[0] in SCRIPTS
    assert values(instructions, "EXPOSE") == [str(spec["port"])]
    argv = healthcheck_argv(instructions)
    assert argv[0] == "python" and "curl" not in " ".join(argv) and "wget" not in " ".join(argv)
    copied = set()
    for args in values(everything, "COPY"):
        *sources, _dest = args.split()
        for source in sources:
            assert (REPO / source).exists(), f"{name}: COPY source {source} does not exist"
            copied.add(source)
    # the package behind the entrypoint, and the shared core, are copied in
    assert {"shared", SCRIPTS[entrypoint[0]].split(".")[0]} <= copied
    # pip reaches its index through whatever proxy the builder has, via secrets, not layers
    for run in (r for r in values(everything, "RUN") if "pip " in r):
        assert "--mount=type=secret,id=pip.conf,target=/etc/pip.conf" in run
        assert "--mount=type=secret,id=pip-ca.crt" in run
    image = name.removeprefix("Dockerfile.")
    assert any(f"image_requirements.py {image} " in run for run in values(everything, "RUN"))


def test_broker_image_takes_the_documented_docker_run_settings() -> None:
    # the `docker run` example of snyk's CRA documentation, plus CR_TOKEN for DigitalOcean
    documented = [
        "BROKER_TOKEN", "BROKER_CLIENT_URL", "CR_AGENT_URL", "CR_TYPE", "CR_BASE",
        "CR_USERNAME", "CR_PASSWORD", "CR_TOKEN", "PORT",
        "CR_ROLE_ARN", "CR_REGION", "CR_EXTERNAL_ID", "BROKER_CLIENT_VALIDATION_URL",
    ]  # fmt: skip
    assert set(documented) <= set(ClientSettings.model_fields)
    env = env_of(parse(REPO / "Dockerfile.broker"))
    # nothing secret is baked in
    assert not {"BROKER_TOKEN", "CR_PASSWORD", "CR_USERNAME", "CR_TOKEN", "CR_CREDENTIALS"} & set(
        env
    )
    assert env["PORT"] == "7341"


def test_agent_image_takes_its_settings_from_the_environment() -> None:
    env = env_of(parse(REPO / "Dockerfile.agent"))
    assert env["SNYK_PORT"] == str(AGENT_PORT)
    assert set(env) - {
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONUNBUFFERED",
        "PIP_NO_CACHE_DIR",
        "PIP_DISABLE_PIP_VERSION_CHECK",
    } <= set(AgentSettings.model_fields)
    volumes = [json.loads(v) for v in values(parse(REPO / "Dockerfile.agent"), "VOLUME")]
    assert [env["SPOOL_DIR"]] in volumes


def run_healthcheck(name: str, env: dict[str, str]) -> int:
    argv = healthcheck_argv(parse(REPO / name))
    argv[0] = sys.executable  # the image's `python`
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME")}
    return subprocess.run(argv, env={**base, **env}, capture_output=True, timeout=30).returncode


def test_agent_healthcheck_command(agent: st.Service) -> None:
    assert run_healthcheck("Dockerfile.agent", {"SNYK_PORT": str(agent.port)}) == 0
    assert run_healthcheck("Dockerfile.agent", {"PORT": str(agent.port)}) == 0
    assert run_healthcheck("Dockerfile.agent", {"SNYK_PORT": str(refused_port())}) != 0


def test_broker_healthcheck_command(tmp_path: Path) -> None:
    receiver = UpstreamReceiver().start()
    try:
        # the client refuses to start without a registry (CR_TYPE): any will do here
        registry = {"CR_TYPE": "docker-hub", "CR_USERNAME": "u", "CR_PASSWORD": "p"}
        with st.Stack(tmp_path, upstream_url=receiver.url, registry=registry) as stack:
            port = str(stack.client.port)
            assert run_healthcheck("Dockerfile.broker", {"PORT": port}) == 0
            # the server goes away: the client's socket closes and the check fails
            stack.server.stop()
            deadline = time.monotonic() + 20
            code = 0
            while code == 0 and time.monotonic() < deadline:
                code = run_healthcheck("Dockerfile.broker", {"PORT": port})
            assert code != 0
    finally:
        receiver.stop()
