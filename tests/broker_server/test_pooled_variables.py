"""``NAME_POOL`` in the server's private rules: pooled credentials rotate from one client
callback to the next, as in snyk-broker (its configuration is read once; each request takes the
next member, every ``${NAME}`` of that request the same one). Through the real server, a
scripted client over a websocket, and a real upstream on 127.0.0.1."""

from __future__ import annotations

import base64

from shared.broker_protocol import AckReceived
from tests.broker_server.test_relay import ready_peer, wait_ready


def pooled_accept(upstream_url: str) -> dict:
    return {
        "private": [
            {
                "method": "POST",
                "path": "/api/v1/*",
                "origin": upstream_url,
                "auth": {"scheme": "bearer", "token": "${FOO}"},
            },
            {
                "method": "POST",
                "path": "/api/v2/*",
                "origin": upstream_url,
                "auth": {"scheme": "basic", "username": "${FOO}", "password": "${FOO}"},
            },
        ],
        "public": [{"method": "any", "path": "/*"}],
    }


async def callbacks(srv, backends, path: str, count: int) -> list[str]:
    """Make ``count`` callbacks to ``path``; the Authorization each carried upstream."""
    peer = await ready_peer(srv.url)
    await wait_ready(srv)
    before = len(backends.upstream.seen)
    for n in range(count):
        request = {"url": path, "method": "POST", "headers": {}, "body": b"{}", "requestId": f"{n}"}
        ack_id = await peer.send_event("request", request, want_ack=True)
        ack = await peer.wait_for(AckReceived, lambda e, i=ack_id: e.ack.ack_id == i)
        assert ack.ack.args[0]["status"] == 201
    await peer.close()
    seen = backends.upstream.seen[before:]
    return [{k.lower(): v for k, v in s["headers"].items()}["authorization"] for s in seen]


async def test_a_pooled_credential_rotates_across_callbacks(make_server, backends):
    srv = await make_server(accept=pooled_accept(backends.upstream_url), FOO_POOL="a,b,c")
    assert await callbacks(srv, backends, "/api/v1/result", 4) == [
        "Bearer a",
        "Bearer b",
        "Bearer c",
        "Bearer a",
    ]


async def test_one_callback_uses_one_pool_member_wherever_the_rule_names_it(make_server, backends):
    srv = await make_server(accept=pooled_accept(backends.upstream_url), FOO_POOL="a,b,c")
    sent = await callbacks(srv, backends, "/api/v2/result", 3)
    assert [base64.b64decode(s.removeprefix("Basic ")).decode() for s in sent] == [
        "a:a",
        "b:b",
        "c:c",
    ]
