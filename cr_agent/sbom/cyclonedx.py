"""CycloneDX 1.6 JSON through cyclonedx-python-lib: the image as the metadata component,
the distro as an operating-system component, one library component per package with its
purl and the introducing layer as properties."""

from __future__ import annotations

import warnings

from cyclonedx.model import Property
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output.json import JsonV1Dot6

try:  # cyclonedx-python-lib >= 11.6 moved the factory; the old path warns
    from cyclonedx.contrib.license.factories import LicenseFactory
except ImportError:  # pragma: no cover - older library versions
    from cyclonedx.factory.license import LicenseFactory

from cr_agent.sbom.purl import package_purl
from cr_agent.scan import ScanResult

_licenses = LicenseFactory()


def to_cyclonedx_json(result: ScanResult) -> str:
    bom = Bom()
    image = Component(
        type=ComponentType.CONTAINER,
        name=result.image_name,
        version=result.digest,
        bom_ref=f"image:{result.digest}",
        properties=[
            Property(name="crbroker:image:platform", value=result.platform),
            Property(name="crbroker:image:reference", value=result.reference),
            Property(name="crbroker:image:configDigest", value=result.config_digest),
        ],
    )
    bom.metadata.component = image
    children = []
    if result.distro is not None:
        os_component = Component(
            type=ComponentType.OPERATING_SYSTEM,
            name=result.distro.id,
            version=result.distro.version_id or "",
            description=result.distro.pretty_name,
            bom_ref=f"os:{result.distro.id}:{result.distro.version_id or ''}",
        )
        bom.components.add(os_component)
        children.append(os_component)
    for number, record in enumerate(result.packages):
        package = record.package
        purl = package_purl(package, result.distro)
        properties = [
            Property(name="crbroker:package:type", value=package.type),
            Property(name="crbroker:layer:index", value=str(record.layer_index)),
            Property(name="crbroker:layer:diffID", value=record.layer_diff_id),
        ]
        if record.layer_created_by:
            properties.append(
                Property(name="crbroker:layer:createdBy", value=record.layer_created_by)
            )
        if package.database:
            properties.append(Property(name="crbroker:package:database", value=package.database))
        if package.source_name:
            properties.append(
                Property(name="crbroker:package:sourceName", value=package.source_name)
            )
        component = Component(
            type=ComponentType.LIBRARY,
            name=package.name,
            version=purl.version or package.full_version,
            purl=purl,
            bom_ref=f"pkg:{number}:{purl.to_string()}",
            licenses=[_licenses.make_from_string(text) for text in package.licenses if text],
            properties=properties,
        )
        bom.components.add(component)
        children.append(component)
    bom.register_dependency(image, children)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the library warns about incomplete graphs; ours is flat
        return JsonV1Dot6(bom).output_as_string(indent=2)
