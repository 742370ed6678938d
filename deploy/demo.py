"""``make demo``: the whole product end to end on one machine, in well under a minute.

1. Debian's docker-registry on a free 127.0.0.1 port, with htpasswd credentials made up now;
2. sample images built in code and pushed (Debian-like, distroless, Alpine-like, rpm-based);
3. ``crbroker-server``: the broker relay and the control plane in one process (SQLite in a
   temporary data directory, an admin API token made up now);
4. a brokered registry integration created over the control plane's REST API, then our broker
   client (holding the registry credentials, connecting with the integration's broker token)
   and agent, each a subprocess with embedded defaults (free ports);
5. every image imported with Snyk's v1 import call: the control plane queues a scan and asks
   the agent THROUGH the broker (relay ``/broker/<token>/scan`` -> client -> agent ->
   registry); results come back via the client's callback path and the relay to the control
   plane, which stores them;
6. a table of image, distro, packages and seconds read from the REST API, and each project's
   CycloneDX SBOM downloaded from it into demo-output/.

Everything started is stopped at the end, on Ctrl-C and on SIGTERM. A failing step exits
non-zero with a message naming the step.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parents[1]
REGISTRY_BINARY = "/usr/bin/docker-registry"


class DemoFailed(Exception):
    """A step failed; the message says which and why."""


class Terminated(BaseException):
    """SIGTERM: unwind like Ctrl-C so every ``finally`` stops what it started."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


class Steps:
    def __init__(self, total: int) -> None:
        self.total = total
        self.n = 0

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[None]:
        self.n += 1
        print(f"[{self.n}/{self.total}] {title} ...", end="", flush=True)
        started = time.monotonic()
        try:
            yield
        except (DemoFailed, KeyboardInterrupt, Terminated):
            print(" failed" if sys.exc_info()[0] is DemoFailed else " interrupted")
            raise
        except Exception as exc:
            print(" failed")
            raise DemoFailed(f"{title}: {type(exc).__name__}: {exc}") from exc
        print(f" ok ({time.monotonic() - started:.1f}s)")


def _check_prerequisites() -> None:
    missing = []
    if not Path(REGISTRY_BINARY).exists():
        missing.append(f"{REGISTRY_BINARY} (Debian package docker-registry)")
    if shutil.which("htpasswd") is None:
        missing.append("htpasswd (Debian package apache2-utils)")
    if missing:
        raise DemoFailed("missing " + ", ".join(missing) + "; run `make deps` as root")


def _table(rows: list[tuple[str, str, str, str]]) -> str:
    header = ("image", "distro", "packages", "seconds")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    lines = []
    for n, row in enumerate([header, *rows]):
        cells = [row[i].rjust(widths[i]) if i >= 2 else row[i].ljust(widths[i]) for i in range(4)]
        lines.append("  ".join(cells))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _os_of(sbom: dict[str, Any]) -> str:
    """ "debian 12" from the SBOM's operating-system component."""
    for component in sbom.get("components") or []:
        if component.get("type") == "operating-system":
            return " ".join(str(component[k]) for k in ("name", "version") if component.get(k))
    return "-"


def run(output_dir: Path, keep_logs: bool) -> int:
    # imported here so `--help` and the prerequisite message work even in a broken venv
    from deploy import stack as st
    from deploy.control_plane_client import ControlPlaneClient
    from deploy.sample_images import push_all, sample_images
    from tests.support.registry import start_registry

    steps = Steps(6)
    workdir = Path(tempfile.mkdtemp(prefix="crbroker-demo-"))
    cleanup: list[Any] = []
    failed = True
    try:
        with steps.step("checking prerequisites"):
            _check_prerequisites()
        with steps.step("starting docker-registry on 127.0.0.1 (htpasswd auth)"):
            username, password = "demo", secrets.token_urlsafe(16)
            registry = start_registry(
                "htpasswd", username=username, password=password, workdir=workdir / "registry"
            )
            cleanup.append(registry.stop)
        with steps.step("building and pushing sample images"):
            images = sample_images()
            push_all(images, registry.url, username=username, password=password)
        with steps.step("starting crbroker-server (broker relay + control plane)"):
            admin = "demo-" + secrets.token_urlsafe(24)
            server = st.start_crbroker_server(
                workdir / "services", env={"CRBROKER_ADMIN_TOKEN": admin}
            )
            cleanup.append(server.stop)
            api = ControlPlaneClient(server.api_url, admin)
            org = api.default_org()
        with steps.step("creating a brokered integration; starting broker client and agent"):
            integration = api.create_integration(
                org,
                {
                    "integration_type": "generic-cr",
                    "profile_name": "demo registry",
                    "has_broker": True,
                    "registry_base": registry.url,
                },
            )
            token = integration["attributes"]["broker_token"]
            agent, client = st.start_agent_and_client(
                workdir / "services",
                token=token,
                server_url=server.url,
                registry={
                    "CR_TYPE": "generic-cr",
                    "CR_BASE": registry.url,
                    "CR_USERNAME": username,
                    "CR_PASSWORD": password,
                },
                startup=st.Startup(ready=(200, 500)),
            )
            cleanup += [agent.stop, client.stop]
            st.wait_for_connection(server.url, token)
        rows: list[tuple[str, str, str, str]] = []
        with steps.step(f"importing {len(images)} images through the control plane"):
            jobs = [api.import_image(org, integration["id"], s.reference) for s in images]
            for sample, job_path in zip(images, jobs, strict=True):
                job = api.wait_import(job_path, timeout=60)
                if job["status"] != "complete":
                    raise DemoFailed(f"import of {sample.reference} ended {job['status']}")
            if output_dir.exists():
                for old in output_dir.glob("*.json"):
                    old.unlink()
            output_dir.mkdir(parents=True, exist_ok=True)
            projects = {p["attributes"]["name"]: p for p in api.projects(org)}
            for sample in images:
                project = projects[sample.reference]
                (scan,) = api.scans(org, project["id"])
                sbom = api.sbom(org, project["id"])
                name = sample.reference.replace("/", "_").replace(":", "_") + ".cdx.json"
                (output_dir / name).write_text(json.dumps(sbom, indent=2))
                attributes = scan["attributes"]
                rows.append(
                    (
                        sample.reference,
                        _os_of(sbom),
                        str(attributes["package_count"]),
                        f"{attributes['duration_ms'] / 1000:.2f}",
                    )
                )
        # the point of the broker: the control plane never holds registry credentials
        answers = json.dumps(
            [api.projects(org), api.orgs(), api.all_pages(f"/rest/orgs/{org}/integrations")]
        )
        if password in answers or password in server.log_text():
            raise DemoFailed("the registry password reached the control plane")
        print()
        print(_table(rows))
        print()
        where = output_dir.resolve()
        print(f"CycloneDX SBOMs downloaded from the control plane to {where}/:")
        for path in sorted(output_dir.glob("*.cdx.json")):
            print(f"  {path.name}")
        print(
            "Path of each scan: control plane -> relay /broker/<token>/scan -> broker client "
            "(adds CR_CREDENTIALS) -> agent -> registry; results: agent -> broker client "
            "/api/v2/import/result -> relay -> control plane."
        )
        failed = False
        return 0
    except DemoFailed as exc:
        print(f"\ndemo failed: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, Terminated):
        print("\ndemo interrupted; stopping everything it started", file=sys.stderr)
        failed = False  # nothing to investigate: the logs go with the rest
        return 130
    finally:
        # ignore a second Ctrl-C / SIGTERM while stopping: half-stopped is worse
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for stop in reversed(cleanup):
            with contextlib.suppress(Exception):
                stop()
        signal.signal(signal.SIGINT, previous)
        if (keep_logs or failed) and any(workdir.iterdir()):
            print(f"service logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.demo",
        description="Scan sample images through crbroker's broker server, client and agent.",
    )
    parser.add_argument(
        "--output", type=Path, default=REPO / "demo-output", help="where SBOMs are written"
    )
    parser.add_argument(
        "--keep-logs", action="store_true", help="keep the services' logs after a success"
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    return run(args.output, args.keep_logs)


if __name__ == "__main__":
    sys.exit(main())
