"""Package URLs in the form syft emits for OS packages.

- deb: ``pkg:deb/debian/curl@7.88.1-10%2Bdeb12u5?arch=amd64&distro=debian-12``; the version
  is dpkg's full version (epoch included, as syft does), ``upstream`` only when the source
  package differs (``src`` or ``src@version``).
- apk: ``pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64&distro=alpine-3.19.1&upstream=musl``.
- rpm: ``pkg:rpm/<distro>/<name>@<version>-<release>?arch=..&epoch=..&upstream=<srpm>&distro=..``
  with ``rhel`` written ``redhat`` and ``opensuse-*`` written ``opensuse``.

Qualifiers come out as syft writes them (anchore/packageurl-go keeps the given order): the
package's own qualifiers sorted by key, then ``distro`` last; values escape ``@`` and ``+``.
packageurl-python builds the type/namespace/name@version part and parses the result back.
"""

from __future__ import annotations

from urllib.parse import quote

from packageurl import PackageURL

from cr_agent.catalogers.base import Distro, Package

_DEFAULT_NAMESPACE = {"deb": "debian", "apk": "alpine"}


def _namespace(package: Package, distro: Distro | None) -> str | None:
    if distro is None or not distro.id:
        return _DEFAULT_NAMESPACE.get(package.type)
    if distro.id == "rhel":
        return "redhat"
    if distro.id.startswith("opensuse"):
        return "opensuse"
    return distro.id


def distro_qualifier(distro: Distro | None) -> str | None:
    if distro is None or not distro.id:
        return None
    return f"{distro.id}-{distro.version_id}" if distro.version_id else distro.id


def package_purl(package: Package, distro: Distro | None) -> PackageURL:
    qualifiers: dict[str, str] = {}
    if package.arch:
        qualifiers["arch"] = package.arch
    distro_text = distro_qualifier(distro)
    if distro_text:
        qualifiers["distro"] = distro_text
    if package.type == "deb":
        version = package.full_version
        if package.source_name and package.source_name != package.name:
            if package.source_version and package.source_version != version:
                qualifiers["upstream"] = f"{package.source_name}@{package.source_version}"
            else:
                qualifiers["upstream"] = package.source_name
        elif package.source_version and package.source_version != version:
            qualifiers["upstream"] = f"{package.name}@{package.source_version}"
    elif package.type == "rpm":
        version = f"{package.version}-{package.release}" if package.release else package.version
        if package.epoch is not None:
            qualifiers["epoch"] = str(package.epoch)
        extra = dict(package.extra)
        source_rpm = extra.get("sourcerpm") or extra.get("source_rpm") or extra.get("SourceRPM")
        if source_rpm:
            qualifiers["upstream"] = source_rpm
    else:
        version = package.full_version
        if package.source_name:
            qualifiers["upstream"] = package.source_name
    return PackageURL(
        type=package.type,
        namespace=_namespace(package, distro),
        name=package.name,
        version=version,
        qualifiers=qualifiers or None,
    )


def _escape(value: str) -> str:
    return quote(value, safe=":/-._~")


def purl_string(package: Package, distro: Distro | None) -> str:
    """The purl text in syft's qualifier order (see the module docstring)."""
    purl = package_purl(package, distro)
    qualifiers = dict(purl.qualifiers or {})
    distro_value = qualifiers.pop("distro", None)
    base = PackageURL(
        type=purl.type, namespace=purl.namespace, name=purl.name, version=purl.version
    ).to_string()
    pairs = [f"{key}={_escape(qualifiers[key])}" for key in sorted(qualifiers)]
    if distro_value:
        pairs.append(f"distro={_escape(distro_value)}")
    return f"{base}?{'&'.join(pairs)}" if pairs else base
