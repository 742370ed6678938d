"""The interface every package-database reader implements, and the values it returns.

A cataloger knows nothing of registries, layers or HTTP: it says which paths it wants and
turns the bytes of those files into packages. The layer engine hands it the files as they are
visible in the image at some layer (after whiteouts), keyed by path without a leading ``/``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Distro:
    """What os-release (or its fallbacks) says about the image's distribution."""

    id: str  # "debian", "alpine", "rhel", "sles", "ubuntu", ...
    version_id: str | None = None  # "12", "3.19.1", "15.3"
    pretty_name: str | None = None
    id_like: tuple[str, ...] = ()
    version_codename: str | None = None


@dataclass(frozen=True, slots=True)
class Package:
    """One installed package, as its database records it."""

    type: str  # "deb" | "apk" | "rpm"
    name: str
    version: str  # upstream version, without epoch and release for rpm; full version for deb/apk
    epoch: int | None = None
    release: str | None = None  # rpm release; None elsewhere
    arch: str | None = None
    source_name: str | None = None
    source_version: str | None = None
    licenses: tuple[str, ...] = ()
    database: str = ""  # path of the database file it came from
    extra: tuple[tuple[str, str], ...] = ()  # reader-specific facts (maintainer, origin, ...)

    @property
    def full_version(self) -> str:
        """Version as the distro writes it: ``epoch:version-release`` for rpm."""
        text = self.version
        if self.release:
            text = f"{text}-{self.release}"
        if self.epoch:
            text = f"{self.epoch}:{text}"
        return text

    @property
    def key(self) -> tuple[str, str, str | None]:
        """Identity used when comparing package sets layer by layer."""
        return (self.type, self.name, self.arch)


class CatalogResult:
    """Packages found plus warnings that say what could not be read, and why."""

    __slots__ = ("distro", "packages", "warnings")

    def __init__(
        self,
        packages: list[Package] | None = None,
        warnings: list[str] | None = None,
        distro: Distro | None = None,
    ) -> None:
        self.packages: list[Package] = [] if packages is None else packages
        self.warnings: list[str] = [] if warnings is None else warnings
        self.distro = distro


@dataclass(frozen=True, slots=True)
class PurlRule:
    """How packages of one type become a package URL; each lives beside its type's reader.

    ``parts`` gives the purl version and the type's own qualifiers (``upstream``, ``epoch``);
    :mod:`cr_agent.sbom.purl` adds the namespace, ``arch`` and ``distro`` and writes the text.
    """

    type: str  # Package.type: "deb", "apk", "rpm"
    default_namespace: str | None  # namespace when the image's distro is unknown
    parts: Callable[[Package], tuple[str, dict[str, str]]]


@runtime_checkable
class Cataloger(Protocol):
    """A package-database reader plug-in."""

    #: short unique name, e.g. "dpkg", "apk", "rpm", "os-release"
    name: str
    #: bump when the output for the same bytes changes; part of the layer-cache key
    version: str
    #: files larger than this are skipped with a warning instead of being kept in memory
    max_file_size: int

    @property
    def path_prefixes(self) -> tuple[str, ...] | None:
        """Strings every path it wants starts with: the layer engine then turns other tar
        entries away without calling :meth:`wants`. None: :meth:`wants` sees every entry."""
        ...

    def wants(self, path: str) -> bool:
        """True if ``path`` (no leading slash, normalised) is a file this reader needs."""
        ...

    def catalog(self, files: Mapping[str, bytes]) -> CatalogResult:
        """Turn the wanted files (path -> content) into packages; never raise on bad bytes."""
        ...
