"""Every ``Dockerfile.*`` at the repository root, built and run for real without a Docker engine.

Docker Hub is out of reach here, so the base image is made locally, for these tests only:
debootstrap lays a minimal Debian bookworm with its Python 3.11, pip and venv into a temporary
directory, made to look like ``python:3.11-slim`` (``python``/``pip`` on PATH, pip free to
install system-wide), and the tarball is cached under ``.cache/images/`` keyed by a hash of
what goes into it. Debian's ``buildah`` (vfs storage, chroot isolation) builds each Dockerfile
with ``--build-arg BASE_IMAGE=`` pointing at that base, pip's settings and CA bundle given as
build secrets; the images are then checked (non-root, HEALTHCHECK kept, no build secret left,
the broker image without the agent's dependencies) and run with ``podman`` + ``runc`` the way
``deploy/kubernetes.yaml`` runs them: read-only root filesystem, the manifest's volumes as
writable directories, its user, no capabilities, no privilege escalation, its environment.
The whole product then scans images from Debian's docker-registry through the three
containers, and each container answers its health check and its own HEALTHCHECK command.

A new image is a ``Dockerfile.<name>`` plus an entry in :data:`RUNS` saying how to start it.
Everything lives in a temporary storage root that is removed at the end.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import os
import resource
import secrets
import shutil
import subprocess
import tempfile
import time
import tomllib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from deploy import stack as st
from deploy.image_requirements import canonical, image_requirements, requirement_name
from deploy.processes import free_port, wait_for_http
from deploy.upstream_receiver import UpstreamReceiver
from tests.e2e.conftest import Registry
from tests.e2e.test_dockerfiles import REPO, parse, values
from tests.e2e.test_kubernetes_manifest import container, documents, environment

pytestmark = pytest.mark.timeout(1200)

DOCKERFILES = sorted(p.name for p in REPO.glob("Dockerfile.*"))
TOOLS = ("buildah", "podman", "runc", "debootstrap")
CACHE = REPO / ".cache" / "images"

BASE_SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-pip", "python3-venv", "ca-certificates")
BASE_NAME = "localhost/crbroker-test/python:3.11-slim-bookworm"
#: pip settings that carry over into a build; anything naming this machine's disk does not
PIP_KEYS = ("index-url", "extra-index-url", "trusted-host", "proxy", "timeout", "retries")


# --------------------------------------------------------------------------- the tools


def require_tools() -> None:
    if os.geteuid() != 0:
        pytest.skip("building and running images needs root (buildah chroot isolation, podman)")
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (`make deps` installs them)")


@dataclass
class Engine:
    """buildah and podman over one private vfs storage root."""

    root: Path

    def argv(self, tool: str, *args: str) -> list[str]:
        storage = [
            f"--root={self.root / 'storage'}",
            f"--runroot={self.root / 'run'}",
            "--storage-driver=vfs",
        ]
        # crun fails on this machine's cgroups; runc with cgroupfs works
        runtime = ["--runtime=runc", "--cgroup-manager=cgroupfs"] if tool == "podman" else []
        return [tool, *storage, *runtime, *args]

    def run(self, tool: str, *args: str, timeout: float = 600) -> str:
        done = subprocess.run(
            self.argv(tool, *args), capture_output=True, text=True, timeout=timeout
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{tool} {' '.join(args[:3])} ... exited {done.returncode}:\n"
                f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
            )
        return done.stdout

    def inspect(self, image: str) -> dict[str, Any]:
        (info,) = json.loads(self.run("podman", "image", "inspect", image))
        assert isinstance(info, dict)
        return info


# --------------------------------------------------------------------------- the local base


def debian_mirror() -> str:
    """The Debian mirror apt on this machine uses (the registries are reached as set up here)."""
    for path in (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")):
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            words = line.split()
            uris = (
                words[1:]
                if line.startswith("URIs:")
                else words[1:2]
                if words[:1] == ["deb"]
                else []
            )
            for uri in uris:
                if uri.rstrip("/").endswith("/debian"):
                    return uri
    return "http://deb.debian.org/debian"


def make_rootfs(rootfs: Path) -> None:
    """Debian with its Python, shaped like python:3.11-slim for what the Dockerfiles use."""
    subprocess.run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(BASE_PACKAGES)}",
            BASE_SUITE,
            str(rootfs),
            debian_mirror(),
        ],
        check=True,
        capture_output=True,
        timeout=900,
    )
    # python:3.11-slim's pip installs system-wide (no PEP 668 marker) and has `python`, `pip`
    (rootfs / "usr/lib/python3.11/EXTERNALLY-MANAGED").unlink()
    for command, target in (("python", "python3"), ("pip", "pip3")):
        if not (rootfs / "usr/bin" / command).exists():
            (rootfs / "usr/bin" / command).symlink_to(target)
    # what a slim image leaves out; the engine provides resolv.conf
    for junk in ("usr/share/doc", "usr/share/man", "usr/share/locale", "var/lib/apt/lists"):
        shutil.rmtree(rootfs / junk)
    for path in [*rootfs.glob("var/cache/apt/archives/*.deb"), rootfs / "etc/resolv.conf"]:
        path.unlink(missing_ok=True)


def base_tarball() -> Path:
    """The base's root filesystem as a tar, made once per recipe (cached under .cache/)."""
    recipe = json.dumps([BASE_SUITE, BASE_PACKAGES, inspect.getsource(make_rootfs)])
    key = hashlib.sha256(recipe.encode()).hexdigest()[:16]
    tarball = CACHE / f"python-{BASE_SUITE}-{key}.tar"
    if tarball.exists():
        return tarball
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE, prefix="base-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        make_rootfs(rootfs)
        partial = Path(tmp) / "base.tar"
        subprocess.run(
            ["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(partial), "."],
            check=True,
            timeout=300,
        )
        os.replace(partial, tarball)  # whole or not at all, even with two runs at once
    return tarball


# --------------------------------------------------------------------------- pip in the build


def pip_settings() -> dict[str, str]:
    """This machine's effective pip settings (files, then PIP_* variables), by option name."""
    listed = subprocess.run(
        ["python3", "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60
    ).stdout
    files: dict[str, str] = {}
    env: dict[str, str] = {}
    for line in listed.splitlines():
        name, _, value = line.partition("=")
        section, _, key = name.rpartition(".")
        target = env if section == ":env:" else files
        target[key.removeprefix("default-")] = value.strip().strip("'\"")
    return {**files, **env}


def pip_build_secrets(workdir: Path) -> list[str]:
    """``--secret`` arguments giving pip in the build this machine's index, proxy and CA.

    Only settings that make sense inside the build carry over: local wheel directories and
    ``file:`` indexes name this machine's disk. The CA bundle (the registries are reached
    through a proxy with its own CA) goes in as its own secret.
    """
    settings = pip_settings()
    lines = ["[global]"]
    for key in PIP_KEYS:
        value = settings.get(key)
        if key.endswith("index-url") and value:
            value = " ".join(u for u in value.split() if not u.startswith("file:"))
        if value:
            lines.append(f"{key} = {value}")
    args = []
    cert = (
        settings.get("cert")
        or os.environ.get("REQUESTS_CA_BUNDLE")
        or os.environ.get("SSL_CERT_FILE")
    )
    if cert and Path(cert).is_file():
        lines.append("cert = /run/secrets/pip-ca.crt")
        args.append(f"--secret=id=pip-ca.crt,src={cert}")
    conf = workdir / "pip.conf"
    conf.write_text("\n".join(lines) + "\n")
    return [f"--secret=id=pip.conf,src={conf}", *args]


# --------------------------------------------------------------------------- building


@dataclass
class Built:
    engine: Engine
    workdir: Path
    #: Dockerfile name -> image name
    images: dict[str, str]
    #: Dockerfile name -> seconds the build took
    seconds: dict[str, float]
    #: Dockerfile name -> what :func:`inside` found
    inside: dict[str, dict[str, Any]] = field(default_factory=dict)


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    require_tools()
    workdir = tmp_path_factory.mktemp("images")
    engine = Engine(workdir / "engine")
    try:
        engine.run("podman", "import", str(base_tarball()), BASE_NAME)
        secrets_args = pip_build_secrets(workdir)
        images: dict[str, str] = {}
        seconds: dict[str, float] = {}
        for dockerfile in DOCKERFILES:
            name = f"localhost/crbroker-test/{dockerfile.removeprefix('Dockerfile.')}:test"
            started = time.monotonic()
            engine.run(
                "buildah",
                "bud",
                "--isolation=chroot",
                "--pull=never",
                "--format=docker",  # OCI images drop HEALTHCHECK
                f"--build-arg=BASE_IMAGE={BASE_NAME}",
                *secrets_args,
                f"--file={REPO / dockerfile}",
                f"--tag={name}",
                str(REPO),
                timeout=900,
            )
            seconds[dockerfile] = time.monotonic() - started
            images[dockerfile] = name
        yield Built(engine, workdir, images, seconds)
    finally:
        with contextlib.suppress(Exception):
            engine.run("podman", "rm", "--all", "--force", "--time=2")
        with contextlib.suppress(Exception):
            engine.run("buildah", "rm", "--all")
        shutil.rmtree(workdir / "engine", ignore_errors=True)


#: run once in each image (one container each: with vfs storage, a container costs a copy)
INSIDE = """
import glob, importlib.metadata, json, os
print(json.dumps({
    "leftovers": sorted(glob.glob("/run/secrets/*") + glob.glob("/wheels") + glob.glob("/build")
                        + [p for p in ("/etc/pip.conf",) if os.path.exists(p)]),
    "distributions": sorted(d.metadata["Name"] for d in importlib.metadata.distributions()),
    "requires": {d.metadata["Name"]: [r for r in d.requires or [] if "extra ==" not in r]
                 for d in importlib.metadata.distributions()},
}))
"""


def inside(built: Built, dockerfile: str) -> dict[str, Any]:
    """What :data:`INSIDE` finds in the image (secrets and build leftovers, distributions)."""
    if dockerfile not in built.inside:
        out = built.engine.run(
            "podman",
            "run",
            "--rm",
            "--network=none",
            *ulimits(),
            "--entrypoint=python",
            built.images[dockerfile],
            "-c",
            INSIDE,
        )
        built.inside[dockerfile] = json.loads(out.strip().splitlines()[-1])
    return built.inside[dockerfile]


def ulimits() -> list[str]:
    """Limits stated outright: podman's defaults exceed what runc may set on this machine
    (nproc as high as the host's own limit fails too; 4096 is plenty for one service)."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return [f"--ulimit=nofile={nofile}:{nofile}", "--ulimit=nproc=4096:4096"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_image_builds_as_a_non_root_image_with_its_healthcheck(
    built: Built, dockerfile: str
) -> None:
    image = built.images[dockerfile]
    info = built.engine.inspect(image)
    config = info["Config"]
    instructions = parse(REPO / dockerfile)
    assert config["User"] == values(instructions, "USER")[-1]
    assert config["User"].split(":")[0] not in ("", "0", "root")
    assert config["Entrypoint"] == json.loads(values(instructions, "ENTRYPOINT")[-1])
    healthcheck = info["Healthcheck"]["Test"]
    assert healthcheck[0] == "CMD" and healthcheck[1] == "python", healthcheck
    # the build secrets and the build stage's wheels stayed out of the image
    assert inside(built, dockerfile)["leftovers"] == []
    history = json.dumps(built.engine.inspect(image).get("History", []))
    assert "pip-ca.crt,src=" not in history and "/etc/ssl/certs" not in history


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_image_holds_exactly_its_dependencies(built: Built, dockerfile: str) -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    image = dockerfile.removeprefix("Dockerfile.")
    wanted = {requirement_name(r) for r in image_requirements(pyproject, image)}
    left_out = {requirement_name(r) for r in pyproject["project"]["dependencies"]} - wanted
    found = inside(built, dockerfile)
    names = {canonical(n) for n in found["distributions"]}
    assert wanted <= names, f"missing from {dockerfile}: {sorted(wanted - names)}"
    # a dependency left out may still come in as what a wanted one requires (multidict with
    # aiohttp), never on its own
    requires = {
        canonical(k): {requirement_name(r) for r in v} for k, v in found["requires"].items()
    }
    pulled_in: set[str] = set()
    todo = set(wanted)
    while todo:
        name = todo.pop()
        pulled_in.add(name)
        todo |= requires.get(name, set()) - pulled_in
    assert not (left_out & names) - pulled_in, f"{dockerfile} carries {sorted(left_out & names)}"


# --------------------------------------------------------------------------- running


@dataclass
class Context:
    """What a container's environment may refer to: every container's URL (ports are chosen
    before anything starts, so the agent can name the client it calls back), the test's
    registry, upstream receiver and broker token."""

    registry: Registry
    receiver: UpstreamReceiver
    token: str
    ports: dict[str, int] = field(default_factory=dict)

    @property
    def urls(self) -> dict[str, str]:
        return {name: f"http://127.0.0.1:{port}" for name, port in self.ports.items()}


@dataclass(frozen=True)
class Run:
    """How the tests start one container.

    ``deployment`` names the manifest Deployment whose environment, volumes and security
    settings the container takes (None: the same lock-down, the image's own user, no volumes);
    ``env`` overrides what must differ on one machine (ports, peer URLs on 127.0.0.1, the test
    registry). Containers share the host's network namespace and listen on 127.0.0.1 only.
    """

    dockerfile: str
    env: Callable[[int, Context], dict[str, str]]
    deployment: str | None = None
    entrypoint: str | None = None
    after: tuple[str, ...] = ()
    #: further ports it listens on, as ``Context.ports["<name>.<port name>"]``
    more_ports: tuple[str, ...] = ()


RUNS: dict[str, Run] = {
    "cr-agent": Run(
        "Dockerfile.agent",
        deployment="crbroker-cr-agent",
        env=lambda port, c: {
            "SNYK_PORT": str(port),
            "HOST": "127.0.0.1",
            "BROKER_CLIENT_URL": c.urls["broker-client"],
        },
    ),
    # our broker server ships in the broker client's image
    "broker-server": Run(
        "Dockerfile.broker",
        entrypoint="broker-server",
        env=lambda port, c: {
            "PORT": str(port),
            "BROKER_SERVER_HOST": "127.0.0.1",
            "BROKER_TOKENS": c.token,
            "UPSTREAM_URL": c.receiver.url,
        },
    ),
    "broker-client": Run(
        "Dockerfile.broker",
        deployment="crbroker-broker-client",
        after=("broker-server", "cr-agent"),
        env=lambda port, c: {
            "PORT": str(port),
            "BROKER_CLIENT_LISTEN_HOST": "127.0.0.1",
            "BROKER_TOKEN": c.token,
            "BROKER_SERVER_URL": c.urls["broker-server"],
            "BROKER_CLIENT_URL": f"http://127.0.0.1:{port}",
            "CR_AGENT_URL": c.urls["cr-agent"],
            "BROKER_CLIENT_VALIDATION_URL": f"{c.urls['cr-agent']}/systemcheck",
            **c.registry.cr_env,
        },
    ),
    # the relay (its /healthcheck on PORT) and the control plane (the image's HEALTHCHECK),
    # SQLite in the image's data volume
    "crbroker-server": Run(
        "Dockerfile.server",
        more_ports=("control-plane",),
        env=lambda port, c: {
            "PORT": str(port),
            "BROKER_SERVER_HOST": "127.0.0.1",
            "CONTROL_PLANE_PORT": str(c.ports["crbroker-server.control-plane"]),
            "CONTROL_PLANE_HOST": "127.0.0.1",
        },
    ),
}


def test_every_dockerfile_has_a_run() -> None:
    unrun = set(DOCKERFILES) - {run.dockerfile for run in RUNS.values()}
    assert not unrun, f"tests/e2e/test_images.py RUNS has no entry starting {sorted(unrun)}"


def writable_dir(path: Path, uid: int, gid: int) -> Path:
    """A host directory standing for an emptyDir: owned by the pod's user, group (fsGroup)
    writable and setgid, as Kubernetes lays one out."""
    path.mkdir(parents=True)
    os.chown(path, uid, gid)
    path.chmod(0o2770)
    return path


def podman_options(name: str, run: Run, volumes_dir: Path) -> tuple[list[str], dict[str, str]]:
    """podman run options and environment for what the manifest says of ``run``'s pod.

    Without a Deployment: the same lock-down, the image's user, and a writable directory on
    each of the image's VOLUMEs and on /tmp."""
    options = [
        "--read-only",
        "--read-only-tmpfs=false",  # only the manifest's volumes are writable
        "--cap-drop=ALL",
        "--security-opt=no-new-privileges",
        # the HEALTHCHECK stays in the container; no systemd timer runs it (checked below)
        "--health-interval=disable",
    ]
    if run.deployment is None:
        instructions = parse(REPO / run.dockerfile)
        uid, _, gid = values(instructions, "USER")[-1].partition(":")
        paths = [p for v in values(instructions, "VOLUME") for p in json.loads(v)]
        for index, path in enumerate([*paths, "/tmp"]):
            host = writable_dir(volumes_dir / name / str(index), int(uid), int(gid or uid))
            options.append(f"--volume={host}:{path}:rw")
        return options, {}
    docs = documents()
    c = container(docs, run.deployment)
    pod, security = c["pod_security"], c["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["allowPrivilegeEscalation"] is False
    uid, gid, fs_group = pod["runAsUser"], pod["runAsGroup"], pod["fsGroup"]
    options += [f"--user={uid}:{gid}", f"--group-add={fs_group}"]
    spec = docs[("Deployment", run.deployment)]["spec"]["template"]["spec"]
    kinds = {v["name"]: v for v in spec["volumes"]}
    for mount in c["volumeMounts"]:
        assert "emptyDir" in kinds[mount["name"]], mount  # what a local directory stands for
        host = writable_dir(volumes_dir / name / mount["name"], uid, fs_group)
        options.append(f"--volume={host}:{mount['mountPath']}:rw")
    return options, environment(docs, c)


@dataclass
class Running:
    name: str
    container: str
    url: str
    volumes: Path


@dataclass
class Deployment:
    built: Built
    context: Context
    running: dict[str, Running]

    def logs(self) -> str:
        parts = []
        for r in self.running.values():
            with contextlib.suppress(Exception):
                out = self.built.engine.run("podman", "logs", r.container)
                parts.append(f"--- {r.name}\n{out[-3000:]}")
        return "\n".join(parts)


def start_order() -> list[str]:
    order: list[str] = []
    for name in RUNS:
        for before in (*RUNS[name].after, name):
            if before not in order:
                order.append(before)
    return order


@pytest.fixture(scope="module")
def deployment(
    built: Built, registry: Registry, receiver: UpstreamReceiver
) -> Iterator[Deployment]:
    context = Context(registry, receiver, token=str(uuid.uuid4()))
    # chosen up front (free_port, not port 0): each image's HEALTHCHECK, which podman runs
    # inside the container, reads its port from the same variable, and the containers name
    # each other's URLs; a port taken meanwhile fails that container's start with its logs
    context.ports = {name: free_port() for name in RUNS}
    for name, run in RUNS.items():
        context.ports.update({f"{name}.{more}": free_port() for more in run.more_ports})
    running: dict[str, Running] = {}
    volumes_dir = built.workdir / f"volumes-{secrets.token_hex(4)}"
    deployed = Deployment(built, context, running)
    try:
        for name in start_order():
            run = RUNS[name]
            port = context.ports[name]
            options, env = podman_options(name, run, volumes_dir)
            env.update(run.env(port, context))
            entrypoint = [f"--entrypoint={run.entrypoint}"] if run.entrypoint else []
            container_name = f"crbroker-test-{name}-{secrets.token_hex(3)}"
            built.engine.run(
                "podman",
                "run",
                "--detach",
                f"--name={container_name}",
                "--network=host",
                *ulimits(),
                *options,
                *entrypoint,
                *(f"--env={k}={v}" for k, v in env.items()),
                built.images[run.dockerfile],
            )
            url = f"http://127.0.0.1:{port}"
            running[name] = Running(name, container_name, url, volumes_dir / name)
            try:
                wait_for_http(f"{url}/healthcheck", timeout=90)
            except TimeoutError as exc:
                pytest.fail(f"{name} from {run.dockerfile}: {exc}\n{deployed.logs()}")
        st.wait_for_connection(context.urls["broker-server"], context.token)
        yield deployed
    finally:
        if running:  # one call for all: each removal deletes a full copy of its image (vfs)
            names = [r.container for r in running.values()]
            with contextlib.suppress(Exception):
                built.engine.run("podman", "rm", "--force", "--time=1", *names)


@pytest.mark.parametrize("name", list(RUNS))
def test_container_answers_its_health_check_and_healthcheck(
    deployment: Deployment, name: str
) -> None:
    running = deployment.running[name]
    wait_for_http(f"{running.url}/healthcheck", timeout=30)
    # the image's own HEALTHCHECK command, run by the engine inside the container
    status = deployment.built.engine.run("podman", "healthcheck", "run", running.container)
    assert "unhealthy" not in status
    state = json.loads(
        deployment.built.engine.run(
            "podman", "inspect", "--format={{json .State}}", running.container
        )
    )
    assert state["Running"] is True
    health = state.get("Health") or state.get("Healthcheck")
    assert health and health["Status"] == "healthy", state


def test_scan_through_the_three_containers(
    deployment: Deployment, registry: Registry, receiver: UpstreamReceiver
) -> None:
    context = deployment.context
    job = st.request_scan(
        context.urls["broker-server"], context.token, [s.reference for s in registry.images]
    )
    try:
        done = receiver.wait_for_job(job, timeout=120)
    except TimeoutError as exc:
        pytest.fail(f"{exc}\n{deployment.logs()}")
    assert (done["succeeded"], done["failed"]) == (len(registry.images), 0), deployment.logs()
    results = {r["image"]: r for r in receiver.job_results(job)}
    for sample in registry.images:
        assert results[sample.reference]["packageCount"] == len(sample.packages)
    # with the root filesystem read-only, the agent wrote where the manifest gives it room
    cache = deployment.running["cr-agent"].volumes / "layer-cache"
    assert any(p.is_file() for p in cache.rglob("*")), "nothing reached the layer cache volume"
    assert "Read-only file system" not in deployment.logs()


def test_agent_image_answers_advisories_with_a_usage_error(built: Built) -> None:
    # the image leaves the control plane's matcher out: a clear refusal, not a traceback
    argv = built.engine.argv(
        "podman",
        "run",
        "--rm",
        "--network=none",
        *ulimits(),
        "--entrypoint=cr-agent",
        built.images["Dockerfile.agent"],
        "scan",
        "127.0.0.1:5000/any/image:1",
        "--advisories",
        "/nonexistent.json",
    )
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "--advisories needs the control plane" in done.stderr
    assert "Traceback" not in done.stderr
