"""``make demo``: the whole product end to end on one machine, in well under a minute.

1. Debian's docker-registry on a free 127.0.0.1 port, with htpasswd credentials made up now;
2. sample images built in code and pushed (Debian-like, distroless, Alpine-like, rpm-based);
3. an upstream receiver standing in for the scanning service, writing SBOMs to demo-output/;
4. our broker server, broker client (holding the registry credentials) and agent, each a
   subprocess with embedded defaults (generated token, free ports);
5. every image scanned THROUGH the broker: server ``/broker/<token>/scan`` -> client -> agent
   -> registry, results back via the client's callback path and the server to the receiver;
6. a table of image, distro, packages and seconds.

Everything started is stopped at the end, on Ctrl-C and on SIGTERM. A failing step exits
non-zero with a message naming the step.
"""

from __future__ import annotations

import argparse
import contextlib
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


def _distro(result: dict[str, Any]) -> str:
    distro = result.get("distro") or {}
    return " ".join(str(distro[k]) for k in ("id", "version_id") if distro.get(k)) or "-"


def run(output_dir: Path, keep_logs: bool) -> int:
    # imported here so `--help` and the prerequisite message work even in a broken venv
    from deploy import stack as st
    from deploy.sample_images import push_all, sample_images
    from deploy.upstream_receiver import UpstreamReceiver
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
        with steps.step("starting upstream receiver, broker server, broker client and agent"):
            if output_dir.exists():
                for old in output_dir.glob("*.json"):
                    old.unlink()
            receiver = UpstreamReceiver(output_dir).start()
            cleanup.append(receiver.stop)
            stack = st.Stack(
                workdir / "services",
                upstream_url=receiver.url,
                registry={
                    "CR_TYPE": "generic-cr",
                    "CR_BASE": registry.url,
                    "CR_USERNAME": username,
                    "CR_PASSWORD": password,
                },
            )
            cleanup.append(stack.stop)
            stack.start()
        with steps.step("listing repositories through the broker"):
            status, body = st.broker_request(stack.server.url, stack.token, "GET", "/list")
            if status != 200 or not isinstance(body, dict):
                raise DemoFailed(f"GET /broker/<token>/list answered {status}: {body!r}"[:500])
            expected = {s.repository for s in images}
            if not expected <= set(body["repositories"]):
                raise DemoFailed(f"the agent listed {body['repositories']}, expected {expected}")
        rows: list[tuple[str, str, str, str]] = []
        with steps.step(f"scanning {len(images)} images through the broker"):
            for sample in images:
                started = time.monotonic()
                job = st.request_scan(stack.server.url, stack.token, [sample.reference])
                done = receiver.wait_for_job(job, timeout=60)
                seconds = time.monotonic() - started
                results = receiver.job_results(job)
                if done.get("failed") or not results or results[0].get("status") != "success":
                    error = results[0].get("error") if results else done
                    raise DemoFailed(f"scan of {sample.reference} failed: {error}")
                result = results[0]
                rows.append(
                    (
                        sample.reference,
                        _distro(result),
                        str(result.get("packageCount", "?")),
                        f"{seconds:.2f}",
                    )
                )
        # the point of the broker: the scanning service never holds registry credentials
        from shared.credentials import build_credentials_json, encode_credentials

        blob = encode_credentials(
            build_credentials_json(
                "generic-cr", base=registry.url, username=username, password=password
            )
        ).strip()
        seen = receiver.all_bytes()
        if any(s.encode() in seen for s in (password, f"{username}:{password}", blob)):
            raise DemoFailed("the registry password reached the upstream receiver")
        print()
        print(_table(rows))
        print()
        where = output_dir.resolve()
        print(f"CycloneDX SBOMs written to {where}/:")
        for path in sorted(receiver.written.values()):
            print(f"  {path.name}")
        print(
            f"The upstream receiver got {len(receiver.requests)} callbacks and no registry "
            "credentials."
        )
        print(
            "Path of each scan: broker server /broker/<token>/scan -> broker client (adds "
            "CR_CREDENTIALS) -> agent -> registry; results: agent -> broker client "
            "/api/v2/import/result -> broker server -> upstream receiver."
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
