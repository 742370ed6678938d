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
import gc
import json
import random
import resource
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from control_plane.advisories import matching, severity, version_order  # noqa: E402
from control_plane.advisories.advisory_files import read_path  # noqa: E402
from control_plane.advisories.inventory import Inventory, InventoryPackage  # noqa: E402
from control_plane.advisories.matching import AdvisoryIndex  # noqa: E402

# (OSV ecosystem, os-release id, VERSION_ID, package type, version maker)
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


def clear_caches() -> None:
    """Forget every parsed version, comparison and rating: the first match of a fresh process."""
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--packages", type=int, default=500)
    parser.add_argument("--inventories", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    with tempfile.TemporaryDirectory() as scratch:
        feed = Path(scratch) / "all.zip"
        write_feed(feed, args.records, rng)
        print(f"feed: {args.records} OSV records, {feed.stat().st_size / 1e6:.1f} MB zip")
        gc.collect()
        start = time.perf_counter()
        outcome = read_path(feed)
        read_s = time.perf_counter() - start
    print(
        f"read + normalise: {read_s:.2f} s ({args.records / read_s:,.0f} records/s), "
        f"{len(outcome.advisories)} advisories, {len(outcome.skipped)} skipped"
    )

    start = time.perf_counter()
    index = AdvisoryIndex(outcome.advisories)
    index_s = time.perf_counter() - start
    print(f"index: {index_s * 1000:.0f} ms for {index.advisory_count} advisories in force")

    for distro in DISTROS:
        subject = inventory(rng, args.packages, distro)
        times = []
        for round_number in range(21):
            if round_number == 0:
                clear_caches()
            start = time.perf_counter()
            result = index.match(subject)
            times.append(time.perf_counter() - start)
        print(
            f"match {distro[1]} {args.packages} packages: cold {times[0] * 1000:.1f} ms, "
            f"warm median {statistics.median(times[1:]) * 1000:.1f} ms; "
            f"{len(result.issues)} issues ({result.counts.fixable} fixable)"
        )

    stored = [
        inventory(rng, args.packages, DISTROS[n % len(DISTROS)]) for n in range(args.inventories)
    ]
    start = time.perf_counter()
    issues = sum(len(index.match(one).issues) for one in stored)
    rematch_s = time.perf_counter() - start
    print(
        f"re-match {args.inventories} stored inventories of {args.packages} packages: "
        f"{rematch_s:.1f} s ({rematch_s / args.inventories * 1000:.1f} ms each), {issues} issues"
    )
    print(f"peak RSS: {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
