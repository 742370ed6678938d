"""Which client sockets serve which token (snyk-broker's ``Map<token, ClientSocket[]>``).

On identify a socket is *prepended* (newest first), or replaces the entry with the same
clientId and role. Requests go to the first entry that is ready (has version and capabilities).
Sockets that opened but have not identified yet are "handshaking"; a token whose last socket
went away recently is in its reconnect grace window. Both make ``/broker`` answer 503 rather
than 404, so callers retry instead of giving up.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from broker_server.client_socket import ClientSocket

TokenState = Literal["ready", "handshaking", "grace", "not-ready", "none"]


class ConnectionPool:
    def __init__(self, grace_seconds: float) -> None:
        self.grace_seconds = grace_seconds
        self._identified: dict[str, list[ClientSocket]] = {}
        self._handshaking: dict[str, set[ClientSocket]] = {}
        self._last_disconnect: dict[str, float] = {}

    def add_handshaking(self, session: ClientSocket) -> None:
        self._handshaking.setdefault(session.token, set()).add(session)

    def register(self, session: ClientSocket) -> None:
        """The socket identified: newest first, replacing an entry with the same clientId + role."""
        self._discard_handshaking(session)
        entries = self._identified.setdefault(session.token, [])
        if session in entries:
            entries.remove(session)
        key = session.client_key
        if key is not None:
            entries[:] = [e for e in entries if e.client_key != key]
        entries.insert(0, session)

    def remove(self, session: ClientSocket) -> None:
        self._discard_handshaking(session)
        entries = self._identified.get(session.token)
        if entries and session in entries:
            entries.remove(session)
            self._last_disconnect[session.token] = time.monotonic()
            if not entries:
                del self._identified[session.token]

    def _discard_handshaking(self, session: ClientSocket) -> None:
        pending = self._handshaking.get(session.token)
        if pending is not None:
            pending.discard(session)
            if not pending:
                del self._handshaking[session.token]

    def select(self, token: str) -> ClientSocket | None:
        """The newest fully identified open socket of ``token``."""
        for session in self._identified.get(token, ()):
            if session.ready and not session.closed:
                return session
        return None

    def state(self, token: str) -> TokenState:
        if self.select(token) is not None:
            return "ready"
        if self._handshaking.get(token):
            return "handshaking"
        last = self._last_disconnect.get(token)
        if last is not None and time.monotonic() - last < self.grace_seconds:
            return "grace"
        if self._identified.get(token):
            return "not-ready"
        return "none"

    def sessions(self, token: str) -> list[ClientSocket]:
        return list(self._identified.get(token, ()))

    def tokens(self) -> Iterator[tuple[str, list[ClientSocket]]]:
        for token, entries in self._identified.items():
            yield token, list(entries)

    def count(self) -> int:
        return sum(len(v) for v in self._identified.values())
