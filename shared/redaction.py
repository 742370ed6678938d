"""Secret redaction: one registry of secret values, one structlog processor.

Every service registers the secret values it knows (broker token, every ``CR_*`` value,
``CR_CREDENTIALS`` and the fields it decodes to, per-request Authorization values) and the
processor scrubs them from every event dict, at every level, whatever key they sit under and
however deeply nested. Values are matched as substrings, so a secret embedded in a URL or a
message is caught too; base64 and URL-encoded forms of each secret are registered alongside.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any

#: Header and field names whose values are always replaced, whatever they hold (a pattern,
#: compiled on first use by :func:`is_sensitive_key`).
SENSITIVE_KEY_NAMES = (
    r"(^|[-_])(authorization|proxy-authorization|x-broker-token|cookie|set-cookie|password|"
    r"passwd|secret|token|credentials?|private[-_]?key|passphrase|pem|api[-_]?key)$"
)

#: Shortest value worth registering; shorter ones would redact ordinary words.
MIN_SECRET_LENGTH = 4

#: Fixed usernames that registries document publicly. They are never secret, and redacting
#: them would hide the one word an error message needs ("username must be _json_key").
PUBLIC_VALUES = frozenset(
    {
        "_json_key",
        "_json_key_base64",
        "oauth2accesstoken",
        "aws",
        "00000000-0000-0000-0000-000000000000",
        "_token",
        "x-access-token",
        "gitlab-ci-token",
    }
)
REDACTED = "[REDACTED]"


def mask_token(token: str) -> str:
    """snyk-broker's ``maskToken``: first 4 + ``-...-`` + last 4 characters."""
    if len(token) <= 8:
        return "***"
    return f"{token[:4]}-...-{token[-4:]}"


def hash_token(token: str) -> str:
    """sha256 hex of the token, as snyk-broker logs it (``hashedToken``)."""
    return hashlib.sha256(token.encode()).hexdigest()


def mask_credentials(value: str | None) -> str | None:
    """snyk-broker's systemcheck masking: first 3 + ``***`` + last 3 (``***`` if short)."""
    if value is None:
        return None
    if len(value) <= 6:
        return "***"
    return f"{value[:3]}***{value[-3:]}"


class SecretRegistry:
    """Thread-safe set of secret strings and the compiled pattern that finds them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, *values: str | None) -> None:
        """Register secret values, with their common encodings."""
        new: set[str] = set()
        for value in values:
            if not value or len(value) < MIN_SECRET_LENGTH or value.lower() in PUBLIC_VALUES:
                continue
            for form in _encodings(value):
                if len(form) >= MIN_SECRET_LENGTH:
                    new.add(form)
        if not new:
            return
        with self._lock:
            if new <= self._secrets:
                return
            self._secrets |= new
            # Compiled by the next scrub, not here: a long token costs ~1.5 ms to compile, and
            # a CLI run that registers several and logs nothing should not pay for it.
            self._pattern = None

    def add_all(self, values: Iterable[str | None]) -> None:
        self.add(*values)

    def clear(self) -> None:
        with self._lock:
            self._secrets.clear()
            self._pattern = None

    def __contains__(self, value: object) -> bool:
        return value in self._secrets

    def scrub(self, text: str) -> str:
        """Replace every registered secret inside ``text``."""
        if not text or not self._secrets:
            return text
        pattern = self._pattern or self._compile()
        return pattern.sub(REDACTED, text)

    def _compile(self) -> re.Pattern[str]:
        with self._lock:
            pattern = self._pattern
            if pattern is None:
                # longest first, so a secret that contains another is replaced whole
                ordered = sorted(self._secrets, key=len, reverse=True)
                pattern = re.compile("|".join(re.escape(s) for s in ordered), re.IGNORECASE)
                self._pattern = pattern
            return pattern


def _encodings(value: str) -> set[str]:
    forms = {value, urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value)}
    raw = value.encode()
    forms.add(base64.b64encode(raw).decode())
    forms.add(base64.b64encode(raw + b"\n").decode())
    forms.add(base64.urlsafe_b64encode(raw).decode().rstrip("="))
    # a secret that is itself base64 (CR_CREDENTIALS) is also secret when decoded
    stripped = value.strip()
    try:
        decoded = base64.b64decode(stripped, validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        decoded = ""
    if decoded.strip():
        forms.add(decoded.strip())
    # JSON-escaped form, for secrets containing quotes or backslashes
    forms.add(value.replace("\\", "\\\\").replace('"', '\\"'))
    return forms


#: The process-wide registry every service feeds and the log processor reads.
SECRETS = SecretRegistry()


@functools.cache
def _sensitive_key_search() -> Callable[[str], re.Match[str] | None]:
    # compiled on the first line logged (~0.3 ms on this machine), not at import
    return re.compile(SENSITIVE_KEY_NAMES, re.IGNORECASE).search


def is_sensitive_key(key: str) -> bool:
    """Whether a header or field called ``key`` holds a value that is always replaced."""
    return _sensitive_key_search()(key) is not None


def redact_value(value: Any, registry: SecretRegistry = SECRETS, _depth: int = 0) -> Any:
    """Return ``value`` with secrets removed, recursing into mappings and sequences."""
    if _depth > 12:
        return REDACTED
    if isinstance(value, str):
        return registry.scrub(value)
    if isinstance(value, bytes | bytearray):
        return registry.scrub(bytes(value).decode("utf-8", "replace"))
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        sensitive = _sensitive_key_search()
        for key, item in value.items():
            if isinstance(key, str) and sensitive(key) and item:
                out[key] = REDACTED
            else:
                out[key] = redact_value(item, registry, _depth + 1)
        return out
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(item, registry, _depth + 1) for item in value]
    if isinstance(value, int | float | bool) or value is None:
        return value
    return registry.scrub(repr(value) if isinstance(value, BaseException) else str(value))


#: A credential-bearing field inside a frame (JSON text): header or body field names.
_CREDENTIAL_FIELD = re.compile(
    r'\\?"(?:authorization|proxy-authorization|x-broker-token|credentials|password|cookie)'
    r'\\?"\s*:',
    re.IGNORECASE,
)
WITHHELD = "[frame withheld: it carries credentials]"


def excerpt(text: str, limit: int, registry: SecretRegistry = SECRETS) -> str:
    """At most ``limit`` characters of ``text`` for a debug log, or :data:`WITHHELD`.

    Redaction comes first and the cut after it: a cut first could split a secret so that
    neither half matches any registered form (the part before the cut would be logged). A
    text holding a registered secret, or a credential field of any value (a substituted
    ``CR_CREDENTIALS``, a blob the server made up), is not logged at all.
    """
    if registry.scrub(text) != text or _CREDENTIAL_FIELD.search(text):
        return WITHHELD
    return text[:limit]


def redaction_processor(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: scrub secrets from every key of the event."""
    sensitive = _sensitive_key_search()
    for key in list(event_dict):
        item = event_dict[key]
        if key != "event" and sensitive(key) and item:
            event_dict[key] = REDACTED
        else:
            event_dict[key] = redact_value(item)
    return event_dict
