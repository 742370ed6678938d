"""Package-database readers (plug-ins behind :class:`cr_agent.catalogers.base.Cataloger`).

Adding a database format is one new module and one line in :func:`default_catalogers`; a new
package type also adds its reader's ``PURL_RULE`` to :data:`PURL_RULES`.
"""

from __future__ import annotations

from cr_agent.catalogers import apk, dpkg, rpm
from cr_agent.catalogers.apk import ApkCataloger
from cr_agent.catalogers.base import Cataloger, CatalogResult, Distro, Package, PurlRule
from cr_agent.catalogers.dpkg import DpkgCataloger
from cr_agent.catalogers.os_release import OsReleaseCataloger
from cr_agent.catalogers.rpm import RpmCataloger
from cr_agent.catalogers.rpmmanifest import RpmManifestCataloger

__all__ = [
    "PURL_RULES",
    "CatalogResult",
    "Cataloger",
    "Distro",
    "Package",
    "PurlRule",
    "default_catalogers",
]

#: the purl rule of each package type, by ``Package.type``
PURL_RULES: dict[str, PurlRule] = {
    rule.type: rule for rule in (dpkg.PURL_RULE, apk.PURL_RULE, rpm.PURL_RULE)
}


def default_catalogers() -> list[Cataloger]:
    """Every reader the scan engine runs, distro detection first."""
    return [
        OsReleaseCataloger(),
        DpkgCataloger(),
        ApkCataloger(),
        RpmCataloger(),
        RpmManifestCataloger(),
    ]
