"""``${VAR}`` placeholders: origins, auth values, ``x-broker-var-sub`` headers, ``BROKER_VAR_SUB`` bodies.

snyk-broker fills placeholders from its merged configuration, read once at start-up;
``NAME_POOL=a,b,c`` makes ``${NAME}`` rotate round-robin over the pool, one member per request
(every ``${NAME}`` of that request gets the same one). Unknown names become the empty string,
as there. A process therefore builds one :class:`VariableSource` at start-up and takes
:meth:`VariableSource.for_request` for each request.
The server uses substitution to hand the agent values only the client knows (``CR_CREDENTIALS``
in an ``authorization`` header, a callback URL in a JSON body) without ever seeing them.

snyk-broker fills *any* variable of the client's environment into *any* field the server
names, so a hostile server can read ``${BROKER_TOKEN}`` back through a field the agent echoes.
Ours fills only what a :class:`SubstitutionAllowList` names, variable by variable and place by
place; every other placeholder stays literal. The accept rules' own ``origin`` and ``auth``
values are the customer's configuration, not the server's, and expand from every variable.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
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

    def replace_only(self, text: str, allowed: frozenset[str]) -> tuple[str, list[str]]:
        """Replace the ``${NAME}`` whose name is in ``allowed``; the others stay literal.

        Returns the new text and the names left literal (for a log line: names, never values).
        """
        refused: list[str] = []

        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in allowed:
                return self.get(name)
            refused.append(name)
            return match.group(0)

        return PLACEHOLDER.sub(one, text), refused

    def for_request(self) -> VariableSource:
        """The values for one request: each pool's next member, the same for every
        ``${NAME}`` of the request, and the pool moves on once (snyk-broker's ``_POOL_IDX``)."""
        return _OneRequest(self)

    def pool_members(self, name: str) -> list[str]:
        """The members of ``NAME_POOL``, or ``[NAME]`` when only the single value is set."""
        pooled = self._values.get(f"{name}_POOL")
        if pooled:
            return [m.strip() for m in pooled.split(",") if m.strip()]
        single = self._values.get(name)
        return [single] if single else []


class _OneRequest(VariableSource):
    """A request's view of a :class:`VariableSource`: a pool member, once drawn, is kept."""

    def __init__(self, shared: VariableSource) -> None:
        # the values and the pools' rotation stay the shared source's
        self._values = shared._values
        self._pools = shared._pools
        self._lock = shared._lock
        self._shared = shared
        self._drawn: dict[str, str] = {}

    def get(self, name: str) -> str:
        if name not in self._pools:
            return self._values.get(name, "")
        if name not in self._drawn:
            self._drawn[name] = self._shared.get(name)
        return self._drawn[name]

    def for_request(self) -> VariableSource:
        return self._shared.for_request()


#: Variables no allow-list may name: the client's own secrets and the network around it.
NEVER_SUBSTITUTED = frozenset(
    {
        "BROKER_TOKEN",
        "HTTPS_PROXY",
        "HTTP_PROXY",
        "NO_PROXY",
        "ALL_PROXY",
        "BROKER_CLIENT_VALIDATION_AUTHORIZATION_HEADER",
        "BROKER_CLIENT_VALIDATION_BASIC_AUTH",
    }
)
NEVER_SUBSTITUTED_PREFIXES = ("AWS_", "AZURE_", "GOOGLE_", "GCP_", "ARM_")
#: The default: the registry credentials into an ``Authorization`` header, and the client's
#: own address into a scan's ``callbackUrl`` (what Snyk's backend asks for; not a secret).
DEFAULT_ALLOW = "CR_CREDENTIALS@header:authorization,BROKER_CLIENT_URL@body:callbackUrl"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class AllowListError(ValueError):
    """An allow-list entry is malformed or names a variable that may never be substituted."""


@dataclass(frozen=True)
class SubstitutionAllowList:
    """Which variables server-requested substitution may fill in, and where.

    Written as ``VAR@header:<name>`` or ``VAR@body:<dotted.path>`` entries, comma separated
    (``none`` for no substitution at all). Header names are case-insensitive; body paths are
    the ``BROKER_VAR_SUB`` paths, matched exactly.
    """

    headers: Mapping[str, frozenset[str]] = field(default_factory=dict)
    body: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> SubstitutionAllowList:
        headers: dict[str, set[str]] = {}
        body: dict[str, set[str]] = {}
        entries = [e.strip() for e in text.split(",") if e.strip()]
        if entries == ["none"]:
            return cls()
        for entry in entries:
            name, at, place = entry.partition("@")
            kind, colon, where = place.partition(":")
            if not at or not colon or kind not in ("header", "body") or not where.strip():
                raise AllowListError(f"entry {entry!r} is not VAR@header:<name> or VAR@body:<path>")
            name = name.strip()
            if not _NAME.match(name):
                raise AllowListError(f"entry {entry!r}: {name!r} is not a variable name")
            if name.upper() in NEVER_SUBSTITUTED or name.upper().startswith(
                NEVER_SUBSTITUTED_PREFIXES
            ):
                raise AllowListError(f"entry {entry!r}: {name} is never substituted")
            if kind == "header":
                headers.setdefault(where.strip().lower(), set()).add(name)
            else:
                body.setdefault(where.strip(), set()).add(name)
        return cls(
            {k: frozenset(v) for k, v in headers.items()},
            {k: frozenset(v) for k, v in body.items()},
        )

    def for_header(self, name: str) -> frozenset[str]:
        return self.headers.get(name.lower(), frozenset())

    def for_body(self, path: str) -> frozenset[str]:
        return self.body.get(path, frozenset())

    def variables(self) -> set[str]:
        """Every variable named anywhere."""
        return {v for group in (*self.headers.values(), *self.body.values()) for v in group}


@dataclass(frozen=True)
class Refused:
    """A placeholder left literal: where it was and which variable it named."""

    place: str
    variable: str


def substitute_headers(
    headers: dict[str, str],
    source: VariableSource,
    allow: SubstitutionAllowList,
    skip: Iterable[str] = (),
) -> tuple[list[str], list[Refused]]:
    """Apply ``x-broker-var-sub: a,b`` to ``headers`` in place, within ``allow``.

    Returns the header names changed and the placeholders left literal. Header names are
    matched case-insensitively (HTTP semantics); ``x-broker-var-sub`` itself is left in place,
    as snyk-broker forwards it too. Headers in ``skip`` are not touched.
    """
    lowered = {k.lower(): k for k in headers}
    switch = lowered.get(HEADER_SWITCH)
    if switch is None:
        return [], []
    skipped = {s.lower() for s in skip}
    changed: list[str] = []
    refused: list[Refused] = []
    for raw_name in headers[switch].split(","):
        name = raw_name.strip().lower()
        key = lowered.get(name)
        if not name or key is None or name in skipped:
            continue
        headers[key], literal = source.replace_only(headers[key], allow.for_header(name))
        refused += [Refused(f"header:{name}", v) for v in literal]
        changed.append(name)
    return changed, refused


def substitute_body(
    body: bytes | None, source: VariableSource, allow: SubstitutionAllowList
) -> tuple[bytes | None, list[str], list[Refused]]:
    """Apply ``BROKER_VAR_SUB`` of a JSON object body, within ``allow``.

    Returns the new body, the paths changed and the placeholders left literal. A body that is
    not a JSON object, or has no ``BROKER_VAR_SUB`` list, is returned unchanged. The switch key
    is removed and the JSON re-serialised compactly, as snyk-broker does.
    """
    if not body or BODY_SWITCH.encode() not in body:
        return body, [], []
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body, [], []
    if not isinstance(parsed, dict) or not isinstance(parsed.get(BODY_SWITCH), list):
        return body, [], []
    paths = [p for p in parsed.pop(BODY_SWITCH) if isinstance(p, str)]
    changed: list[str] = []
    refused: list[Refused] = []
    for path in paths:
        current = get_path(parsed, path)
        if not isinstance(current, str):
            continue
        value, literal = source.replace_only(current, allow.for_body(path))
        refused += [Refused(f"body:{path}", v) for v in literal]
        if set_path(parsed, path, value):
            changed.append(path)
    text = json.dumps(parsed, separators=(",", ":"), ensure_ascii=False)
    return text.encode(), changed, refused


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
