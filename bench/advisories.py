"""Advisory benchmark: reading N OSV records, matching one M-package inventory against them,
and re-matching many stored inventories after an import (issue 14's goals: read/import of
100,000 records under 60 s, one 500-package inventory under 50 ms, 10,000 inventories under
60 s).

    .venv/bin/python bench/advisories.py [--records 100000] [--packages 500]
        [--inventories 10000] [--seed 1]

The feed is an osv.dev-style ``all.zip`` written here (not timed): records spread over Debian
12, Alpine v3.20 and RHEL 9 like the real feeds are, most source packages with a few records
and a few (the kernel, browsers, toolchains) with thousands; 60 % fixed, 40 % unfixed, one in
fifty withdrawn. Inventories are drawn from the same source-package names, one to three binary
packages per source, installed versions around the fixed ones so that matches are mixed.
Times are wall clock on this machine, single process; matching figures are medians.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import resource
import statistics
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from control_plane.accounts.services import create_org  # noqa: E402
from control_plane.advisories import matching, severity, version_order  # noqa: E402
from control_plane.advisories.advisory_files import read_path  # noqa: E402
from control_plane.advisories.inventory import Inventory, InventoryPackage  # noqa: E402
from control_plane.advisories.matching import AdvisoryIndex  # noqa: E402
from control_plane.advisories.records import Advisory, ReadOutcome  # noqa: E402
from control_plane.advisories.scan_issues import rematch_latest_scans  # noqa: E402
from control_plane.advisories.services import import_advisories, load_advisories  # noqa: E402
from control_plane.db import Database, open_database  # noqa: E402
from control_plane.projects.services import import_project  # noqa: E402
from control_plane.scans.services import ScanOutcome, enqueue_scan, record_success  # noqa: E402
from control_plane.targets.services import get_or_create_target  # noqa: E402
from cr_agent.catalogers.base import Distro, Package  # noqa: E402
from cr_agent.sbom.cyclonedx import to_cyclonedx_json  # noqa: E402
from cr_agent.scan import LayerInfo, PackageRecord, ScanResult  # noqa: E402

# (OSV ecosystem, os-release ID, VERSION_ID, package type)
DISTROS = (
    ("Debian:12", "debian", "12", "deb"),
    ("Alpine:v3.20", "alpine", "3.20.3", "apk"),
    ("Red Hat:enterprise_linux:9::baseos", "rhel", "9.4", "rpm"),
)
SOURCES_PER_DISTRO = 4000


def history(kind: str, source: int) -> list[str]:
    """The releases a source package went through: what feeds fix at and images install."""
    major, minor = source % 3 + 1, source % 10
    if kind == "deb":
        return [f"{major}.{minor}.{n // 3}-{n % 3 + 1}+deb12u{n}" for n in range(8)]
    if kind == "apk":
        return [f"{major}.{minor}.{n // 3}-r{n}" for n in range(8)]
    return [f"{major}.{minor}.{n // 3}-{n + 1}.el9_{n % 4}" for n in range(8)]


def source_names() -> list[str]:
    return [f"src{n:05d}" for n in range(SOURCES_PER_DISTRO)]


def write_feed(path: Path, records: int, rng: random.Random) -> None:
    names = source_names()
    # Zipf-like: a handful of sources carry most advisories, as linux/chromium/firefox do.
    weights = [1.0 / (rank + 1) ** 1.1 for rank in range(len(names))]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for number in range(records):
            ecosystem, _, _, kind = DISTROS[number % len(DISTROS)]
            source = rng.choices(range(len(names)), weights)[0]
            name = names[source]
            events: list[dict[str, str]] = [{"introduced": "0"}]
            if rng.random() < 0.6:
                events.append({"fixed": rng.choice(history(kind, source))})
            record = {
                "schema_version": "1.6.0",
                "id": f"BENCH-{number:07d}",
                "modified": f"2024-{number % 12 + 1:02d}-{number % 28 + 1:02d}T10:00:00Z",
                "aliases": [f"CVE-2024-{number:07d}"],
                "summary": f"{name}: synthetic advisory {number}",
                "severity": [
                    {"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}
                ]
                if number % 3 == 0
                else [],
                "affected": [
                    {
                        "package": {"ecosystem": ecosystem, "name": name},
                        "ranges": [{"type": "ECOSYSTEM", "events": events}],
                    }
                ],
            }
            if number % 50 == 0:
                record["withdrawn"] = "2024-06-01T00:00:00Z"
            archive.writestr(f"BENCH-{number:07d}.json", json.dumps(record))


def inventory(rng: random.Random, packages: int, distro: tuple[str, str, str, str]) -> Inventory:
    _, distro_id, version_id, kind = distro
    names = source_names()
    found: list[InventoryPackage] = []
    while len(found) < packages:
        number = rng.randrange(len(names))
        source = names[number]
        installed = rng.choice(history(kind, number))
        for suffix in range(rng.randint(1, 3)):
            found.append(
                InventoryPackage(
                    type=kind,
                    name=f"{source}-bin{suffix}",
                    version=installed,
                    source_name=source,
                    source_version=installed,
                    layer_index=len(found) % 5,
                    layer_diff_id=f"sha256:{len(found) % 5:064x}",
                )
            )
    return Inventory(distro_id, version_id, tuple(found[:packages]))


def clear_caches(index: AdvisoryIndex) -> None:
    """Forget every parsed version, comparison and remembered result (imports stay loaded)."""
    index._memo.clear()
    for cached in (
        version_order._deb,
        version_order._rpm,
        version_order._apk,
        matching._order,
        severity.cvss_score,
    ):
        cached.cache_clear()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cyclonedx_of(subject: Inventory, number: int) -> bytes:
    """The CycloneDX SBOM our agent writes for an image holding ``subject``'s packages."""
    packages = []
    for item in subject.packages:
        version, release = item.version, None
        if item.type == "rpm":
            version, _, release = item.version.rpartition("-")
        packages.append(
            Package(
                item.type,
                item.name,
                version,
                release=release,
                source_name=item.source_name,
                source_version=item.source_version,
            )
        )
    layers = [
        LayerInfo(i, f"sha256:{i:064x}", f"sha256:{i:064x}", 1, "tar", None) for i in range(5)
    ]
    result = ScanResult(
        repository=f"bench/app{number}",
        reference="latest",
        digest=f"sha256:{number:064x}",
        index_digest=None,
        platform="linux/amd64",
        config_digest=f"sha256:{number:064x}",
        registry="registry.example",
        distro=Distro(subject.distro_id or "", subject.distro_version),
        layers=layers,
        packages=[
            PackageRecord(p, i % 5, layers[i % 5].diff_id, None) for i, p in enumerate(packages)
        ],
        warnings=[],
    )
    return to_cyclonedx_json(result).encode()


async def landed_scans(db: Database, sboms: list[bytes], count: int) -> None:
    """``count`` projects whose latest scan stored one of ``sboms`` (images share SBOMs)."""
    async with db.sessions() as session, session.begin():
        org = await create_org(session, "bench")
    for start in range(0, count, 500):
        async with db.sessions() as session, session.begin():
            for number in range(start, min(count, start + 500)):
                target = await get_or_create_target(session, org.id, None, f"bench/app{number}")
                project = await import_project(
                    session, target, "latest", integration=None, importer_id=None
                )
                assert project is not None
                scan = await enqueue_scan(session, project)
                await record_success(
                    session,
                    scan.id,
                    ScanOutcome(
                        image_digest=f"sha256:{number:064x}",
                        platform="linux/amd64",
                        package_type="deb",
                        package_count=500,
                        sboms={"cyclonedx": sboms[number % len(sboms)]},
                    ),
                )


async def store(url: str, outcome: ReadOutcome, sboms: list[bytes], scans: int) -> list[Advisory]:
    """Import into a fresh database at ``url``, import again, load back, re-match ``scans``
    stored scans; prints the times."""
    db = await open_database(url, pool_size=2)
    try:
        for attempt in ("import", "re-import"):
            start = time.perf_counter()
            async with db.sessions() as session, session.begin():
                report = await import_advisories(session, outcome.advisories, outcome.skipped)
            print(f"  {attempt}: {time.perf_counter() - start:.1f} s ({report.summary()})")
        start = time.perf_counter()
        async with db.sessions() as session:
            loaded = await load_advisories(session)
        print(f"  load for matching: {time.perf_counter() - start:.1f} s, {len(loaded)} advisories")
        if scans:
            await landed_scans(db, sboms, scans)
            index = AdvisoryIndex(loaded)
            for attempt in (
                "first match of the stored scans (SBOM parsed, compact inventory kept)",
                "re-match after an import (compact inventories)",
            ):
                start = time.perf_counter()
                async with db.sessions() as session, session.begin():
                    rematched = await rematch_latest_scans(session, index)
                took = time.perf_counter() - start
                print(
                    f"  {attempt}: {rematched.scans} scans in {took:.1f} s "
                    f"({took / max(1, rematched.scans) * 1000:.1f} ms each), "
                    f"{rematched.issues} issues"
                )
        return loaded
    finally:
        await db.close()


def database_url(kind: str, scratch: Path) -> tuple[str, Callable[[], None]]:
    if kind == "sqlite":
        return f"sqlite+aiosqlite:///{scratch / 'bench.db'}", lambda: None
    from tests.support.postgres import start_postgres

    server = start_postgres()
    return server.create_database(), server.stop


def match_figures(index: AdvisoryIndex, subjects: list[Inventory], distro: str) -> None:
    """First match of fresh inventories (nothing cached) and the same inventory again."""
    cold = []
    for subject in subjects:
        clear_caches(index)
        start = time.perf_counter()
        result = index.match(subject)
        cold.append(time.perf_counter() - start)
    warm = []
    for _ in range(len(subjects)):
        start = time.perf_counter()
        index.match(subjects[-1])
        warm.append(time.perf_counter() - start)
    print(
        f"match {distro} {len(subjects[0].packages)} packages: first match median "
        f"{statistics.median(cold) * 1000:.1f} ms (max {max(cold) * 1000:.1f}), again median "
        f"{statistics.median(warm) * 1000:.1f} ms; {len(result.issues)} issues "
        f"({result.counts.fixable} fixable)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--packages", type=int, default=500)
    parser.add_argument("--inventories", type=int, default=10_000)
    parser.add_argument(
        "--store",
        default="sqlite,postgresql",
        help="databases to import into (sqlite, postgresql; empty: none)",
    )
    parser.add_argument(
        "--stored-scans",
        type=int,
        default=10_000,
        help="projects with a landed scan to re-match in each database (their SBOMs drawn "
        "from 200 distinct images)",
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        feed = scratch / "all.zip"
        write_feed(feed, args.records, rng)
        print(f"feed: {args.records} OSV records, {feed.stat().st_size / 1e6:.1f} MB zip")
        gc.collect()
        start = time.perf_counter()
        outcome = read_path(feed)
        read_s = time.perf_counter() - start
        print(
            f"read + normalise: {read_s:.1f} s ({args.records / read_s:,.0f} records/s), "
            f"{len(outcome.advisories)} advisories, {len(outcome.skipped)} skipped"
        )
        advisories = outcome.advisories
        sboms = [
            cyclonedx_of(inventory(rng, args.packages, DISTROS[n % len(DISTROS)]), n)
            for n in range(min(200, args.stored_scans))
        ]
        for kind in filter(None, args.store.split(",")):
            url, stop = database_url(kind, scratch)
            print(f"{kind}:")
            try:
                advisories = asyncio.run(store(url, outcome, sboms, args.stored_scans))
            finally:
                stop()

    start = time.perf_counter()
    index = AdvisoryIndex(advisories)
    index_s = time.perf_counter() - start
    print(f"index: {index_s * 1000:.0f} ms for {index.advisory_count} advisories in force")

    for distro in DISTROS:
        match_figures(index, [inventory(rng, args.packages, distro) for _ in range(7)], distro[1])

    # Each stored inventory is drawn fresh (not kept: 10,000 of them would hold ~5 million
    # package tuples); only the counting is timed, as a re-match after an import does it.
    clear_caches(index)
    rematch_s = 0.0
    issues = 0
    for n in range(args.inventories):
        one = inventory(rng, args.packages, DISTROS[n % len(DISTROS)])
        start = time.perf_counter()
        issues += index.count(one).total
        rematch_s += time.perf_counter() - start
    print(
        f"re-match {args.inventories} inventories of {args.packages} packages in memory "
        f"(counts only): {rematch_s:.1f} s ({rematch_s / args.inventories * 1000:.1f} ms each), "
        f"{issues} issues"
    )
    print(f"peak RSS: {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
