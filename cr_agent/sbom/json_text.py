"""SBOM documents as JSON text, indented by two spaces.

The text is exactly what ``json.dumps(document, indent=2, ensure_ascii=False)`` writes, but
orjson makes it: with ``indent`` set the standard library leaves its C encoder for the pure
Python one (~3.5 ms for a 150-package CycloneDX document here, against ~0.2 ms).
"""

from __future__ import annotations

import json
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - orjson is a dependency; keep working without it
    orjson = None  # type: ignore[assignment]


def indented_json(document: Any) -> str:
    if orjson is not None:
        try:
            return orjson.dumps(document, option=orjson.OPT_INDENT_2).decode()
        except TypeError:
            pass  # lone surrogates, integers over 64 bits: json writes what orjson refuses
    return json.dumps(document, indent=2, ensure_ascii=False)
