"""An image's scan report as a PDF (ReportLab): image, digest, platform, distro, scan time,
package count and table, issue counts by severity."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
from reportlab.platypus.flowables import Flowable

if TYPE_CHECKING:
    from control_plane.projects.image_page import ImageDetails

SEVERITIES = ("critical", "high", "medium", "low", "unknown")


def _escape(text: str) -> str:
    # Paragraph reads a little markup: image names and package fields are data, not markup
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _grid(rows: list[list[Any]], widths_mm: list[int]) -> Table:
    """A table with a grey grid and a header row repeated on every page."""
    table = Table(rows, colWidths=[w * mm for w in widths_mm], repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                ("BACKGROUND", (0, 0), (-1, 0), colors.lightgrey),
                ("FONTSIZE", (0, 0), (-1, -1), 7),
            ]
        )
    )
    return table


def render_report(details: ImageDetails) -> bytes:
    facts = details.facts
    assert facts is not None
    scan = details.visible_scan
    styles = getSampleStyleSheet()
    cell = styles["BodyText"].clone("cell", fontSize=7, leading=8)
    story: list[Flowable] = [
        Paragraph(f"Image scan report: {_escape(details.project.name)}", styles["Title"])
    ]
    issues = details.issues
    vulnerabilities = (
        ", ".join(f"{s}: {getattr(issues, s)}" for s in SEVERITIES)
        if issues is not None
        else "not matched against advisories"
    )
    summary = [
        ("Image", details.project.name),
        ("Registry", details.registry.profile_name if details.registry else "-"),
        ("Digest", facts.digest),
        ("Platform", facts.platform or "-"),
        ("Distro", facts.distro or "-"),
        (
            "Scanned",
            scan.finished_at.strftime("%Y-%m-%d %H:%M:%S UTC")
            if scan and scan.finished_at
            else "-",
        ),
        ("Packages", str(len(facts.packages))),
        ("Vulnerabilities", vulnerabilities),
    ]
    table = Table(
        [[Paragraph(k, cell), Paragraph(_escape(v), cell)] for k, v in summary],
        colWidths=[30 * mm, 140 * mm],
    )
    table.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.25, colors.grey)]))
    story += [table, Spacer(1, 6 * mm), Paragraph("Packages", styles["Heading2"])]
    rows = [["Name", "Version", "Type", "Licence", "Layer"]]
    rows += [
        [
            Paragraph(_escape(p.name), cell),
            Paragraph(_escape(p.version), cell),
            p.type,
            Paragraph(_escape(p.licence), cell),
            "" if p.layer_index is None else str(p.layer_index),
        ]
        for p in facts.packages
    ]
    story.append(_grid(rows, [45, 45, 15, 50, 15]))
    if details.vulnerabilities:
        story += [Spacer(1, 6 * mm), Paragraph("Vulnerabilities", styles["Heading2"])]
        found = [["Advisory", "Severity", "Package", "Installed", "Fixed in"]]
        found += [
            [
                Paragraph(_escape(v.advisory_id), cell),
                v.severity,
                Paragraph(_escape(v.package_name), cell),
                Paragraph(_escape(v.package_version), cell),
                Paragraph(_escape(v.fixed_version or "not fixed"), cell),
            ]
            for v in details.vulnerabilities
        ]
        story.append(_grid(found, [40, 20, 40, 35, 35]))
    out = io.BytesIO()
    SimpleDocTemplate(
        out, pagesize=A4, title=f"Scan report {details.project.name}", author="crbroker"
    ).build(story)
    return out.getvalue()
