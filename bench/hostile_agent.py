"""Agent memory and time against a hostile registry (issue 16, items 3 and 4).

    .venv/bin/python bench/hostile_agent.py [--scenario all|tags|catalog|bombs]
        [--root DIR] [--request-timeout 60] [--bomb-layers 40] [--bomb-layer-mib 1024]
        [--page-kib 64]

Runs ``cr-agent serve`` from ``--root`` (default: this checkout; pass another checkout, such
as the main branch, to compare) as a subprocess, and a hostile registry of our own
(tests/support/hostile_registry.py) in this process on 127.0.0.1. psutil samples the agent's
RSS every 10 ms; each scenario reports the agent's RSS before it, its peak during it, the
answer and the wall time.

- tags / catalog: ``GET /list/endless/repo`` and ``GET /list`` against a registry whose tag
  list and catalog pages never end (``--page-kib`` of new 40-character names per page, each
  with a ``Link`` to the next), default listing limits;
- bombs: ``POST /scan`` of one image of ``--bomb-layers`` zstd layers with distinct digests,
  each a tar of one file of ``--bomb-layer-mib`` MiB of zeros (a few KB compressed), default
  decompression budget; timed until the ``done`` callback. The layers are built as three
  concatenated zstd frames (a unique tar header, the shared zeros, the tar end) so building
  them costs little; their diffIDs are placeholders, which the agent checks only with its
  layer cache on, and the bench turns the cache off.

The agent's ``REQUEST_TIMEOUT`` is ``--request-timeout`` so a run against an agent without
the limits ends too (with a 504).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import zstandard

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deploy.processes import ServerProcess, wait_for_http, wait_for_listening_port  # noqa: E402
from shared.credentials import build_credentials_json, encode_credentials  # noqa: E402
from tests.fakes.callback_receiver import CallbackReceiver  # noqa: E402
from tests.support.hostile_registry import HostileRegistry  # noqa: E402
from tests.support.images import (  # noqa: E402
    OCI_CONFIG,
    OCI_MANIFEST,
    BuiltImage,
    sha256_digest,
)

MIB = 1 << 20
ZSTD_LAYER = "application/vnd.oci.image.layer.v1.tar+zstd"


class RssSampler:
    """Peak RSS of one process, sampled every 10 ms in a thread."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        return int(self.process.memory_info().rss)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.rss())
            except psutil.Error:
                return
            time.sleep(0.01)

    def __enter__(self) -> RssSampler:
        self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _zeros_frame(size: int) -> bytes:
    compressor = zstandard.ZstdCompressor(level=3).compressobj()
    chunk = bytes(MIB)
    parts = [compressor.compress(chunk) for _ in range(size // MIB)]
    parts.append(compressor.compress(bytes(size % MIB)))
    parts.append(compressor.flush())
    return b"".join(parts)


def bomb_image(layers: int, layer_mib: int) -> BuiltImage:
    size = layer_mib * MIB
    zeros = _zeros_frame(size)
    end = zstandard.ZstdCompressor().compress(bytes(1024))
    blobs: dict[str, bytes] = {}
    descriptors = []
    diff_ids = []
    for n in range(layers):
        info = tarfile.TarInfo(f"bomb/{n}/zeros")
        info.size = size
        blob = zstandard.ZstdCompressor().compress(info.tobuf(tarfile.USTAR_FORMAT)) + zeros + end
        digest = sha256_digest(blob)
        blobs[digest] = blob
        descriptors.append({"mediaType": ZSTD_LAYER, "size": len(blob), "digest": digest})
        diff_ids.append("sha256:" + hashlib.sha256(f"placeholder {n}".encode()).hexdigest())
    config = json.dumps(
        {
            "os": "linux",
            "architecture": "amd64",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created_by": f"bomb {n}"} for n in range(layers)],
        }
    ).encode()
    config_digest = sha256_digest(config)
    blobs[config_digest] = config
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "size": len(config), "digest": config_digest},
            "layers": descriptors,
        }
    ).encode()
    return BuiltImage(
        manifest=manifest,
        media_type=OCI_MANIFEST,
        digest=sha256_digest(manifest),
        config=config,
        config_digest=config_digest,
        blobs=blobs,
        layer_digests=[str(d["digest"]) for d in descriptors],
        diff_ids=diff_ids,
        history=[],
        platform={"os": "linux", "architecture": "amd64"},
    )


def start_agent(
    root: Path, workdir: Path, request_timeout: float, callback_url: str
) -> tuple[ServerProcess, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SNYK_", "MAX_", "LISTING_"))}
    env.update(
        # port 0 and the port from the kernel: works for a checkout from before PORT_FILE
        SNYK_PORT="0",
        HOST="127.0.0.1",
        LOG_LEVEL="warning",
        SPOOL_DIR=str(workdir / "spool"),
        LAYER_CACHE_DIR="off",
        REQUEST_TIMEOUT=str(request_timeout),
        PYTHONPATH=str(root),
        # the benchmark is the agent's only caller, with no broker client in front; a checkout
        # from before issue 10 ignores both
        CR_AGENT_AUTH="disabled",
        BROKER_CLIENT_URL=callback_url,
    )
    server = ServerProcess(
        [sys.executable, "-m", "cr_agent", "serve"],
        env=env,
        cwd=root,
        log_path=workdir / "agent.log",
    ).start()
    url = f"http://127.0.0.1:{wait_for_listening_port(server, name='cr-agent', timeout=60)}"
    wait_for_http(url + "/healthcheck", timeout=60, process=server)
    return server, url


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    registry = HostileRegistry(page_bytes=args.page_kib * 1024)
    await registry.start()
    receiver = await CallbackReceiver().start()
    rows: list[dict[str, Any]] = []
    creds = encode_credentials(
        build_credentials_json("generic-cr", base=registry.url, username="", password="")
    )
    scenarios = ["tags", "catalog", "bombs"] if args.scenario == "all" else [args.scenario]
    with tempfile.TemporaryDirectory(prefix="crb-hostile-bench-") as tmp:
        for scenario in scenarios:
            agent, url = await asyncio.to_thread(
                start_agent, Path(args.root), Path(tmp), args.request_timeout, receiver.url
            )
            try:
                async with aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=args.request_timeout + 600)
                ) as http:
                    async with http.get(url + "/healthcheck") as resp:
                        await resp.read()
                    rows.append(
                        await _scenario(scenario, args, registry, receiver, http, url, creds, agent)
                    )
            finally:
                agent.stop()
    await receiver.stop()
    await registry.stop()
    return rows


async def _scenario(
    scenario: str,
    args: argparse.Namespace,
    registry: HostileRegistry,
    receiver: CallbackReceiver,
    http: aiohttp.ClientSession,
    url: str,
    creds: str,
    agent: ServerProcess,
) -> dict[str, Any]:
    registry.requests.clear()
    headers = {"Authorization": creds}
    image = None
    if scenario == "bombs":
        image = bomb_image(args.bomb_layers, args.bomb_layer_mib)
        registry.add_image("bombs", "many", image)
        registry.endless_listing = False
    else:
        registry.endless_listing = True
    sampler = RssSampler(agent.pid)
    before = sampler.rss()
    started = time.monotonic()
    with sampler:
        if scenario == "bombs":
            body = {"images": ["bombs:many"], "callbackUrl": receiver.url}
            async with http.post(url + "/scan", json=body, headers=headers) as resp:
                await resp.read()
            await receiver.wait_for(
                "/api/v2/import/done", 1, wait_seconds=args.request_timeout + 600
            )
            result = receiver.on("/api/v2/import/result")[-1].json()
            answer = result.get("error", {}).get("code", result["status"])
            message = result.get("error", {}).get("message", "")
            receiver.received.clear()
        else:
            path = "/list/endless/repo" if scenario == "tags" else "/list"
            async with http.get(url + path, headers=headers) as resp:
                data = await resp.json(content_type=None)
            answer = f"{resp.status} {data.get('error', {}).get('code', '')}".strip()
            message = data.get("error", {}).get("message", "")
        elapsed = time.monotonic() - started
    if image is not None:
        fetched = len(set(registry.blob_requests()) & set(image.layer_digests))
        work = f"{fetched} of {args.bomb_layers} layers fetched"
    else:
        pages = len([p for m, p in registry.requests if p.endswith(("/_catalog", "/tags/list"))])
        work = f"{pages} pages read"
    return {
        "scenario": scenario,
        "answer": answer,
        "seconds": round(elapsed, 2),
        "rss_before_mb": round(before / MIB, 1),
        "rss_peak_mb": round(sampler.peak / MIB, 1),
        "work": work,
        "message": message[:160],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=["all", "tags", "catalog", "bombs"], default="all")
    parser.add_argument("--root", default=str(ROOT), help="checkout whose cr_agent to run")
    parser.add_argument("--request-timeout", type=float, default=60.0)
    parser.add_argument("--bomb-layers", type=int, default=40)
    parser.add_argument("--bomb-layer-mib", type=int, default=1024)
    parser.add_argument("--page-kib", type=int, default=64)
    args = parser.parse_args()
    rows = asyncio.run(run(args))
    print(f"{'scenario':<9} {'answer':<28} {'seconds':>8} {'RSS before':>11} {'RSS peak':>9}  work")
    for r in rows:
        print(
            f"{r['scenario']:<9} {r['answer']:<28} {r['seconds']:>8} {r['rss_before_mb']:>9} MB"
            f" {r['rss_peak_mb']:>6} MB  {r['work']}"
        )
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
