"""Registry sync benchmark (issue 12): R repositories x T tags pushed to Debian's
docker-registry, then through ``crbroker-server`` + our broker client + our agent a dry run
of an ImportAll policy, and the real run that creates the R x T targets' projects (and
queues their scans; the scans themselves are not timed), then the next run (nothing new:
every tag's digest read to find moved tags). Goals: dry run under 10 s, run under 30 s for
100 x 100.

    .venv/bin/python bench/sync.py [--repos 100] [--tags 100]

Times are wall clock from the API call to the run's ``completed``, SQLite storage, one
control-plane process, everything on this machine's loopback. The registry runs without
authentication: with htpasswd, docker-registry checks a bcrypt hash on every request, which
would time the registry (and make pushing the 10,000 tags take minutes), not the sync.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deploy import stack as st  # noqa: E402
from deploy.control_plane_client import ControlPlaneClient  # noqa: E402
from tests.support.images import Layer, Pusher, build_image, os_release  # noqa: E402
from tests.support.registry import running_registry  # noqa: E402
from tests.support.sync_stack import connect_registry  # noqa: E402

USER = "bench"
PASSWORD = "bench-" + secrets.token_hex(8)
VERSION = "2025-09-17"


def fill(url: str, repos: int, tags: int) -> None:
    """One small image per repository, tagged ``tags`` times (each tag a manifest PUT)."""
    image = build_image([Layer({"etc/os-release": os_release("alpine", "3.20.0")})])

    def one(r: int) -> None:
        pusher = Pusher(url, USER, PASSWORD)
        repository = f"bench/repo{r:03d}"
        for data in image.blobs.values():
            pusher.push_blob(repository, data)
        for t in range(tags):
            pusher.push_manifest(repository, f"1.{t}", image.manifest, image.media_type)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(repos)))


def wait(api: ControlPlaneClient, path: str, version: str | None = None) -> dict[str, Any]:
    while True:
        _, _, answer = api.call("GET", path, query={"version": version or VERSION})
        attributes: dict[str, Any] = answer["data"]["attributes"]
        if attributes["status"] in ("completed", "failed"):
            return attributes
        time.sleep(0.05)


def ready_org(api: ControlPlaneClient) -> str:
    """The default org, once the control plane's listener answers (it starts after the
    relay's, which is what the stack waits for)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return api.default_org()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repos", type=int, default=100)
    parser.add_argument("--tags", type=int, default=100)
    args = parser.parse_args()
    total = args.repos * args.tags
    admin = "adm-" + secrets.token_hex(16)
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_registry("none") as registry,
    ):
        started = time.perf_counter()
        fill(registry.url, args.repos, args.tags)
        print(f"pushed {total} tags in {time.perf_counter() - started:.1f} s", flush=True)
        workdir = Path(tmp)
        server = st.start_crbroker_server(
            workdir, env={"CRBROKER_ADMIN_TOKEN": admin, "SYNC_POLL_SECONDS": "0.2"}
        )
        stoppers = [server.stop]
        try:
            api = ControlPlaneClient(server.api_url, admin, timeout=120)
            org = ready_org(api)
            pair = connect_registry(
                api,
                org,
                server,
                workdir,
                registry_url=registry.url,
                username=USER,
                password=PASSWORD,
                max_in_flight=1,
            )
            stoppers += pair.stoppers
            path = f"/rest/orgs/{org}/container_import/{pair.integration}/policy"
            body = {
                "data": {
                    "type": "container_registry_import_policy",
                    "attributes": {
                        "policy": {"name": "all", "import_policy": {"type": "ImportAll"}}
                    },
                }
            }
            started = time.perf_counter()
            _, headers, _ = api.call(
                "POST", f"{path}/dry_run", query={"version": VERSION}, body=body
            )
            job = wait(api, headers["Location"])
            dry = time.perf_counter() - started
            planned = sum(len(g["tags"]) for g in job["result"]["images_to_import"])
            print(f"dry run: {dry:.2f} s, {job['status']}, {planned} images to import", flush=True)

            started = time.perf_counter()
            api.call("POST", path, query={"version": VERSION}, body=body)
            _, _, runs = api.call("GET", f"{path}/runs", query={"version": VERSION})
            run = wait(api, f"{path}/runs/{runs['data'][0]['id']}")
            real = time.perf_counter() - started
            print(
                f"run: {real:.2f} s, {run['status']}, listed {run['listed']},"
                f" imported {run['imported']}",
                flush=True,
            )
            # the next run: every repository now holds projects, so a registry without push
            # times is read with digests (one manifest request per tag) to find moved tags
            started = time.perf_counter()
            _, _, again = api.call("POST", f"{path}/run", query={"version": VERSION})
            second = wait(api, f"{path}/runs/{again['data']['id']}")
            rerun = time.perf_counter() - started
            print(
                f"next run: {rerun:.2f} s, {second['status']}, listed {second['listed']},"
                f" imported {second['imported']}",
                flush=True,
            )
            print(
                json.dumps(
                    {
                        "repos": args.repos,
                        "tags": args.tags,
                        "dry_run_s": round(dry, 2),
                        "run_s": round(real, 2),
                        "next_run_s": round(rerun, 2),
                        "imported": run["imported"],
                    }
                )
            )
            ok = (
                job["status"] == run["status"] == second["status"] == "completed"
                and run["imported"] == total
                and second["imported"] == 0
            )
            return 0 if ok else 1
        finally:
            for stop in reversed(stoppers):
                stop()


if __name__ == "__main__":
    raise SystemExit(main())
