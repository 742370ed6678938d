"""Package URLs in the form syft emits for OS packages.

Each package type's rule (the purl version and its own qualifiers, e.g. deb's and apk's
``upstream``, rpm's ``epoch``) lives beside its reader as ``PURL_RULE``
(:data:`cr_agent.catalogers.PURL_RULES`). This module adds what all types share: the
namespace (the distro id, ``rhel`` written ``redhat`` and ``opensuse-*`` written ``opensuse``),
``arch`` and ``distro``, and writes the text, e.g.
``pkg:deb/debian/curl@7.88.1-10%2Bdeb12u5?arch=amd64&distro=debian-12``.

Qualifiers come out as current syft writes them: all of them, ``distro`` included, sorted by
key (syft's own tests, e.g. ``?arch=a&distro=alpine-3.4.6&upstream=origin``); values escape
``@`` and ``+``. packageurl-python builds the type/namespace/name@version part and parses the
result back.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from packageurl import PackageURL

from cr_agent.catalogers import PURL_RULES, PurlRule
from cr_agent.catalogers.apk import origin_purl_parts
from cr_agent.catalogers.base import Distro, Package

_ESCAPE = re.compile(r"%[0-9a-f]{2}")


def _rule(package: Package) -> PurlRule:
    # A type without a rule of its own: version as written, upstream when the source differs.
    return PURL_RULES.get(package.type) or PurlRule(package.type, None, origin_purl_parts)


def _namespace(package: Package, distro: Distro | None) -> str | None:
    if distro is None or not distro.id:
        return _rule(package).default_namespace
    if distro.id == "rhel":
        return "redhat"
    if distro.id.startswith("opensuse"):
        return "opensuse"
    return distro.id


def distro_qualifier(distro: Distro | None) -> str | None:
    if distro is None or not distro.id:
        return None
    return f"{distro.id}-{distro.version_id}" if distro.version_id else distro.id


def _parts(package: Package, distro: Distro | None) -> tuple[str, dict[str, str]]:
    """The purl version and qualifiers (``distro`` included) for one package."""
    qualifiers: dict[str, str] = {}
    if package.arch:
        qualifiers["arch"] = package.arch
    distro_text = distro_qualifier(distro)
    if distro_text:
        qualifiers["distro"] = distro_text
    version, own = _rule(package).parts(package)
    qualifiers.update(own)
    return version, qualifiers


def package_purl(package: Package, distro: Distro | None) -> PackageURL:
    version, qualifiers = _parts(package, distro)
    return PackageURL(
        type=package.type,
        namespace=_namespace(package, distro),
        name=package.name,
        version=version,
        qualifiers=qualifiers or None,
    )


def _escape(value: str) -> str:
    return quote(value, safe=":/-._~")


def purl_and_version(package: Package, distro: Distro | None) -> tuple[str, str | None]:
    """The purl text in syft's qualifier order (sorted) and the purl's version as
    packageurl-python normalises it (None when empty).

    One PackageURL (without qualifiers) per package: the qualifiers are written here, and
    packageurl-python would only sort them and drop blank values, which this does too.
    """
    version, qualifiers = _parts(package, distro)
    base = PackageURL(
        type=package.type,
        namespace=_namespace(package, distro),
        name=package.name,
        version=version,
    )
    pairs = [
        f"{key}={_escape(value)}" for key, value in sorted(qualifiers.items()) if value.strip()
    ]
    # packageurl-python lower-cases an apk name, its percent-escapes included (g%2b%2b);
    # syft writes escapes upper-case (g%2B%2B), as it does for every other type
    text = _ESCAPE.sub(lambda m: m.group(0).upper(), base.to_string())
    return (f"{text}?{'&'.join(pairs)}" if pairs else text), base.version


def purl_string(package: Package, distro: Distro | None) -> str:
    """The purl text in syft's qualifier order (sorted; see the module docstring)."""
    return purl_and_version(package, distro)[0]
