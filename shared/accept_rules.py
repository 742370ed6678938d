"""Accept rules (snyk-broker's ``accept.json``): which requests may cross the broker, and to where.

``private`` rules say what the server may ask the client to fetch (each has an ``origin``);
``public`` rules say what local callers may send upstream. The matcher follows snyk-broker:
path-to-regexp v1 patterns (``:name`` one segment, ``*`` anything, case-insensitive, optional
trailing slash, whole path, query ignored), ``any`` method, first match wins, and the ``valid``
conditions with snyk's semantics (body equality / body regex / query globs: at least one holds,
query globs AND-ed among themselves; header allow-lists: all hold).

Deliberately stricter than snyk-broker: a path is refused when it changes under normalisation
*after percent-decoding* (``%2e%2e``, ``%2f``, ``//``, ``/./``, backslashes, NUL), because the
downstream decodes it and would otherwise be walked out of the allowed prefix.

Pure functions and immutable values; no I/O except :func:`load_rules` reading a file.
"""

from __future__ import annotations

import base64
import json
import posixpath
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from shared.var_substitution import VariableSource, get_path


class AcceptRulesError(ValueError):
    """The filter file or object is unusable; the message names the rule and field."""


@dataclass(frozen=True)
class Rule:
    """One accept rule, compiled."""

    method: str  # lower case; "any" matches every method
    path: str
    origin: str | None
    auth: Mapping[str, str] | None
    valid: tuple[Mapping[str, Any], ...]
    raw: Mapping[str, Any]
    regex: re.Pattern[str] = field(repr=False, compare=False)

    def matches(
        self,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        body: bytes | str | None,
    ) -> bool:
        if self.method != "any" and method.lower() != self.method:
            return False
        if not self.regex.fullmatch(path):
            return False
        return _valid_holds(self.valid, query, headers, body)


@dataclass(frozen=True)
class AcceptRules:
    """Both rule lists plus the source document (what ``/filters`` and ``identify`` show)."""

    private: tuple[Rule, ...]
    public: tuple[Rule, ...]
    document: Mapping[str, Any]

    def match_private(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        body: bytes | str | None = None,
    ) -> Rule | None:
        """The first private rule allowing this request, or None (blocked)."""
        return _first_match(self.private, method, url, headers, body)

    def match_public(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        body: bytes | str | None = None,
    ) -> Rule | None:
        """The first public rule allowing this request, or None (blocked)."""
        return _first_match(self.public, method, url, headers, body)


# --------------------------------------------------------------------------- loading


def load_rules(source: str | Path | Mapping[str, Any]) -> AcceptRules:
    """Load rules from a JSON or YAML file path, a JSON/YAML text, or an already parsed object."""
    if isinstance(source, Mapping):
        return compile_rules(source)
    text_source = str(source)
    path = Path(text_source)
    if isinstance(source, Path) or (
        "\n" not in text_source and not text_source.lstrip().startswith(("{", "["))
    ):
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise AcceptRulesError(f"cannot read accept rules {path}: {exc.strerror}") from None
        origin = str(path)
    else:
        text, origin = text_source, "inline text"
    try:
        document = json.loads(text)
    except ValueError:
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise AcceptRulesError(
                f"accept rules in {origin} are neither JSON nor YAML: {exc}"
            ) from None
    if not isinstance(document, Mapping):
        raise AcceptRulesError(
            f"accept rules in {origin} must be an object with 'private'/'public'"
        )
    return compile_rules(document)


def compile_rules(document: Mapping[str, Any]) -> AcceptRules:
    """Validate and compile a parsed ``{"private": [...], "public": [...]}`` document."""
    if "private" not in document and "public" not in document:
        raise AcceptRulesError("accept rules need a 'private' and/or 'public' list")
    lists: dict[str, tuple[Rule, ...]] = {}
    for kind in ("private", "public"):
        entries = document.get(kind) or []
        if not isinstance(entries, Sequence) or isinstance(entries, str | bytes):
            raise AcceptRulesError(f"'{kind}' must be a list of rules")
        lists[kind] = tuple(_compile_rule(kind, i, entry) for i, entry in enumerate(entries))
    return AcceptRules(private=lists["private"], public=lists["public"], document=dict(document))


def _compile_rule(kind: str, index: int, entry: Any) -> Rule:
    where = f"{kind} rule #{index}"
    if not isinstance(entry, Mapping):
        raise AcceptRulesError(f"{where} must be an object")
    method = str(entry.get("method") or "get").lower()
    path = entry.get("path") or ""
    if not isinstance(path, str):
        raise AcceptRulesError(f"{where}: 'path' must be a string")
    if not path.startswith("/"):
        path = "/" + path
    origin = entry.get("origin")
    if origin is not None and not isinstance(origin, str):
        raise AcceptRulesError(f"{where}: 'origin' must be a string")
    auth = entry.get("auth")
    if auth is not None:
        if not isinstance(auth, Mapping) or auth.get("scheme") not in AUTH_SCHEMES:
            raise AcceptRulesError(
                f"{where}: 'auth.scheme' must be one of {', '.join(AUTH_SCHEMES)}"
            )
    valid = entry.get("valid") or []
    if not isinstance(valid, Sequence) or isinstance(valid, str):
        raise AcceptRulesError(f"{where}: 'valid' must be a list")
    for cond in valid:
        _check_condition(where, cond)
    return Rule(
        method=method,
        path=path,
        origin=origin,
        auth=dict(auth) if auth else None,
        valid=tuple(dict(c) for c in valid),
        raw=dict(entry),
        regex=compile_path(path),
    )


def _check_condition(where: str, cond: Any) -> None:
    if not isinstance(cond, Mapping):
        raise AcceptRulesError(f"{where}: each 'valid' entry must be an object")
    if "regex" in cond:
        try:
            re.compile(_js_regex(str(cond["regex"])))
        except re.error as exc:
            raise AcceptRulesError(f"{where}: bad 'valid' regex {cond['regex']!r}: {exc}") from None
    if ("queryParam" in cond or "header" in cond) and not isinstance(cond.get("values"), list):
        raise AcceptRulesError(f"{where}: 'valid' queryParam/header entries need a 'values' list")


# --------------------------------------------------------------------------- path-to-regexp v1

_TOKEN = re.compile(
    r"(\\.)"  # escaped character
    r"|([/.])?(?::(\w+)(?:\(((?:\\.|[^\\()])+)\))?|\(((?:\\.|[^\\()])+)\))([+*?])?"  # parameter
    r"|(\*)"  # asterisk: anything, slashes included
)


def compile_path(pattern: str) -> re.Pattern[str]:
    """path-to-regexp 1.x with its defaults (not sensitive, not strict, end)."""
    out: list[str] = []
    pos = 0
    for m in _TOKEN.finditer(pattern):
        out.append(re.escape(pattern[pos : m.start()]))
        pos = m.end()
        escaped, prefix, _name, capture, group, modifier, star = m.groups()
        if escaped:
            out.append(re.escape(escaped[1]))
            continue
        if star:
            out.append("(.*)")
            continue
        body = _js_regex(capture or group) if (capture or group) else r"[^/]+?"
        pre = re.escape(prefix) if prefix else ""
        if modifier in ("+", "*"):
            body = f"{body}(?:{pre}{body})*"
        if modifier in ("?", "*"):
            out.append(f"(?:{pre}({body}))?")
        else:
            out.append(f"{pre}({body})")
    out.append(re.escape(pattern[pos:]))
    source = "".join(out)
    if source.endswith("/"):
        source = source[:-1]
    return re.compile(f"{source}/?", re.IGNORECASE | re.DOTALL)


def _js_regex(text: str) -> str:
    # JS named groups (?<x>) are Python's (?P<x>)
    return re.sub(r"\(\?<(?![=!])", "(?P<", text)


# --------------------------------------------------------------------------- path safety

_BAD_DECODED = re.compile(r"[\\\x00-\x1f\x7f]")


def split_url(url: str) -> tuple[str, str]:
    """Path and query of a request URL (fragment dropped; the query may contain more ``?``)."""
    main = url.split("#", 1)[0]
    path, _, query = main.partition("?")
    return path, query


def safe_path(path: str) -> str | None:
    """The percent-decoded path when it is canonical both raw and decoded, else None.

    Refuses ``..``, ``.``, empty segments (``//``), encoded slashes or backslashes, control
    characters, in raw or percent-encoded (even double-encoded) form.
    """
    if not path.startswith("/"):
        return None
    current = path
    for _ in range(3):
        if not _canonical(current) or "%2f" in current.lower() or "%5c" in current.lower():
            return None
        try:
            decoded = urllib.parse.unquote(current, errors="strict")
        except UnicodeDecodeError:
            return None
        if decoded == current:
            return decoded
        current = decoded
    return None  # still decoding after three rounds: an encoding attack, not a real name


def _canonical(path: str) -> bool:
    if _BAD_DECODED.search(path):
        return False
    normalised = posixpath.normpath(path)
    if path.endswith("/") and normalised != "/":
        normalised += "/"
    return normalised == path and not path.startswith("//")


# --------------------------------------------------------------------------- valid conditions


def _valid_holds(
    valid: Sequence[Mapping[str, Any]],
    query: str,
    headers: Mapping[str, str],
    body: bytes | str | None,
) -> bool:
    body_eq = [c for c in valid if c.get("path") and "regex" not in c]
    body_re = [c for c in valid if c.get("path") and "regex" in c]
    query_c = [c for c in valid if c.get("queryParam")]
    header_c = [c for c in valid if c.get("header")]
    if body_eq or body_re or query_c:
        parsed = _parse_json(body) if (body_eq or body_re) else None
        ok = any(get_path(parsed, c["path"]) == c.get("value") for c in body_eq)
        if not ok and body_re:
            ok = any(_regex_holds(c, get_path(parsed, c["path"])) for c in body_re)
        if not ok and query_c:
            params = urllib.parse.parse_qs(query, keep_blank_values=True)
            ok = all(
                any(glob_match((params.get(c["queryParam"]) or [""])[0], g) for g in c["values"])
                for c in query_c
            )
        if not ok:
            return False
    lowered = {k.lower(): v for k, v in headers.items()}
    for cond in header_c:
        value = lowered.get(str(cond["header"]).lower())
        if not value or value not in cond["values"]:
            return False
    return True


def _regex_holds(cond: Mapping[str, Any], value: Any) -> bool:
    if value is None:
        return False
    text = value if isinstance(value, str) else json.dumps(value)
    return re.search(_js_regex(str(cond["regex"])), text) is not None


def _parse_json(body: bytes | str | None) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def glob_match(value: str, pattern: str) -> bool:
    """minimatch with ``dot: true``: ``*`` and ``?`` stay within a segment, ``**`` crosses."""
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        else:
            out.append(re.escape(ch))
        i += 1
    return re.fullmatch("".join(out), value) is not None


# --------------------------------------------------------------------------- origin and auth

AUTH_SCHEMES = ("basic", "bearer", "token", "raw")


def expand_origin(origin: str, variables: VariableSource) -> str:
    """The rule's origin with ``${VAR}`` expanded; ``https://`` added when it has no scheme."""
    expanded = variables.replace(origin).rstrip("/")
    if not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", expanded):
        expanded = "https://" + expanded
    return expanded


def auth_header(auth: Mapping[str, str] | None, variables: VariableSource) -> str | None:
    """The ``Authorization`` value a rule's ``auth`` block asks for (snyk's auth-header)."""
    if not auth:
        return None
    scheme = auth.get("scheme")
    token = variables.replace(auth.get("token"))
    if scheme == "token":
        return f"Token {token}"
    if scheme == "bearer":
        return f"Bearer {token}"
    if scheme == "basic":
        if auth.get("token"):
            return "Basic " + base64.b64encode(token.encode()).decode()
        pair = (
            f"{variables.replace(auth.get('username'))}:{variables.replace(auth.get('password'))}"
        )
        return "Basic " + base64.b64encode(pair.encode()).decode()
    if scheme == "raw":
        return token
    return None


def _first_match(
    rules: Sequence[Rule],
    method: str,
    url: str,
    headers: Mapping[str, str] | None,
    body: bytes | str | None,
) -> Rule | None:
    raw_path, query = split_url(url)
    path = safe_path(raw_path)
    if path is None:
        return None
    for rule in rules:
        if rule.matches(method, path, query, headers or {}, body):
            return rule
    return None
