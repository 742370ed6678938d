"""Read-only endpoints: connection status, health, metrics (shapes as snyk-broker's server)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

from aiohttp import web

from shared.redaction import hash_token, mask_token
from shared.version import package_version

if TYPE_CHECKING:
    from broker_server.client_socket import ClientSocket
    from broker_server.metrics import ServerMetrics
    from broker_server.tokens import TokenRegistry


class ConnectedClients(Protocol):
    """The identified client sockets of each token (:class:`broker_server.pool.ConnectionPool`)."""

    def sessions(self, token: str) -> list[ClientSocket]: ...

    def tokens(self) -> Iterable[tuple[str, list[ClientSocket]]]: ...


class StatusEndpoints:
    """The read-only handlers; they see the admitted tokens, the connected clients and the
    metrics, nothing else of the server."""

    def __init__(
        self, *, tokens: TokenRegistry, clients: ConnectedClients, metrics: ServerMetrics
    ) -> None:
        self.tokens = tokens
        self.clients = clients
        self._metrics = metrics  # ``metrics`` is the handler of /metrics

    async def connection_status(self, request: web.Request) -> web.Response:
        token = self.tokens.lookup(request.match_info["token"])
        sessions = self.clients.sessions(token) if token is not None else []
        if not sessions:
            return web.json_response(
                {"ok": False}, status=404, headers={"x-broker-failure": "no-connection"}
            )
        clients = []
        for session in sessions:
            metadata = session.identity.metadata if session.identity is not None else None
            clients.append(
                {
                    "version": metadata.version if metadata else None,
                    "filters": metadata.filters if metadata else None,
                    "role": session.role,
                    "capabilities": session.capabilities,
                    "transport": session.transport,
                }
            )
        return web.json_response({"ok": True, "clients": clients})

    async def connections_status(self, request: web.Request) -> web.Response:
        result = []
        for token, sessions in self.clients.tokens():
            result.append(
                {
                    "identifier": mask_token(token),
                    "hashedIdentifier": hash_token(token),
                    "versions": sorted(
                        {
                            s.identity.metadata.version or ""
                            for s in sessions
                            if s.identity is not None
                        }
                    ),
                    "brokerClientIds": sorted(
                        {
                            s.identity.metadata.client_id or ""
                            for s in sessions
                            if s.identity is not None
                        }
                    ),
                }
            )
        return web.json_response(result)

    async def healthcheck(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "version": package_version()})

    async def metrics(self, request: web.Request) -> web.Response:
        body = self._metrics.render()
        return web.Response(body=body, headers={"Content-Type": self._metrics.content_type})
