"""Broker server memory under a hostile token (issue 16.6): peak and settled RSS of ``broker-server``
while one token opens many websockets and sends a huge message on each.

The hostile client is ``tests/broker_server/hostile.py`` (one prebuilt masked frame shared by every
connection, so the load costs this process one message, not one per socket). While the flood runs,
a well-behaved client of another token answers ``/broker`` requests; the bench reports how many
were served and how. The server's RSS is sampled every 10 ms with psutil.

    .venv/bin/python bench/server_memory.py [--connections 32] [--message-mb 21] \
        [--kind callback|data] [--checkout DIR]

``--checkout DIR`` runs the broker server from another checkout of this repository (for example
the commit before the limits, unpacked with ``git archive <commit> | tar -x -C DIR``), so before
and after are measured by the same load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402
import psutil  # noqa: E402

from deploy.processes import ServerProcess, refused_port, wait_for_http, wait_for_listening_port  # noqa: E402
from tests.broker_server.hostile import (  # noqa: E402
    Outcome,
    callback_message,
    data_message,
    flood,
    text_frame,
)
from tests.broker_server.peer import WsPeer, echo_handler  # noqa: E402

TOKEN = "7b1d3c0e-4a2f-4c55-9e8d-5f0a1b2c3d4e"
OTHER = "0c9e8d7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f"
MB = 1_000_000


class PeakSampler:
    """Samples a process's RSS in a thread until stopped; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.01) -> None:
        self.process = psutil.Process(pid)
        self.interval = interval
        self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.interval)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def start_server(checkout: Path, workdir: Path) -> tuple[ServerProcess, str]:
    dead_upstream = f"http://127.0.0.1:{refused_port()}"  # callbacks fail fast: 502
    accept = workdir / "accept.json"
    accept.write_text(
        json.dumps(
            {
                "private": [{"method": "POST", "path": "/api/*", "origin": dead_upstream}],
                "public": [{"method": "any", "path": "/*"}],
            }
        )
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(checkout),
        # port 0 and the port from the kernel: works for a checkout from before PORT_FILE
        "PORT": "0",
        "BROKER_SERVER_HOST": "127.0.0.1",
        "BROKER_TOKENS": f"{TOKEN},{OTHER}",
        "ACCEPT": str(accept),
        "LOG_LEVEL": "warning",
    }
    process = ServerProcess(
        [sys.executable, "-m", "broker_server"],
        env=env,
        cwd=checkout,
        log_path=workdir / "server.log",
    ).start()
    url = f"http://127.0.0.1:{wait_for_listening_port(process, name='broker-server')}"
    wait_for_http(f"{url}/healthcheck", timeout=30, process=process)
    return process, url


async def load(
    url: str, connections: int, frame: bytes
) -> tuple[list[Outcome], Counter[int], float]:
    other = WsPeer(url, OTHER)
    await other.connect()
    other.handler = echo_handler
    await other.identify()
    served: Counter[int] = Counter()
    slowest = 0.0
    flooding = asyncio.create_task(flood(url, TOKEN, connections=connections, frame=frame))
    async with aiohttp.ClientSession() as http:
        while not flooding.done():
            asked = time.monotonic()
            try:
                async with http.get(
                    f"{url}/broker/{OTHER}/during", timeout=aiohttp.ClientTimeout(total=30)
                ) as resp:
                    await resp.read()
                    served[resp.status] += 1
            except (aiohttp.ClientError, TimeoutError):
                served[0] += 1
            slowest = max(slowest, time.monotonic() - asked)
            await other.ping()  # Primus' idle timer: a client that only answers looks dead
            await asyncio.sleep(0.05)
    await other.close()
    return await flooding, served, slowest


def describe(outcomes: list[Outcome]) -> str:
    kinds: Counter[str] = Counter()
    for o in outcomes:
        if o.status != 101:
            kinds[f"handshake {o.status}"] += 1
        elif o.close_code is not None:
            kinds[f"closed {o.close_code}"] += 1
        elif o.answers:
            kinds[f"answered {o.answers[0]['status']}"] += 1
        elif o.notices:
            kinds["notified"] += 1
        else:
            kinds["no answer"] += 1
    return ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--message-mb", type=float, default=21)
    parser.add_argument("--kind", choices=("callback", "data"), default="callback")
    parser.add_argument("--checkout", type=Path, default=REPO)
    args = parser.parse_args()
    size = int(args.message_mb * MB)
    message = (
        callback_message("/api/v2/import/result", size - 100)
        if args.kind == "callback"
        else data_message(size)
    )
    frame = text_frame(message)
    with tempfile.TemporaryDirectory() as tmp:
        process, url = start_server(args.checkout.resolve(), Path(tmp))
        try:
            proc = psutil.Process(process.pid)
            time.sleep(0.5)
            idle = proc.memory_info().rss
            started = time.monotonic()
            with PeakSampler(process.pid) as sampler:
                outcomes, served, slowest = asyncio.run(load(url, args.connections, frame))
            seconds = time.monotonic() - started
            time.sleep(2.0)
            settled = proc.memory_info().rss
        finally:
            process.stop()
    print(
        f"checkout {args.checkout}: {args.connections} sockets x {len(message) / MB:.1f} MB "
        f"({args.kind}) from one token, {seconds:.1f} s"
    )
    print(
        f"  server RSS: idle {idle / MB:.0f} MB, peak {sampler.peak / MB:.0f} MB, "
        f"2 s after {settled / MB:.0f} MB"
    )
    print(f"  hostile sockets: {describe(outcomes)}")
    print(
        "  other token during the flood: "
        + ", ".join(f"{n} x {status or 'error'}" for status, n in sorted(served.items()))
        + f" (slowest {slowest:.2f} s)"
    )


if __name__ == "__main__":
    main()
