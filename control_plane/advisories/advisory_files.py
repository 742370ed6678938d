"""Advisory files as users bring them: OSV JSON records, directories of them, osv.dev's
per-ecosystem ``all.zip``, Alpine secdb JSON and the Debian security tracker's JSON.

The format is recognised from the content, not the file name, so a mirror's naming does not
matter. Nothing here raises on bad input: an unreadable file or member becomes a Skipped entry
naming it.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from control_plane.advisories.alpine_secdb import read_secdb
from control_plane.advisories.debian_tracker import read_tracker
from control_plane.advisories.osv import read_osv_records
from control_plane.advisories.records import ReadOutcome, Skipped

# A single record is a few kB; the Debian tracker's whole JSON is ~100 MB.
MAX_DOCUMENT_BYTES = 1024 * 1024 * 1024
WHOLE = "(file)"


def _is_tracker(doc: dict[str, Any]) -> bool:
    for issues in doc.values():
        if isinstance(issues, dict):
            for body in issues.values():
                return isinstance(body, dict) and "releases" in body
    return False


def read_document(doc: Any, where: str) -> ReadOutcome:
    """Advisories from one decoded JSON document of any supported format."""
    if isinstance(doc, list):
        return read_osv_records(doc, where)
    if isinstance(doc, dict):
        if "affected" in doc or "modified" in doc or "schema_version" in doc:
            return read_osv_records(doc, where)
        if "packages" in doc and ("distroversion" in doc or "reponame" in doc):
            return read_secdb(doc, where)
        if _is_tracker(doc):
            return read_tracker(doc, where)
    return ReadOutcome.failed(
        where, "(document)", "not an OSV record, Alpine secdb or Debian tracker document"
    )


def read_bytes(data: bytes, where: str) -> ReadOutcome:
    """Advisories from the bytes of one JSON file."""
    try:
        doc = json.loads(data)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError alike
        return ReadOutcome.failed(where, WHOLE, f"not JSON: {exc}")
    except RecursionError:
        return ReadOutcome.failed(where, WHOLE, "not JSON this reader takes: nested too deeply")
    return read_document(doc, where)


def read_zip(path: Path, label: str | None = None) -> ReadOutcome:
    """Every ``*.json`` member of a zip archive (osv.dev's ``<ecosystem>/all.zip``);
    ``label`` names it in what is skipped (default: its path)."""
    label = label or str(path)
    outcome = ReadOutcome()
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                where = f"{label}:{info.filename}"
                if info.is_dir() or not info.filename.endswith(".json"):
                    continue
                if info.file_size > MAX_DOCUMENT_BYTES:
                    outcome.skipped.append(
                        Skipped(
                            where, WHOLE, f"{info.file_size} bytes is more than this reader takes"
                        )
                    )
                    continue
                try:
                    data = archive.read(info)
                except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
                    outcome.skipped.append(Skipped(where, WHOLE, f"cannot read member: {exc}"))
                    continue
                outcome.extend(read_bytes(data, where))
    except (zipfile.BadZipFile, OSError) as exc:
        outcome.skipped.append(Skipped(label, WHOLE, f"not a readable zip archive: {exc}"))
    return outcome


def read_path(path: str | os.PathLike[str]) -> ReadOutcome:
    """Advisories from a file (JSON or zip) or every JSON and zip file under a directory."""
    target = Path(path)
    outcome = ReadOutcome()
    if target.is_dir():
        try:
            children = sorted(target.rglob("*"))
        except OSError as exc:
            return ReadOutcome.failed(str(target), WHOLE, f"cannot list: {exc.strerror or exc}")
        for child in children:
            if child.suffix in (".json", ".zip") and child.is_file():
                outcome.extend(read_path(child))
        return outcome
    return read_file(target)


def read_file(target: Path, label: str | None = None) -> ReadOutcome:
    """Advisories from one JSON or zip file; ``label`` names it in what is skipped (an
    upload's temporary file has no name worth showing). Default: its path."""
    label = label or str(target)
    try:
        if zipfile.is_zipfile(target):
            return read_zip(target, label)
        size = target.stat().st_size
        if size > MAX_DOCUMENT_BYTES:
            return ReadOutcome.failed(label, WHOLE, f"{size} bytes is too large")
        data = target.read_bytes()
    except OSError as exc:
        return ReadOutcome.failed(label, WHOLE, f"cannot read: {exc.strerror or exc}")
    return read_bytes(data, label)


def read_paths(paths: Iterable[str | os.PathLike[str]]) -> ReadOutcome:
    outcome = ReadOutcome()
    for path in paths:
        outcome.extend(read_path(path))
    return outcome
