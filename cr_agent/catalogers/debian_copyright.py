"""Licences from a machine-readable (DEP-5) ``usr/share/doc/<pkg>/copyright`` file.

Free-form copyright files are common and say nothing parseable; for them no licence is
reported rather than a guess.
"""

from __future__ import annotations

from cr_agent.catalogers.deb822 import parse_paragraphs
from cr_agent.catalogers.warning_limit import WarningLog

# Big copyright files (linux, texlive) run to megabytes; the header and the Files paragraphs
# naming the licences come first, so a bounded prefix is enough.
MAX_COPYRIGHT_BYTES = 512 * 1024


def is_dep5(data: bytes) -> bool:
    """True if the file declares the machine-readable copyright format."""
    head = data[:512].lstrip().lower()
    return head.startswith(b"format:") and b"copyright-format" in head.split(b"\n", 1)[0]


def licenses_from_copyright(data: bytes, path: str) -> tuple[tuple[str, ...], list[str]]:
    """Licence short names, in order of first mention, from the ``License:`` fields."""
    if not is_dep5(data):
        return (), []
    warnings = WarningLog(path)
    if len(data) > MAX_COPYRIGHT_BYTES:
        cut = data.rfind(b"\n\n", 0, MAX_COPYRIGHT_BYTES)
        data = data[: cut if cut > 0 else MAX_COPYRIGHT_BYTES]
        warnings.append(f"{path}: only the first {len(data)} bytes were read for licences")
    outcome = parse_paragraphs(data, path, allow_comments=True)
    warnings.extend(outcome.warnings)
    found: list[str] = []
    for paragraph in outcome.paragraphs:
        value = paragraph.get("License")
        if not value:
            continue
        # The first line is the short name (or expression); following lines are the full text.
        name = " ".join(value.split("\n", 1)[0].split())
        if name and name not in found:
            found.append(name)
    return tuple(found), warnings.lines()
