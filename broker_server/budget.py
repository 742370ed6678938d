"""Bytes in flight: what the server holds of its peers' messages, bounded three ways.

Every byte a peer makes the server hold (a websocket message from its header until it has been
handled, a polling POST, a caller's body, a callback on its way upstream) is charged to an
:class:`Account` first: one per client socket (with the per-connection limit) or per caller's
request (none). The account's token and the whole server have limits too. A charge that does not
fit is refused, naming the limit, and nothing is held; so one token's load cannot take the memory
that the other tokens' traffic needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: "closed": the socket the bytes would be charged to has gone (nothing could give them back)
Scope = Literal["connection", "token", "server", "closed"]


@dataclass(frozen=True, slots=True)
class Refusal:
    scope: Scope
    limit: int

    @property
    def message(self) -> str:
        # short: it also travels as a websocket close reason (at most 123 bytes)
        if self.scope == "closed":
            return "the socket has closed"
        return f"server busy: bytes in flight over the per-{self.scope} limit of {self.limit}"

    @property
    def http_status(self) -> int:
        """429 when the peer's own token or connection is over its share, 503 when the server is."""
        return {"server": 503, "closed": 410}.get(self.scope, 429)


class OverBudget(Exception):
    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal


class ByteBudget:
    def __init__(self, *, server: int, token: int, connection: int) -> None:
        self.server_limit = server
        self.token_limit = token
        self.connection_limit = connection
        self.total = 0
        self._by_token: dict[str, int] = {}

    def account(self, token: str, *, connection: bool = True) -> Account:
        """A new account for ``token``; ``connection``: a socket (per-connection limit applies)."""
        return Account(self, token, self.connection_limit if connection else None)

    def held_by(self, token: str) -> int:
        return self._by_token.get(token, 0)

    def _charge(self, token: str, size: int) -> Refusal | None:
        held = self._by_token.get(token, 0)
        if held + size > self.token_limit:
            return Refusal("token", self.token_limit)
        if self.total + size > self.server_limit:
            return Refusal("server", self.server_limit)
        self._by_token[token] = held + size
        self.total += size
        return None

    def _credit(self, token: str, size: int) -> None:
        left = self._by_token.get(token, 0) - size
        if left > 0:
            self._by_token[token] = left
        else:
            self._by_token.pop(token, None)
        self.total -= size


class Account:
    __slots__ = ("budget", "closed", "held", "limit", "token")

    def __init__(self, budget: ByteBudget, token: str, limit: int | None) -> None:
        self.budget = budget
        self.token = token
        self.limit = limit
        self.held = 0
        self.closed = False

    def try_take(self, size: int) -> Refusal | None:
        """Charge ``size`` bytes, or say which limit it would break (then nothing is charged)."""
        if size <= 0:
            return None
        if self.closed:
            # nobody would give it back: a closed socket holds nothing more
            return Refusal("closed", 0)
        if self.limit is not None and self.held + size > self.limit:
            return Refusal("connection", self.limit)
        refusal = self.budget._charge(self.token, size)
        if refusal is None:
            self.held += size
        return refusal

    def take(self, size: int) -> None:
        refusal = self.try_take(size)
        if refusal is not None:
            raise OverBudget(refusal)

    def give(self, size: int) -> None:
        size = min(size, self.held)
        if size > 0:
            self.held -= size
            self.budget._credit(self.token, size)

    def close(self) -> None:
        """Give back everything still held (the socket or request ended); take no more."""
        self.give(self.held)
        self.closed = True
