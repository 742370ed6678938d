"""Control-plane API benchmark: one page of projects with 10,000 stored, on SQLite and PostgreSQL.

    .venv/bin/python bench/control_plane.py [--projects 10000] [--requests 300] [--db sqlite,postgresql]

For each database: a fresh database migrated by the control plane itself, one org with three
integrations (ecr, gcr, docker-hub), ``--projects`` projects in 2,000 targets (5 tags per
repository), each with two project tags and a landed scan's fields, inserted in bulk (the
timed part is reading, not ingestion), then ``ANALYZE`` (what autovacuum would have done). PostgreSQL is Debian's, started by
tests/support/postgres.py (initdb in a temporary directory, fsync off as in the tests).

The API app runs in this process on 127.0.0.1 (aiohttp on uvloop when installed, as
``crbroker-server`` runs it), and an aiohttp client asks, one
request at a time, after 20 untimed warm-up requests:

- page: ``GET /rest/orgs/{org}/projects?version=…&expand=target&meta.latest_issue_counts=true
  &limit=100``, walking the pages by ``links.next`` (wrapping around to the first page) -
  what pysnyk and Port's Ocean integration ask;
- filtered: the same with ``origins=ecr,gcr&types=deb,apk&tags=team:t7`` (about 1 in 10 of
  the projects match the tag), also walked by ``links.next``.

Times are client-side wall times per request (HTTP on loopback, JSON:API rendering, the
token lookup and the SQL); ``cpu ms`` is this process's CPU time per request (client, server
and aiosqlite's thread; PostgreSQL's own work is in another process), which depends less on
what else the machine runs; ``load`` is the 1-minute load average at the end. Results print
as a table and JSON.
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
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiohttp import ClientSession  # noqa: E402
from aiohttp.test_utils import TestServer  # noqa: E402
from cryptography.fernet import Fernet  # noqa: E402
from sqlalchemy import text  # noqa: E402

from control_plane.accounts.services import add_member, create_org, create_token, create_user  # noqa: E402
from control_plane.api import create_api_app  # noqa: E402
from control_plane.db import Database, open_database  # noqa: E402
from control_plane.encryption import SecretBox  # noqa: E402
from control_plane.ids import new_id  # noqa: E402
from control_plane.integrations.services import IntegrationInput, create_integration  # noqa: E402
from control_plane.models import Project, ProjectTag, Target, utcnow  # noqa: E402
from shared.logging import configure_logging  # noqa: E402
from tests.support.postgres import start_postgres, unavailable_reason  # noqa: E402

VERSION = "2024-05-31"
TYPES = ("deb", "apk", "rpm", "linux")


async def populate(db: Database, box: SecretBox, projects: int) -> tuple[uuid.UUID, str]:
    async with db.sessions() as session, session.begin():
        org = await create_org(session, "Bench Org")
        user = await create_user(session, "bench")
        await add_member(session, org, user)
        _, token = await create_token(session, user, "bench")
        integrations = []
        for kind in ("ecr", "gcr", "docker-hub"):
            made, _ = await create_integration(
                session, box, org.id, IntegrationInput(integration_type=kind, has_broker=True)
            )
            integrations.append(made)
    now = utcnow()
    per_target = 5
    batch = 1000
    for start in range(0, projects, batch):
        async with db.sessions() as session, session.begin():
            targets = []
            rows = []
            for t in range(start // per_target, (start + batch) // per_target):
                integration = integrations[t % 3]
                target = Target(
                    id=new_id(),
                    org_id=org.id,
                    integration_id=integration.id,
                    repository=f"team{t % 50}/service-{t}",
                    display_name=f"team{t % 50}/service-{t}",
                    tags=[{"Key": f"port-service-{t}", "Value": ""}],
                )
                targets.append(target)
                for tag in range(per_target):
                    n = t * per_target + tag
                    project = Project(
                        id=new_id(),
                        org_id=org.id,
                        target_id=target.id,
                        integration_id=integration.id,
                        name=f"{target.repository}:1.{tag}",
                        target_reference=f"1.{tag}",
                        origin=integration.integration_type,
                        type=TYPES[n % 4],
                        image_digest=f"sha256:{n:064x}",
                        platform="linux/amd64",
                        importer_id=user.id,
                        latest_scan_id=new_id(),
                        dependency_total=100 + n % 300,
                        dependency_total_updated_at=now,
                        tags=[
                            ProjectTag(position=0, key="team", value=f"t{t % 10}"),
                            ProjectTag(position=1, key="stage", value="prod" if tag % 2 else "dev"),
                        ],
                    )
                    rows.append(project)
            session.add_all(targets)
            await session.flush()
            session.add_all(rows)
    # what autovacuum (PostgreSQL) or a periodic ANALYZE (SQLite) would have done by now
    async with db.engine.connect() as conn:
        await conn.execute(text("ANALYZE"))
        await conn.commit()
    return org.id, token


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return ordered[index]


async def walk(http: ClientSession, base: str, first: str, token: str, count: int) -> list[float]:
    """``count`` timed requests following links.next, wrapping to ``first`` at the end."""
    headers = {"Authorization": f"token {token}"}
    times = []
    path = first
    for _ in range(count):
        began = time.perf_counter()
        async with http.get(base + path, headers=headers) as resp:
            body = await resp.read()
        times.append((time.perf_counter() - began) * 1000)
        assert resp.status == 200, body[:300]
        doc = json.loads(body)
        assert doc["data"], "an empty page"
        path = doc["links"].get("next") or first
    return times


async def run_one(name: str, url: str, projects: int, requests: int) -> list[dict[str, object]]:
    db = await open_database(url)
    box = SecretBox(Fernet.generate_key())
    began = time.perf_counter()
    org_id, token = await populate(db, box, projects)
    fill_s = time.perf_counter() - began
    server = TestServer(create_api_app(db, box), host="127.0.0.1")
    await server.start_server()
    base = str(server.make_url("")).rstrip("/")
    queries = {
        "page": "expand=target&meta.latest_issue_counts=true&limit=100",
        "filtered": "origins=ecr,gcr&types=deb,apk&tags=team:t7&expand=target"
        "&meta.latest_issue_counts=true&limit=100",
    }
    rows: list[dict[str, object]] = []
    async with ClientSession() as http:
        for label, query in queries.items():
            first = f"/rest/orgs/{org_id}/projects?version={VERSION}&{query}"
            await walk(http, base, first, token, 20)
            cpu = time.process_time()
            times = await walk(http, base, first, token, requests)
            cpu_ms = (time.process_time() - cpu) * 1000 / requests
            rows.append(
                {
                    "database": name,
                    "query": label,
                    "projects": projects,
                    "requests": requests,
                    "p50_ms": round(statistics.median(times), 2),
                    "p99_ms": round(percentile(times, 99), 2),
                    "max_ms": round(max(times), 2),
                    # client + server + SQLite thread: this process's CPU per request
                    "cpu_ms": round(cpu_ms, 2),
                    "load_avg": round(os.getloadavg()[0], 1),
                    "fill_s": round(fill_s, 1),
                }
            )
    await server.close()
    await db.close()
    return rows


async def over_databases(
    names: str, run: Callable[[str, str], Awaitable[list[dict[str, object]]]]
) -> list[dict[str, object]]:
    """``run(name, url)`` on each database named in ``names`` (a comma list of sqlite and
    postgresql): SQLite in a temporary directory, PostgreSQL from Debian's packages."""
    rows: list[dict[str, object]] = []
    for name in names.split(","):
        if name == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                rows += await run(name, f"sqlite+aiosqlite:///{tmp}/bench.db")
        elif name == "postgresql":
            reason = unavailable_reason()
            if reason:
                print(f"postgresql skipped: {reason}")
                continue
            pg = start_postgres()
            try:
                rows += await run(name, pg.create_database())
            finally:
                pg.stop()
        else:
            raise SystemExit(f"--db: unknown database {name}")
    return rows


async def main() -> None:
    configure_logging("warning", service="bench")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--projects", type=int, default=10000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--db", default="sqlite,postgresql")
    args = parser.parse_args()
    rows = await over_databases(
        args.db, lambda name, url: run_one(name, url, args.projects, args.requests)
    )
    print(
        f"{'database':<11}{'query':<10}{'projects':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
        f"{'cpu ms':>9}{'load':>6}"
    )
    for row in rows:
        print(
            f"{row['database']:<11}{row['query']:<10}{row['projects']:>9}"
            f"{row['p50_ms']:>9}{row['p99_ms']:>9}{row['max_ms']:>9}{row['cpu_ms']:>9}{row['load_avg']:>6}"
        )
    print(json.dumps(rows))


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed, as ``crbroker-server`` runs."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


if __name__ == "__main__":
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(main())
