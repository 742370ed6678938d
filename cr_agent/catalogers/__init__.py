"""Package-database readers (plug-ins behind :class:`cr_agent.catalogers.base.Cataloger`).

Adding a database format is one new module and one line in :func:`default_catalogers`.
"""

from __future__ import annotations

from cr_agent.catalogers.apk import ApkCataloger
from cr_agent.catalogers.base import Cataloger, CatalogResult, Distro, Package
from cr_agent.catalogers.dpkg import DpkgCataloger
from cr_agent.catalogers.os_release import OsReleaseCataloger
from cr_agent.catalogers.rpm import RpmCataloger
from cr_agent.catalogers.rpmmanifest import RpmManifestCataloger

__all__ = [
    "CatalogResult",
    "Cataloger",
    "Distro",
    "Package",
    "default_catalogers",
]


def default_catalogers() -> list[Cataloger]:
    """Every reader the scan engine runs, distro detection first."""
    return [
        OsReleaseCataloger(),
        DpkgCataloger(),
        ApkCataloger(),
        RpmCataloger(),
        RpmManifestCataloger(),
    ]
