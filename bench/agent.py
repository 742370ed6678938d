"""Agent benchmark: images per minute through the whole broker path versus the scanner run
directly, and the agent's peak memory at MAX_ACTIVE_OPERATIONS 1 and 4.

    .venv/bin/python bench/agent.py [--images 12] [--layer-mb 24] [--packages 300]

Starts Debian's docker-registry on 127.0.0.1 and pushes ``--images`` distinct images built in
code (tests/support/images.py): each has a dpkg status with ``--packages`` packages and a
layer of ``--layer-mb`` MB of incompressible filler files, so the agent has real layers to
stream, decompress and walk. Then, on the same registry:

- direct: ``scan_reference`` + CycloneDX in this process (no HTTP service, no broker), the images
  scanned 1 and 4 at a time;
- broker: our broker-server + broker-client + ``cr-agent serve`` (subprocesses, as in
  ``make demo``), one ``POST /broker/<token>/scan`` job with every image, timed from the
  request until the ``/api/v2/import/done`` callback reached the upstream receiver, with
  MAX_ACTIVE_OPERATIONS=1 and =4 (a fresh agent each time). The agent's RSS (psutil, every
  10 ms) gives its peak; its RSS right after the warm-up scan is reported as the baseline.

Each path is warmed up with one untimed scan (imports, connection set-up), and neither path
uses the layer cache (every image is distinct anyway). Results print as a table and JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deploy import stack as st  # noqa: E402
from deploy.upstream_receiver import UpstreamReceiver  # noqa: E402
from tests.support.images import (  # noqa: E402
    DebPackage,
    File,
    Layer,
    build_image,
    dpkg_status,
    os_release,
    push,
)
from tests.support.registry import running_registry  # noqa: E402


@dataclass
class Row:
    path: str
    concurrency: int
    images: int
    seconds: float
    images_per_minute: float
    agent_rss_baseline_mb: float | None = None
    agent_rss_peak_mb: float | None = None


def build_images(
    count: int, layer_mb: int, packages: int, seed: int = 7
) -> list[tuple[str, object]]:
    rng = random.Random(seed)
    images = []
    file_size = 256 * 1024
    for n in range(count):
        debs = [DebPackage(f"pkg{n}-{i}", f"1.{i}-{n}") for i in range(packages)]
        filler = {
            f"usr/lib/bench/{n}/blob{i:04d}.bin": File(rng.randbytes(file_size))
            for i in range(max(1, layer_mb * 1024 * 1024 // file_size))
        }
        image = build_image(
            [
                Layer(
                    {
                        "etc/os-release": os_release("debian", "12", codename="bookworm"),
                        "var/lib/dpkg/status": dpkg_status(debs),
                    },
                    created_by="base",
                ),
                Layer(filler, compression="gzip", created_by="COPY app /usr/lib/bench"),
            ]
        )
        images.append((f"bench/agent-{n:02d}:latest", image))
    return images


class RssPeak:
    """Polls a process tree's RSS every ``interval`` seconds; ``peak`` in bytes."""

    def __init__(self, pid: int, interval: float = 0.01) -> None:
        self.proc = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def current(self) -> int:
        total = 0
        for proc in [self.proc, *self.proc.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.current())
            time.sleep(self.interval)

    def __enter__(self) -> RssPeak:
        self.peak = self.current()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def direct(base_url: str, refs: list[str], concurrency: int) -> float:
    from cr_agent.registry.aiohttp_transport import AiohttpTransport
    from cr_agent.registry.client import RegistryClient
    from cr_agent.sbom import to_cyclonedx_json
    from cr_agent.scan import scan_reference

    semaphore = asyncio.Semaphore(concurrency)
    async with RegistryClient(base_url, transport=AiohttpTransport(None, 60.0)) as client:

        async def one(ref: str) -> None:
            repository, tag = ref.rsplit(":", 1)
            async with semaphore:
                result = await scan_reference(client, repository, tag)
                to_cyclonedx_json(result)
                assert result.packages, ref

        await one(refs[0])  # warm-up
        started = time.perf_counter()
        await asyncio.gather(*(one(r) for r in refs))
        return time.perf_counter() - started


def brokered(
    workdir: Path, registry_url: str, refs: list[str], concurrency: int
) -> tuple[float, float, float]:
    """(seconds, agent baseline RSS bytes, agent peak RSS bytes)."""
    receiver = UpstreamReceiver().start()
    try:
        registry = {
            "CR_TYPE": "generic-cr",
            "CR_BASE": registry_url,
            # the registry is open; the credentials still travel the whole path
            "CR_USERNAME": "bench",
            "CR_PASSWORD": "bench-password",
        }
        # the direct path has no layer cache, so the agent runs without one too
        with st.Stack(
            workdir,
            upstream_url=receiver.url,
            registry=registry,
            max_active=concurrency,
            agent_env={"LAYER_CACHE_DIR": "off"},
        ) as stack:
            warm = st.request_scan(stack.server.url, stack.token, [refs[0]])
            receiver.wait_for_job(warm, timeout=120)
            with RssPeak(stack.agent.pid) as rss:
                baseline = rss.current()
                started = time.perf_counter()
                job = st.request_scan(
                    stack.server.url, stack.token, refs, request_id=str(uuid.uuid4())
                )
                done = receiver.wait_for_job(job, timeout=600)
                seconds = time.perf_counter() - started
            if done.get("failed"):
                raise RuntimeError(f"brokered scan failed: {json.dumps(done)[:500]}")
            return seconds, baseline, rss.peak
    finally:
        receiver.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--layer-mb", type=int, default=24)
    parser.add_argument("--packages", type=int, default=300)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    mb = 1024 * 1024
    rows: list[Row] = []
    started = time.perf_counter()
    images = build_images(args.images, args.layer_mb, args.packages)
    print(
        f"built {len(images)} images ({args.layer_mb} MB filler + {args.packages} dpkg packages "
        f"each) in {time.perf_counter() - started:.1f}s",
        file=sys.stderr,
    )
    with running_registry("none") as registry:
        for ref, image in images:
            repository, tag = ref.rsplit(":", 1)
            push(registry.url, repository, image, tag=tag)  # type: ignore[arg-type]
        refs = [ref for ref, _ in images]
        for concurrency in (1, 4):
            seconds = asyncio.run(direct(registry.url, refs, concurrency))
            rows.append(Row("direct", concurrency, len(refs), seconds, len(refs) * 60 / seconds))
            print(f"direct x{concurrency}: {seconds:.2f}s", file=sys.stderr)
        with tempfile.TemporaryDirectory(prefix="bench-agent-") as tmp:
            for concurrency in (1, 4):
                seconds, baseline, peak = brokered(
                    Path(tmp) / f"max{concurrency}", registry.url, refs, concurrency
                )
                rows.append(
                    Row(
                        "broker",
                        concurrency,
                        len(refs),
                        seconds,
                        len(refs) * 60 / seconds,
                        round(baseline / mb, 1),
                        round(peak / mb, 1),
                    )
                )
                print(f"broker x{concurrency}: {seconds:.2f}s", file=sys.stderr)
    print(
        f"\n{'path':8} {'MAX_ACTIVE':>10} {'images':>6} {'seconds':>8} {'images/min':>10} "
        f"{'agent RSS base MB':>17} {'agent RSS peak MB':>17}"
    )
    for row in rows:
        base = "-" if row.agent_rss_baseline_mb is None else f"{row.agent_rss_baseline_mb:.1f}"
        peak = "-" if row.agent_rss_peak_mb is None else f"{row.agent_rss_peak_mb:.1f}"
        print(
            f"{row.path:8} {row.concurrency:>10} {row.images:>6} {row.seconds:>8.2f} "
            f"{row.images_per_minute:>10.1f} {base:>17} {peak:>17}"
        )
    for concurrency in (1, 4):
        d = next(r for r in rows if r.path == "direct" and r.concurrency == concurrency)
        b = next(r for r in rows if r.path == "broker" and r.concurrency == concurrency)
        overhead = (b.seconds - d.seconds) / b.images * 1000
        print(
            f"x{concurrency}: broker path {b.images_per_minute / d.images_per_minute:.0%} of direct "
            f"throughput, {overhead:+.0f} ms per image"
        )
    data = {
        "args": vars(args) | {"json": str(args.json) if args.json else None},
        "cpus": os.cpu_count(),
        "rows": [asdict(r) for r in rows],
    }
    print(json.dumps(data))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(data, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
