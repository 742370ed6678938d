"""Tunnel benchmark: a broker server and a broker client in front of a small agent, on loopback.

For each (server, client) pair in ``PAIRS``, in one run:
  * requests/s and p50/p99 latency for small GETs through ``/broker/<token>/list/small`` at
    1, 8 and 64 requests in flight;
  * CPU seconds of the client process and of the server process per 1000 of those requests;
  * seconds and peak client RSS for one 60 MB answer (POST-stream path), checked by sha256.

    .venv/bin/python bench/tunnel.py [--seconds 5] [--pairs snyk+ours,snyk+snyk,ours+ours,ours+snyk]

Adding a pair is one line in ``PAIRS``: a label, a server starter and a client starter. Starters
take ``(workdir, ...)`` and return a handle with ``url``/``pid``/``stop()``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402
import psutil  # noqa: E402

from deploy import stack as st  # noqa: E402
from deploy.processes import ServerProcess, refused_port, wait_for_listening_port  # noqa: E402
from tests.broker_client.agent import big_sha256  # noqa: E402
from tests.support import snyk_broker  # noqa: E402

BIG = 60_000_000
LEVELS = (1, 8, 64)


class Running(Protocol):
    @property
    def url(self) -> str: ...

    @property
    def pid(self) -> int: ...

    def stop(self) -> None: ...


ServerStarter = Callable[[Path, str], Running]  # (workdir, upstream_url)
ClientStarter = Callable[[Path, str, str, str], Running]  # (workdir, server_url, token, agent_url)


# --------------------------------------------------------------------------- servers


def snyk_server(workdir: Path, upstream_url: str) -> Running:
    return snyk_broker.start_server(
        workdir, accept=snyk_broker.server_accept(upstream_url), log_level="warn"
    )


def crbroker_server(workdir: Path, upstream_url: str) -> Running:
    """Our broker server with the same rules as the snyk server; tokens from ``workdir/tokens``."""
    return st.start_broker_server(
        workdir,
        token=None,
        accept=snyk_broker.server_accept(upstream_url),
        env={"BROKER_TOKEN_FILE": str(workdir / "tokens"), "LOG_LEVEL": "warning"},
        startup=st.Startup(log="crbroker-server.log"),
    )


# --------------------------------------------------------------------------- clients


def crbroker_client(workdir: Path, server_url: str, token: str, agent_url: str) -> Running:
    return st.start_broker_client(
        workdir,
        token=token,
        server_url=server_url,
        agent_url=agent_url,
        registry={"CR_TYPE": "docker-hub", "CR_USERNAME": "bench", "CR_PASSWORD": "bench-password"},
        validation_path=None,
        startup=st.Startup(log="crbroker-client.log"),
    )


def snyk_client(workdir: Path, server_url: str, token: str, agent_url: str) -> Running:
    return snyk_broker.start_client(
        workdir,
        token=token,
        server_url=server_url,
        env={"CR_AGENT_URL": agent_url},
        log_level="warn",
    )


@dataclass(frozen=True)
class Pair:
    label: str
    server: ServerStarter
    client: ClientStarter


PAIRS: dict[str, Pair] = {
    "snyk+ours": Pair("snyk-broker server + crbroker client", snyk_server, crbroker_client),
    "snyk+snyk": Pair("snyk-broker server + snyk-broker client", snyk_server, snyk_client),
    "ours+ours": Pair("crbroker server + crbroker client", crbroker_server, crbroker_client),
    "ours+snyk": Pair("crbroker server + snyk-broker client", crbroker_server, snyk_client),
}


# --------------------------------------------------------------------------- measuring


def cpu_seconds(pid: int) -> float:
    proc = psutil.Process(pid)
    total = sum(proc.cpu_times()[:2])
    for child in proc.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.NoSuchProcess:
            pass
    return total


def rss(pid: int) -> int:
    proc = psutil.Process(pid)
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


async def load(url: str, in_flight: int, seconds: float) -> tuple[int, list[float], int]:
    """(completed requests, latencies in s, errors) over ``seconds`` with ``in_flight`` workers."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=in_flight)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    async with session.get(url) as resp:
                        await resp.read()
                        if resp.status != 200:
                            errors += 1
                            continue
                except aiohttp.ClientError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(worker() for _ in range(in_flight)))
    return len(latencies), latencies, errors


async def big_download(url: str, pid: int) -> tuple[float, int, bool]:
    """(seconds, peak client RSS during the transfer, sha256 ok)."""
    peak = rss(pid)
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            try:
                peak = max(peak, rss(pid))
            except psutil.NoSuchProcess:
                return
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    digest = hashlib.sha256()
    started = time.perf_counter()
    try:
        timeout = aiohttp.ClientTimeout(total=300)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as resp:
            async for chunk in resp.content.iter_chunked(1 << 20):
                digest.update(chunk)
    finally:
        elapsed = time.perf_counter() - started
        done.set()
        sampler.join()
    return elapsed, peak, digest.hexdigest() == big_sha256(BIG)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class Result:
    label: str
    rows: list[dict[str, Any]]
    big_seconds: float
    big_peak_mb: float
    big_ok: bool
    cpu_per_1000: float
    server_cpu_per_1000: float = float("nan")
    server_rss_growth_mb: float = float("nan")


async def run_pair(pair: Pair, workdir: Path, agent_url: str, seconds: float) -> Result:
    upstream_port = refused_port()  # callbacks are not part of this benchmark
    token = str(uuid.uuid4())
    # our server admits only known tokens (read from this file); the snyk server ignores it
    (workdir / "server").mkdir(parents=True, exist_ok=True)
    (workdir / "server" / "tokens").write_text(token + "\n")
    server = pair.server(workdir / "server", f"http://127.0.0.1:{upstream_port}")
    client = None
    try:
        client = pair.client(workdir / "client", server.url, token, agent_url)
        snyk_broker.wait_for_clients(server.url, token, 2, timeout=30)
        small = f"{server.url}/broker/{token}/list/small"
        await load(small, 8, 1.0)  # warm-up: connections, JIT, caches
        rows = []
        cpu_total = 0.0
        count_total = 0
        server_cpu_total = 0.0
        for level in LEVELS:
            cpu_before = cpu_seconds(client.pid)
            server_cpu_before = cpu_seconds(server.pid)
            started = time.perf_counter()
            count, latencies, errors = await load(small, level, seconds)
            elapsed = time.perf_counter() - started
            cpu_used = cpu_seconds(client.pid) - cpu_before
            server_cpu_used = cpu_seconds(server.pid) - server_cpu_before
            cpu_total += cpu_used
            server_cpu_total += server_cpu_used
            count_total += count
            rows.append(
                {
                    "in_flight": level,
                    "rps": count / elapsed,
                    "p50_ms": percentile(latencies, 0.50) * 1000,
                    "p99_ms": percentile(latencies, 0.99) * 1000,
                    "errors": errors,
                    "cpu_per_1000": cpu_used / max(count, 1) * 1000,
                    "server_cpu_per_1000": server_cpu_used / max(count, 1) * 1000,
                }
            )
        server_rss_before = rss(server.pid)
        big_seconds, peak, ok = await big_download(
            f"{server.url}/broker/{token}/list/big/{BIG}", client.pid
        )
        server_rss_after = rss(server.pid)
        return Result(
            pair.label,
            rows,
            big_seconds,
            peak / 1e6,
            ok,
            cpu_total / max(count_total, 1) * 1000,
            server_cpu_total / max(count_total, 1) * 1000,
            (server_rss_after - server_rss_before) / 1e6,
        )
    finally:
        if client is not None:
            client.stop()
        server.stop()


def start_agent(workdir: Path) -> tuple[ServerProcess, str]:
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO)}
    agent = ServerProcess(
        [sys.executable, "-m", "tests.broker_client.agent", "0"],
        env=env,
        cwd=REPO,
        log_path=workdir / "agent.log",
    ).start()
    port = wait_for_listening_port(agent, name="test agent", timeout=20)
    return agent, f"http://127.0.0.1:{port}"


def report(results: list[Result], seconds: float) -> str:
    lines = [
        f"Small GETs (`/list/small`, {seconds:g} s per level); CPU = user+sys of the client / server process.",
        "",
        "| pair | in flight | req/s | p50 ms | p99 ms | errors | client CPU s / 1000 req | server CPU s / 1000 req |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for result in results:
        for row in result.rows:
            lines.append(
                f"| {result.label} | {row['in_flight']} | {row['rps']:.0f} | {row['p50_ms']:.1f} | "
                f"{row['p99_ms']:.1f} | {row['errors']} | {row['cpu_per_1000']:.2f} | "
                f"{row['server_cpu_per_1000']:.2f} |"
            )
    lines += [
        "",
        "60 MB answer (POST-stream path), sha256 checked:",
        "",
        "| pair | seconds | peak client RSS MB | server RSS growth MB | intact | client CPU s / 1000 small req (all levels) | server CPU s / 1000 small req |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for result in results:
        lines.append(
            f"| {result.label} | {result.big_seconds:.2f} | {result.big_peak_mb:.0f} | "
            f"{result.server_rss_growth_mb:.0f} | {'yes' if result.big_ok else 'NO'} | "
            f"{result.cpu_per_1000:.2f} | {result.server_cpu_per_1000:.2f} |"
        )
    if len(results) >= 2:
        ours, peer = results[0], results[1]
        lines.append("")
        for a, b in zip(ours.rows, peer.rows, strict=True):
            lines.append(
                f"- {a['in_flight']} in flight: {ours.label} / {peer.label} = "
                f"{a['rps'] / max(b['rps'], 1e-9):.2f}x req/s"
            )
        lines.append(f"- 60 MB: {ours.big_seconds:.2f} s vs {peer.big_seconds:.2f} s")
    by_label = {r.label: r for r in results}
    ours_pair = by_label.get(PAIRS["ours+ours"].label)
    snyk_pair = by_label.get(PAIRS["snyk+snyk"].label)
    if ours_pair is not None and snyk_pair is not None:
        lines.append("")
        for a, b in zip(ours_pair.rows, snyk_pair.rows, strict=True):
            lines.append(
                f"- {a['in_flight']} in flight: {ours_pair.label} / {snyk_pair.label} = "
                f"{a['rps'] / max(b['rps'], 1e-9):.2f}x req/s"
            )
        lines.append(
            f"- 60 MB: {ours_pair.label} {ours_pair.big_seconds:.2f} s vs "
            f"{snyk_pair.label} {snyk_pair.big_seconds:.2f} s"
        )
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> str:
    reason = snyk_broker.missing_reason()
    if reason:
        raise SystemExit(f"cannot run: {reason}")
    snyk_broker.prepare()
    with tempfile.TemporaryDirectory(prefix="bench-tunnel-") as tmp:
        workdir = Path(tmp)
        agent, agent_url = start_agent(workdir)
        try:
            results = []
            for key in args.pairs.split(","):
                pair = PAIRS[key]
                print(f"running {pair.label} ...", file=sys.stderr)
                results.append(
                    await run_pair(pair, workdir / key.replace("+", "-"), agent_url, args.seconds)
                )
        finally:
            agent.stop()
    return report(results, args.seconds)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each load level")
    parser.add_argument(
        "--pairs", default=",".join(PAIRS), help=f"comma list of {', '.join(PAIRS)}"
    )
    args = parser.parse_args()
    unknown = [p for p in args.pairs.split(",") if p not in PAIRS]
    if unknown:
        parser.error(f"unknown pair(s) {', '.join(unknown)}; known: {', '.join(PAIRS)}")
    print(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
