"""``${VAR}`` placeholders: origins, auth values, ``x-broker-var-sub`` headers, ``BROKER_VAR_SUB`` bodies.

snyk-broker fills placeholders from its merged configuration; ``NAME_POOL=a,b,c`` makes
``${NAME}`` rotate round-robin over the pool. Unknown names become the empty string, as there.
The server uses substitution to hand the agent values only the client knows (``CR_CREDENTIALS``
in an ``authorization`` header, a callback URL in a JSON body) without ever seeing them.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Iterator, Mapping
from typing import Any

PLACEHOLDER = re.compile(r"\$\{(.*?)\}")
HEADER_SWITCH = "x-broker-var-sub"
BODY_SWITCH = "BROKER_VAR_SUB"


class VariableSource:
    """Values for ``${NAME}``; ``NAME_POOL`` (comma list) rotates, else ``NAME`` is used."""

    def __init__(self, values: Mapping[str, str | None]) -> None:
        self._values = {k: v for k, v in values.items() if v is not None}
        self._pools: dict[str, Iterator[str]] = {}
        self._lock = threading.Lock()
        for key, value in self._values.items():
            if key.endswith("_POOL") and value:
                members = [m.strip() for m in value.split(",") if m.strip()]
                if members:
                    self._pools[key[: -len("_POOL")]] = itertools.cycle(members)

    def get(self, name: str) -> str:
        pool = self._pools.get(name)
        if pool is not None:
            with self._lock:
                return next(pool)
        return self._values.get(name, "")

    def has(self, name: str) -> bool:
        return name in self._pools or bool(self._values.get(name))

    def replace(self, text: str | None) -> str:
        """Replace every ``${NAME}`` in ``text``; ``None`` becomes ``""`` (snyk's behaviour)."""
        if not text:
            return ""
        return PLACEHOLDER.sub(lambda m: self.get(m.group(1)), text)

    def pool_members(self, name: str) -> list[str]:
        """The members of ``NAME_POOL``, or ``[NAME]`` when only the single value is set."""
        pooled = self._values.get(f"{name}_POOL")
        if pooled:
            return [m.strip() for m in pooled.split(",") if m.strip()]
        single = self._values.get(name)
        return [single] if single else []


def substitute_headers(headers: dict[str, str], source: VariableSource) -> list[str]:
    """Apply ``x-broker-var-sub: a,b`` to ``headers`` in place; returns the header names changed.

    Header names are matched case-insensitively (HTTP semantics); ``x-broker-var-sub`` itself is
    left in place, as snyk-broker forwards it too.
    """
    lowered = {k.lower(): k for k in headers}
    switch = lowered.get(HEADER_SWITCH)
    if switch is None:
        return []
    changed = []
    for raw_name in headers[switch].split(","):
        name = raw_name.strip().lower()
        key = lowered.get(name)
        if not name or key is None:
            continue
        headers[key] = source.replace(headers[key])
        changed.append(name)
    return changed


def substitute_body(body: bytes | None, source: VariableSource) -> tuple[bytes | None, list[str]]:
    """Apply ``BROKER_VAR_SUB`` of a JSON object body; returns the new body and the paths changed.

    A body that is not a JSON object, or has no ``BROKER_VAR_SUB`` list, is returned unchanged.
    The switch key is removed and the JSON re-serialised compactly, as snyk-broker does.
    """
    if not body or BODY_SWITCH.encode() not in body:
        return body, []
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body, []
    if not isinstance(parsed, dict) or not isinstance(parsed.get(BODY_SWITCH), list):
        return body, []
    paths = [p for p in parsed.pop(BODY_SWITCH) if isinstance(p, str)]
    changed = []
    for path in paths:
        current = get_path(parsed, path)
        if isinstance(current, str) and set_path(parsed, path, source.replace(current)):
            changed.append(path)
    text = json.dumps(parsed, separators=(",", ":"), ensure_ascii=False)
    return text.encode(), changed


def get_path(obj: Any, path: str) -> Any:
    """The value at a dotted path (``a.b.0.c``), or None when any step is missing."""
    current = obj
    for part in path.split("."):
        if isinstance(current, dict):
            if part not in current:
                return None
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return None
    return current


def set_path(obj: Any, path: str, value: Any) -> bool:
    """Set the value at an existing dotted path; False when the parent does not exist."""
    *parents, last = path.split(".")
    parent = get_path(obj, ".".join(parents)) if parents else obj
    if isinstance(parent, dict) and last in parent:
        parent[last] = value
        return True
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        parent[int(last)] = value
        return True
    return False
