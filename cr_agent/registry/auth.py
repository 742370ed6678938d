"""Registry credentials, ``WWW-Authenticate`` parsing and the bearer-token cache (no I/O).

The HTTP side (fetching tokens from a realm) lives in :mod:`cr_agent.registry.client`; this
module holds the parts that are pure functions of headers and clocks, so each edge case is a
three-line test.
"""

from __future__ import annotations

import base64
import ipaddress
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from shared.logging import register_secrets


@dataclass(frozen=True)
class RegistryAuth:
    """What we may present to a registry.

    ``identity_token`` is an OAuth2 refresh token (docker config ``identitytoken``, or a
    credential helper answering username ``<token>``); ``bearer_token`` is a ready-made
    registry token sent as-is.
    """

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    identity_token: str | None = field(default=None, repr=False)
    bearer_token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        register_secrets(self.password, self.identity_token, self.bearer_token)
        if self.username and self.password:
            register_secrets(self.basic_header())

    @property
    def anonymous(self) -> bool:
        return not (self.username or self.password or self.identity_token or self.bearer_token)

    def basic_header(self) -> str | None:
        if self.username is None and self.password is None:
            return None
        raw = f"{self.username or ''}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(raw).decode()


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str  # lower-case: "basic", "bearer"
    params: dict[str, str]

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")

    @property
    def service(self) -> str | None:
        return self.params.get("service")

    @property
    def scopes(self) -> list[str]:
        return self.params.get("scope", "").split()

    @property
    def error(self) -> str | None:
        return self.params.get("error")


def parse_www_authenticate(header: str) -> list[Challenge]:
    """All challenges in a ``WWW-Authenticate`` value (RFC 7235 syntax, quoted strings)."""
    challenges: list[Challenge] = []
    i, n = 0, len(header)
    current: Challenge | None = None
    while i < n:
        while i < n and header[i] in " \t,":
            i += 1
        start = i
        while i < n and header[i] not in " \t,=":
            i += 1
        token = header[start:i]
        if not token:
            break
        j = i
        while j < n and header[j] in " \t":
            j += 1
        if j < n and header[j] == "=" and current is not None:
            i = j + 1
            while i < n and header[i] in " \t":
                i += 1
            if i < n and header[i] == '"':
                i += 1
                value = []
                while i < n and header[i] != '"':
                    if header[i] == "\\" and i + 1 < n:
                        i += 1
                    value.append(header[i])
                    i += 1
                i += 1
                current.params[token.lower()] = "".join(value)
            else:
                start = i
                while i < n and header[i] not in ",":
                    i += 1
                current.params[token.lower()] = header[start:i].strip()
        else:
            current = Challenge(token.lower(), {})
            challenges.append(current)
    return challenges


def local_kind(host: str) -> str | None:
    """ "loopback", "link-local" or "unspecified" for such an IP address; None otherwise (a
    name, or an ordinary address)."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_unspecified:
        return "unspecified"
    return None


def realm_refusal(
    realm: str,
    registry_base: str,
    *,
    insecure: bool = False,
    realm_addresses: Iterable[str] = (),
    registry_addresses: Iterable[str] = (),
) -> str | None:
    """Why credentials must not go to this token realm, or None when they may.

    Refused: a realm that is not http(s); plain http when the registry itself is https (unless
    the registry was marked insecure); and, as go-containerregistry does, a realm on a
    loopback, link-local or unspecified address when the registry is not on such an address
    itself (a hostile registry could otherwise aim our credentials at a metadata service or
    at something listening on the agent's own host). The rule is the same for an address
    written in the URL and for the addresses a name resolves to (``realm_addresses``,
    ``registry_addresses``: what the caller's resolver answered), so ``localhost`` is
    treated like ``127.0.0.2``. A realm on the registry's own host name is always allowed.
    """
    parts = urlsplit(realm)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"token realm {realm!r} is not an http(s) URL"
    registry = urlsplit(registry_base)
    if parts.scheme == "http" and registry.scheme == "https" and not insecure:
        return (
            f"token realm {parts.scheme}://{parts.netloc}{parts.path} is plain http while the "
            "registry is https; refusing to send credentials"
        )
    if parts.hostname == registry.hostname:
        return None
    realm_hosts = [parts.hostname, *realm_addresses]
    registry_kinds = {local_kind(h) for h in (registry.hostname or "", *registry_addresses)}
    local = sorted({h for h in realm_hosts if local_kind(h) not in (None, *registry_kinds)})
    if local:
        return (
            f"token realm {parts.netloc} is a local or link-local address "
            f"({', '.join(local)}) and the registry is not; refusing to send credentials"
        )
    return None


def repository_scope(repository: str, actions: str = "pull") -> str:
    return f"repository:{repository}:{actions}"


CATALOG_SCOPE = "registry:catalog:*"


def clock() -> float:
    """Monotonic seconds for token lifetimes (one place, so tests can move time)."""
    return time.monotonic()


@dataclass
class Token:
    value: str
    scopes: frozenset[str]
    expires_at: float  # monotonic clock
    lifetime: float

    def fresh(self, now: float | None = None) -> bool:
        """Still usable, with a margin so a token never expires mid-request."""
        now = clock() if now is None else now
        margin = min(30.0, self.lifetime * 0.2)
        return now < self.expires_at - margin


#: containers/image treats shorter lifetimes as 60 s; the token spec's default is 60 s too.
MIN_TOKEN_LIFETIME = 60.0


def token_from_response(body: object, scopes: list[str], now: float | None = None) -> Token:
    """Build a :class:`Token` from a realm's JSON answer (``token`` or ``access_token``)."""
    if not isinstance(body, dict):
        raise ValueError("token response is not a JSON object")
    value = body.get("token") or body.get("access_token")
    if not isinstance(value, str) or not value:
        raise ValueError("token response has neither 'token' nor 'access_token'")
    try:
        lifetime = float(body.get("expires_in") or MIN_TOKEN_LIFETIME)
    except (TypeError, ValueError):
        lifetime = MIN_TOKEN_LIFETIME
    lifetime = max(lifetime, MIN_TOKEN_LIFETIME)
    register_secrets(value)
    if isinstance(body.get("refresh_token"), str):
        register_secrets(body["refresh_token"])
    now = clock() if now is None else now
    return Token(value, frozenset(scopes), now + lifetime, lifetime)


class TokenCache:
    """Tokens per (realm, service, scope set); a token covering a wider set also serves."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str, frozenset[str]], Token] = {}

    def get(self, realm: str, service: str, scopes: list[str]) -> Token | None:
        wanted = frozenset(scopes)
        best: Token | None = None
        for (t_realm, t_service, t_scopes), token in self._tokens.items():
            if t_realm == realm and t_service == service and wanted <= t_scopes and token.fresh():
                if best is None or token.expires_at > best.expires_at:
                    best = token
        return best

    def put(self, realm: str, service: str, token: Token) -> None:
        self._tokens = {k: v for k, v in self._tokens.items() if v.fresh()}
        self._tokens[(realm, service, token.scopes)] = token

    def __len__(self) -> int:
        return len(self._tokens)


def widen_scopes(needed: list[str], challenge_scopes: list[str]) -> list[str]:
    """The union of scopes, challenge's first: some registries read only the first scope."""
    out: list[str] = []
    for scope in [*challenge_scopes, *needed]:
        if scope and scope not in out:
            out.append(scope)
    return out
