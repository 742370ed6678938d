"""JSON from a registry, refused when it nests deeper than any real document does.

Manifests, indexes, configs, listing pages and token answers are a few levels deep (an OCI
config's ``config.Labels`` is the deepest at three). A hostile registry can send thousands of
levels: Python's parser then raises ``RecursionError`` (not a ``ValueError``), and a document
just under that limit can still break whatever walks it later. :func:`loads` turns both into
:class:`JsonTooDeep`, a ``ValueError``, so every caller's "not valid JSON" path applies.
"""

from __future__ import annotations

import json
from typing import Any

#: far beyond any manifest, index, config or API answer we read; far below the parser's limit
MAX_JSON_DEPTH = 64


class JsonTooDeep(ValueError):
    """The document nests arrays/objects deeper than :data:`MAX_JSON_DEPTH`."""


def loads(raw: bytes | str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` that refuses documents nested deeper than ``max_depth``."""
    try:
        value = json.loads(raw)
    except RecursionError:
        raise JsonTooDeep(f"JSON nested deeper than {max_depth} levels") from None
    if _deeper_than(value, max_depth):
        raise JsonTooDeep(f"JSON nested deeper than {max_depth} levels")
    return value


def _deeper_than(value: Any, limit: int) -> bool:
    """Walk the containers without recursion; stop at the first one past ``limit``."""
    if not isinstance(value, dict | list):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False
