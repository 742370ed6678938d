"""Console benchmark: the container-images page with 10,000 images, time to first byte and to
the full page.

    .venv/bin/python bench/console.py [--projects 10000] [--requests 300] [--db sqlite,postgresql]

For each database: the data of bench/control_plane.py (``--projects`` projects in 2,000
targets of three registries, inserted in bulk by its ``populate``), plus one succeeded scan for
every other project, so the scan-status column and filter read real rows. The console runs in
this process on 127.0.0.1 (uvloop when installed, as ``crbroker-server``); a signed-in
aiohttp client asks one request at a time, after 20 untimed warm-up requests:

- first: ``GET /console/images`` (sorted by name, first page of 50);
- walk: the same, following the page's "Next" link (keyset), wrapping to the first page;
- filtered: ``?status=succeeded&name=service-1&sort=-dependencies``, walking "Next" too.

``ttfb`` is the wall time until the response's headers arrive (the page is rendered before it
is sent, so this is the server's whole work), ``full`` until the last byte of the HTML is read;
``cpu ms`` is this process's CPU time per request (client, server and aiosqlite's thread;
PostgreSQL's own work is in another process), which depends less on what else the machine
runs; ``load`` is the 1-minute load average at the end.
Results print as a table and JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import re
import sys
import time
from html import unescape
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiohttp import ClientSession, CookieJar, web  # noqa: E402
from aiohttp.test_utils import TestServer  # noqa: E402
from cryptography.fernet import Fernet  # noqa: E402
from sqlalchemy import insert, select, text  # noqa: E402

from control_plane.accounts.services import set_password  # noqa: E402
from control_plane.api import setup_api  # noqa: E402
from control_plane.console.app import setup_console  # noqa: E402
from control_plane.db import Database, open_database  # noqa: E402
from control_plane.encryption import SecretBox  # noqa: E402
from control_plane.ids import new_id  # noqa: E402
from control_plane.integrations.registry_agent import RegistryAgent  # noqa: E402
from control_plane.models import Project, Scan, utcnow  # noqa: E402
from control_plane.server_settings import load_server_settings  # noqa: E402
from shared.logging import configure_logging  # noqa: E402

_spec = importlib.util.spec_from_file_location(
    "bench_control_plane", ROOT / "bench/control_plane.py"
)
assert _spec is not None and _spec.loader is not None
_api_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_api_bench)

PASSWORD = "bench-password"
NEXT = re.compile(r'<a href="([^"]+)" rel="next">')


async def add_scans(db: Database) -> None:
    """A succeeded scan for every other project (the one its latest_scan_id names)."""
    async with db.sessions() as session, session.begin():
        rows = (
            await session.execute(
                select(Project.id, Project.org_id, Project.latest_scan_id).order_by(Project.id)
            )
        ).all()
        now = utcnow()
        scans = [
            {
                "id": scan_id or new_id(),
                "org_id": org_id,
                "project_id": project_id,
                "status": "succeeded",
                "reason": "import",
                "priority": 0,
                "attempts": 1,
                "requested_at": now,
                "finished_at": now,
                "package_count": 100,
            }
            for n, (project_id, org_id, scan_id) in enumerate(rows)
            if n % 2 == 0
        ]
        for start in range(0, len(scans), 1000):
            await session.execute(insert(Scan), scans[start : start + 1000])
    async with db.engine.connect() as conn:
        await conn.execute(text("ANALYZE"))
        await conn.commit()


async def walk(http: ClientSession, base: str, first: str, count: int) -> list[tuple[float, float]]:
    """``count`` timed pages following "Next", wrapping to ``first``: (ttfb ms, full ms)."""
    times = []
    path = first
    for _ in range(count):
        began = time.perf_counter()
        async with http.get(base + path, allow_redirects=False) as resp:
            headers_at = time.perf_counter()
            body = await resp.text()
        done = time.perf_counter()
        assert resp.status == 200, (resp.status, body[:300])
        assert "<tbody>" in body and "/console/images/" in body, "an empty page"
        times.append(((headers_at - began) * 1000, (done - began) * 1000))
        found = NEXT.search(body)
        path = "/console/images" + unescape(found.group(1)) if found else first
    return times


def percentile(values: list[float], q: float) -> float:
    return float(_api_bench.percentile(values, q))


async def run_one(name: str, url: str, projects: int, requests: int) -> list[dict[str, object]]:
    db = await open_database(url)
    box = SecretBox(Fernet.generate_key())
    began = time.perf_counter()
    await _api_bench.populate(db, box, projects)
    await add_scans(db)
    async with db.sessions() as session, session.begin():
        await set_password(session, "bench", PASSWORD)
    fill_s = time.perf_counter() - began
    app = web.Application()
    agent = RegistryAgent(load_server_settings({}), box, None)
    setup_api(app, db, box, agent=agent)
    setup_console(app, db, box, agent, lambda: None)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    base = str(server.make_url("")).rstrip("/")
    rows: list[dict[str, object]] = []
    # unsafe: the jar keeps cookies of an IP address (127.0.0.1)
    async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as http:
        async with http.get(f"{base}/console/sign-in") as resp:
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', await resp.text())
        assert csrf is not None
        form = {"csrf_token": csrf.group(1), "username": "bench", "password": PASSWORD}
        async with http.post(f"{base}/console/sign-in", data=form, allow_redirects=False) as resp:
            assert resp.status == 303, await resp.text()
        queries = {
            "first": "/console/images",
            "walk": "/console/images",
            "filtered": "/console/images?status=succeeded&name=service-1&sort=-dependencies",
        }
        for label, first in queries.items():
            await walk(http, base, first, 20)
            cpu = time.process_time()
            if label == "first":
                times = [t for _ in range(requests) for t in await walk(http, base, first, 1)]
            else:
                times = await walk(http, base, first, requests)
            cpu_ms = (time.process_time() - cpu) * 1000 / requests
            ttfb = [t[0] for t in times]
            full = [t[1] for t in times]
            rows.append(
                {
                    "database": name,
                    "query": label,
                    "images": projects,
                    "requests": requests,
                    "ttfb_p50_ms": round(percentile(ttfb, 50), 2),
                    "ttfb_p99_ms": round(percentile(ttfb, 99), 2),
                    "full_p50_ms": round(percentile(full, 50), 2),
                    "full_p99_ms": round(percentile(full, 99), 2),
                    # client + server + aiosqlite's thread: this process's CPU per request
                    "cpu_ms": round(cpu_ms, 2),
                    "load_avg": round(os.getloadavg()[0], 1),
                    "fill_s": round(fill_s, 1),
                }
            )
    await server.close()
    await db.close()
    return rows


async def main() -> None:
    configure_logging("warning", service="bench")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--projects", type=int, default=10000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--db", default="sqlite,postgresql")
    args = parser.parse_args()
    rows = await _api_bench.over_databases(
        args.db, lambda name, url: run_one(name, url, args.projects, args.requests)
    )
    print(
        f"{'database':<11}{'query':<10}{'images':>8}{'ttfb p50':>10}{'ttfb p99':>10}"
        f"{'full p50':>10}{'full p99':>10}{'cpu ms':>9}{'load':>6}"
    )
    for row in rows:
        print(
            f"{row['database']:<11}{row['query']:<10}{row['images']:>8}{row['ttfb_p50_ms']:>10}"
            f"{row['ttfb_p99_ms']:>10}{row['full_p50_ms']:>10}{row['full_p99_ms']:>10}"
            f"{row['cpu_ms']:>9}{row['load_avg']:>6}"
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    with asyncio.Runner(loop_factory=_api_bench._loop_factory()) as runner:
        runner.run(main())
