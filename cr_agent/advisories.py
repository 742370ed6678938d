"""``cr-agent scan --advisories PATH...``: match a scan against advisory files on the command
line, without a server, with the control plane's readers and matcher (the same formats:
OSV JSON / all.zip, Alpine secdb, Debian tracker JSON).

Each package's ``ref`` in the inventory is its position in the scan result, so the SBOM
writers can point an issue at their own reference for the package (CycloneDX ``bom-ref``).
Imported only when the option is given: a plain scan pays nothing for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from control_plane.advisories.inventory import Inventory, InventoryPackage, with_epoch
from control_plane.advisories.matching import AdvisoryIndex, MatchResult
from control_plane.advisories.records import ReadOutcome

if TYPE_CHECKING:
    from cr_agent.scan import ScanResult

#: skipped advisory records reported one by one on stderr; the rest are counted
SHOWN_SKIPS = 20


def inventory_of(result: ScanResult) -> Inventory:
    packages = []
    for position, record in enumerate(result.packages):
        package = record.package
        packages.append(
            InventoryPackage(
                type=package.type,
                name=package.name,
                version=package.full_version,
                source_name=package.source_name,
                source_version=with_epoch(package.type, package.source_version, package.epoch),
                layer_index=record.layer_index,
                layer_diff_id=record.layer_diff_id,
                ref=str(position),
            )
        )
    distro = result.distro
    return Inventory(
        distro.id if distro else None, distro.version_id if distro else None, tuple(packages)
    )


def match_scan(result: ScanResult, outcome: ReadOutcome) -> tuple[MatchResult, list[str]]:
    """The scan's issues and the lines to print about the advisory files (skips, warnings)."""
    notes = [f"advisories: skipped {skip}" for skip in outcome.skipped[:SHOWN_SKIPS]]
    if len(outcome.skipped) > SHOWN_SKIPS:
        notes.append(f"advisories: ... and {len(outcome.skipped) - SHOWN_SKIPS} more skipped")
    match = AdvisoryIndex(outcome.advisories).match(inventory_of(result))
    notes.extend(f"advisories: {warning}" for warning in match.warnings)
    return match, notes
