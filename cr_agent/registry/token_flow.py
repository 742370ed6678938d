"""Which ``Authorization`` a request to the registry carries, and the challenges that decide it.

A registry answers 401 with ``WWW-Authenticate``: Basic (send the username/password) or Bearer
(fetch a token from the realm it names, for the scopes it asks for). Tokens are cached per
realm, service and scope set and refreshed before they expire; a realm the registry names is
checked first (:func:`~cr_agent.registry.auth.realm_refusal`) so an untrusted registry cannot
send the credentials elsewhere. Credentials only ever go to the registry's own origin.
"""

from __future__ import annotations

import asyncio
import socket
from urllib.parse import urlencode, urlsplit

from cr_agent.registry import json_depth
from cr_agent.registry.auth import (
    Challenge,
    RegistryAuth,
    Token,
    TokenCache,
    parse_www_authenticate,
    realm_refusal,
    token_from_response,
    widen_scopes,
)
from cr_agent.registry.errors import AuthenticationError, PermissionDenied, RegistryError
from cr_agent.registry.exchange import Exchange, display, read_body
from cr_agent.registry.pagination import same_origin


class TokenFlow:
    """The credentials of one registry client and the challenge it last met."""

    def __init__(
        self,
        exchange: Exchange,
        auth: RegistryAuth,
        base_url: str,
        *,
        insecure: bool,
        timeout: float,
    ) -> None:
        self.exchange = exchange
        self.auth = auth
        self.base_url = base_url
        self.insecure = insecure
        self.timeout = timeout
        #: the challenge that decides what the next request carries (None: nothing yet)
        self.challenge: Challenge | None = None
        self._tokens = TokenCache()
        self._lock = asyncio.Lock()

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).netloc

    async def header(self, url: str, scope: str | None) -> dict[str, str]:
        """The ``Authorization`` header for a request to ``url`` (none off the registry's origin)."""
        if not same_origin(url, self.base_url):
            return {}
        if self.auth.bearer_token:
            return {"Authorization": f"Bearer {self.auth.bearer_token}"}
        challenge = self.challenge
        if challenge is None:
            return {}
        if challenge.scheme == "basic":
            header = self.auth.basic_header()
            return {"Authorization": header} if header else {}
        if challenge.scheme == "bearer" and challenge.realm:
            scopes = [scope] if scope else []
            token = self._tokens.get(challenge.realm, challenge.service or "", scopes)
            if token is None:
                token = await self.fetch_token(challenge, scopes)
            return {"Authorization": f"Bearer {token.value}"}
        return {}

    async def fetch_token(self, challenge: Challenge, scopes: list[str]) -> Token:
        realm = challenge.realm or ""
        service = challenge.service or ""
        async with self._lock:
            cached = self._tokens.get(realm, service, scopes)
            if cached is not None:
                return cached
            refusal = await self._realm_refusal(realm)
            if refusal is not None:
                raise AuthenticationError(refusal, "token")
            resp = None
            if self.auth.identity_token:
                form = {
                    "grant_type": "refresh_token",
                    "refresh_token": self.auth.identity_token,
                    "service": service,
                    "client_id": "crbroker",
                }
                if scopes:
                    form["scope"] = " ".join(scopes)
                resp = await self.exchange.request(
                    "POST",
                    realm,
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                    data=urlencode(form).encode(),
                    step="token",
                )
                if resp.status in (404, 405):
                    resp.release()
                    resp = None  # realm without OAuth2: fall back to GET
            if resp is None:
                query: list[tuple[str, str]] = [("service", service)] if service else []
                query += [("scope", s) for s in scopes]
                url = realm + ("&" if "?" in realm else "?") + urlencode(query) if query else realm
                headers = {}
                basic = self.auth.basic_header()
                if basic:
                    headers["Authorization"] = basic
                resp = await self.exchange.request("GET", url, headers=headers, step="token")
            try:
                if resp.status in (401, 403):
                    raise AuthenticationError(
                        f"token realm {display(realm)} refused the credentials (HTTP {resp.status})"
                        if not self.auth.anonymous
                        else f"token realm {display(realm)} refused anonymous access (HTTP {resp.status})",
                        "token",
                        resp.status,
                    )
                if resp.status != 200:
                    raise RegistryError(
                        f"token realm {display(realm)} answered HTTP {resp.status}",
                        "token",
                        resp.status,
                    )
                body = await read_body(resp, "token", 1 << 20)
            finally:
                resp.release()
            try:
                token = token_from_response(json_depth.loads(body), scopes)
            except ValueError as exc:
                raise AuthenticationError(f"token realm {display(realm)}: {exc}", "token") from None
            self._tokens.put(realm, service, token)
            return token

    async def _realm_refusal(self, realm: str) -> str | None:
        """:func:`realm_refusal` with both host names resolved, as the connection will be."""
        realm_host = urlsplit(realm).hostname or ""
        registry_host = urlsplit(self.base_url).hostname or ""
        if realm_host == registry_host:
            return realm_refusal(realm, self.base_url, insecure=self.insecure)
        return realm_refusal(
            realm,
            self.base_url,
            insecure=self.insecure,
            realm_addresses=await self._addresses(realm_host),
            registry_addresses=await self._addresses(registry_host),
        )

    async def _addresses(self, host: str) -> list[str]:
        """What the resolver answers for ``host`` (nothing when it cannot: the request that
        follows fails on its own, or goes through a proxy that resolves for us)."""
        try:
            async with asyncio.timeout(self.timeout):
                infos = await asyncio.get_running_loop().getaddrinfo(
                    host, None, type=socket.SOCK_STREAM
                )
        except (OSError, TimeoutError, UnicodeError):
            return []
        return [str(info[4][0]) for info in infos]

    async def on_challenge(self, header: str, scope: str | None, step: str, count: int) -> None:
        """A 401 with ``header``: get what the next try needs, or raise when it cannot help."""
        challenges = parse_www_authenticate(header)
        bearer = next((c for c in challenges if c.scheme == "bearer" and c.realm), None)
        basic = next((c for c in challenges if c.scheme == "basic"), None)
        if bearer is not None and not self.auth.bearer_token:
            needed = [scope] if scope else []
            scopes = widen_scopes(needed, bearer.scopes)
            previous = self.challenge
            self.challenge = bearer
            cached = self._tokens.get(bearer.realm or "", bearer.service or "", scopes)
            if count > 1 or (cached is not None and previous == bearer):
                # a token for exactly these scopes was refused: the credentials lack access
                self.deny(step, scope, bearer.error)
            await self.fetch_token(bearer, scopes)
            return
        if basic is not None and not self.auth.bearer_token:
            if self.auth.basic_header() is None:
                raise AuthenticationError(
                    f"{step}: registry {self.host} requires credentials and none were given",
                    step,
                    401,
                )
            if count > 1 or (self.challenge is not None and self.challenge.scheme == "basic"):
                raise AuthenticationError(
                    f"{step}: registry {self.host} refused the username/password", step, 401
                )
            self.challenge = basic
            return
        raise AuthenticationError(
            f"{step}: registry {self.host} refused the credentials (HTTP 401)", step, 401
        )

    def deny(self, step: str, scope: str | None, error: str | None) -> None:
        """Raise the error for a refusal that credentials, not a new token, would have to fix."""
        if self.auth.anonymous:
            raise AuthenticationError(
                f"{step}: registry {self.host} requires credentials for {scope or 'this request'}",
                step,
                401,
            )
        if step == "catalog":
            raise PermissionDenied(
                f"catalog: listing repositories on {self.host} is not permitted for these credentials",
                step,
                401,
            )
        raise PermissionDenied(
            f"{step}: the credentials have no access to {scope or 'this resource'} on {self.host}"
            + (f" ({error})" if error else ""),
            step,
            401,
        )
