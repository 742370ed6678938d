"""Control-plane ingestion benchmark: scan results stored per second, on SQLite and PostgreSQL.

    .venv/bin/python bench/control_plane_ingest.py [--results 400] [--packages 300]
        [--concurrency 1,8] [--db sqlite,postgresql] [--advisories 0] [--json out.json]

For each database: a fresh database migrated by the control plane itself, one org, one
brokered integration, ``--results`` projects each with a scan already handed to an agent
(``running``), as the dispatcher leaves them. Then the agents' callbacks arrive: one
``POST /api/v2/import/result`` per scan, as the relay forwards them, to the control plane's
callback route served by aiohttp in this process on 127.0.0.1, ``--concurrency`` at a time.
Each body is what the agent sends for an image with ``--packages`` dpkg packages (a
CycloneDX document shaped like cr_agent's, ~1 KB per package) and the scan's ticket.

Also reported: CPU milliseconds of this process per result (the control plane and the
small client posting bodies; PostgreSQL's own CPU not included), which does not depend on
what else the machine runs, and the load average at the end of each run.

What one result costs: parse and validate the body, check the ticket (Fernet), lock the
scan, derive SPDX from the CycloneDX, compress both (zstd), insert two SBOM rows, update the
scan and the project; with ``--advisories N`` (N OSV records for Debian 12 imported first, one
per package of the image, fixed above what is installed) each landed result is also matched
(SBOM read, compact inventory and counts stored). Reported: results/s over the whole run and p50/p99 latency of one
callback. PostgreSQL is Debian's, started by tests/support/postgres.py (fsync off as in the
tests). Compare with how fast agents produce results: docs/benchmarks.md "Agent through the
broker" (573-679 images/min per agent, i.e. about 10-11 results/s, for 300-package images).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiohttp import ClientSession, web  # noqa: E402
from aiohttp.test_utils import TestServer  # noqa: E402
from cryptography.fernet import Fernet  # noqa: E402
from sqlalchemy import func, select, update  # noqa: E402

from control_plane.accounts.services import create_org  # noqa: E402
from control_plane.advisories.advisory_files import read_document  # noqa: E402
from control_plane.advisories.models import ScanIssueCounts  # noqa: E402
from control_plane.advisories.services import import_advisories  # noqa: E402
from control_plane.api import agent_callbacks  # noqa: E402
from control_plane.db import Database, open_database  # noqa: E402
from control_plane.encryption import SecretBox  # noqa: E402
from control_plane.models import Integration, Project, Scan, Target, utcnow  # noqa: E402
from control_plane.queue.dispatch import seal  # noqa: E402
from shared.logging import configure_logging  # noqa: E402
from tests.support.postgres import start_postgres, unavailable_reason  # noqa: E402


def cyclonedx(image: str, packages: int) -> dict[str, Any]:
    """A document shaped like cr_agent's CycloneDX for ``packages`` dpkg packages."""
    components: list[dict[str, Any]] = [
        {"type": "operating-system", "bom-ref": "os:debian:12", "name": "debian", "version": "12"}
    ]
    for n in range(packages):
        name, version = f"lib-bench-{n:05d}", f"{n % 7}.{n}-{n % 3 + 1}"
        purl = f"pkg:deb/debian/{name}@{version}?arch=amd64&distro=debian-12"
        components.append(
            {
                "type": "library",
                "bom-ref": f"pkg:{n}:{purl}",
                "name": name,
                "version": version,
                "purl": purl,
                "licenses": [{"license": {"id": "GPL-2.0-or-later"}}],
                "properties": [
                    {"name": "crbroker:package:type", "value": "deb"},
                    {"name": "crbroker:layer:index", "value": "0"},
                    {"name": "crbroker:layer:diffID", "value": "sha256:" + "c" * 64},
                    {"name": "crbroker:package:database", "value": "var/lib/dpkg/status"},
                ],
            }
        )
    image_ref = "image:sha256:" + "d" * 64
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": "urn:uuid:00000000-0000-4000-8000-000000000000",
        "version": 1,
        "metadata": {
            "timestamp": "2026-01-01T00:00:00Z",
            "component": {"type": "container", "bom-ref": image_ref, "name": image},
        },
        "components": components,
        "dependencies": [{"ref": image_ref, "dependsOn": [c["bom-ref"] for c in components]}],
    }


async def prepare(db: Database, box: SecretBox, count: int, packages: int) -> list[bytes]:
    """``count`` running scans and the result body the agent would send for each."""
    async with db.sessions() as session, session.begin():
        org = await create_org(session, "Bench")
        integration = Integration(
            org_id=org.id,
            integration_type="generic-cr",
            profile_name="bench",
            has_broker=True,
            max_in_flight=count,
        )
        session.add(integration)
        await session.flush()
        scans = []
        for n in range(count):
            target = Target(
                org_id=org.id,
                integration_id=integration.id,
                repository=f"bench/app{n}",
                display_name=f"bench/app{n}",
            )
            session.add(target)
            await session.flush()
            project = Project(
                org_id=org.id,
                target_id=target.id,
                integration_id=integration.id,
                name=f"bench/app{n}:1",
                target_reference="1",
                origin="generic-cr",
                tags=[],
            )
            session.add(project)
            await session.flush()
            scan = Scan(org_id=org.id, project_id=project.id, integration_id=integration.id)
            session.add(scan)
            scans.append(scan)
        await session.flush()
        now = utcnow()
        await session.execute(
            update(Scan).values(
                status="running", claimed_by="bench", claimed_at=now, started_at=now
            )
        )
    bodies = []
    for n, scan in enumerate(scans):
        body = {
            "jobId": f"job-{n}",
            "resultId": f"result-{scan.id}",
            "image": f"bench/app{n}:1",
            "status": "success",
            "digest": "sha256:" + "d" * 64,
            "platform": "linux/amd64",
            "distro": {"id": "debian", "version_id": "12"},
            "format": "cyclonedx-json",
            "packageCount": packages,
            "sbom": cyclonedx(f"bench/app{n}", packages),
            "context": {"scan": str(scan.id), "ticket": seal(box, scan.id)},
        }
        bodies.append(json.dumps(body, separators=(",", ":")).encode())
    return bodies


async def deliver(url: str, bodies: list[bytes], concurrency: int) -> tuple[float, list[float]]:
    """POST every body, ``concurrency`` at a time; (seconds, per-request seconds)."""
    latencies: list[float] = []
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def worker(http: ClientSession) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            started = time.perf_counter()
            async with http.post(
                url, data=body, headers={"Content-Type": "application/json"}
            ) as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"callback answered {resp.status}")
            latencies.append(time.perf_counter() - started)

    async with ClientSession() as http:
        started = time.perf_counter()
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
        return time.perf_counter() - started, latencies


def advisory_records(count: int) -> list[dict[str, Any]]:
    """OSV records affecting the bench image's packages (``lib-bench-N``), fixed above."""
    return [
        {
            "id": f"DEBIAN-BENCH-{n}",
            "modified": "2024-05-01T00:00:00Z",
            "severity": [
                {"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"}
            ],
            "affected": [
                {
                    "package": {"ecosystem": "Debian:12", "name": f"lib-bench-{n:05d}"},
                    "ranges": [
                        {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "99.0-1"}]}
                    ],
                }
            ],
        }
        for n in range(count)
    ]


async def run_one(
    url: str, *, results: int, packages: int, concurrency: int, advisories: int = 0
) -> dict[str, Any]:
    box = SecretBox(Fernet.generate_key())
    db = await open_database(url, pool_size=max(5, concurrency + 2))
    try:
        bodies = await prepare(db, box, results, packages)
        if advisories:
            outcome = read_document(advisory_records(advisories), "bench")
            async with db.sessions() as session, session.begin():
                await import_advisories(session, outcome.advisories, outcome.skipped)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        agent_callbacks.add_routes(app, db.sessions, box)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        try:
            warm, bodies = bodies[:10], bodies[10:]
            await deliver(str(server.make_url("/api/v2/import/result")), warm, 1)
            cpu = time.process_time()
            seconds, latencies = await deliver(
                str(server.make_url("/api/v2/import/result")), bodies, concurrency
            )
            cpu = time.process_time() - cpu
        finally:
            await server.close()
        async with db.sessions() as session:
            matched = await session.scalar(
                select(func.count()).select_from(ScanIssueCounts).where(ScanIssueCounts.high > 0)
            )
    finally:
        await db.close()
    latencies.sort()
    return {
        "results": len(bodies),
        "packages": packages,
        "advisories": advisories,
        "matched_with_issues": matched,
        "body_kb": round(statistics.mean(len(b) for b in warm) / 1024, 1),
        "concurrency": concurrency,
        "seconds": round(seconds, 3),
        "results_per_s": round(len(bodies) / seconds, 1),
        # this process: the control plane plus the small client posting the bodies
        "cpu_ms_per_result": round(cpu / len(bodies) * 1000, 1),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 1),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 1),
    }


async def main() -> None:
    configure_logging("warning", service="bench")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=int, default=400)
    parser.add_argument("--packages", type=int, default=300)
    parser.add_argument("--concurrency", default="1,8")
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--advisories", type=int, default=0, help="OSV records imported first")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    for name in args.db.split(","):
        for concurrency in [int(c) for c in args.concurrency.split(",")]:
            if name == "sqlite":
                with tempfile.TemporaryDirectory() as tmp:
                    url = f"sqlite+aiosqlite:///{tmp}/bench.db"
                    row = await run_one(
                        url,
                        results=args.results,
                        packages=args.packages,
                        concurrency=concurrency,
                        advisories=args.advisories,
                    )
            else:
                reason = unavailable_reason()
                if reason:
                    print(f"postgresql skipped: {reason}")
                    continue
                pg = start_postgres()
                try:
                    row = await run_one(
                        pg.create_database(),
                        results=args.results,
                        packages=args.packages,
                        concurrency=concurrency,
                        advisories=args.advisories,
                    )
                finally:
                    pg.stop()
            row = {"db": name, **row}
            rows.append(row)
            print(
                f"{name:10s} c={concurrency:<3d} {row['results']} results of {row['body_kb']} KB: "
                f"{row['results_per_s']} results/s, p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms, "
                f"{row['cpu_ms_per_result']} ms CPU/result, {row['matched_with_issues']} matched "
                f"with issues, load {os.getloadavg()[0]:.1f}"
            )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
