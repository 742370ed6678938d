"""ClientSocket on its own: built from SocketHooks (settings, metrics, tokens, four callbacks),
no BrokerServer, fed the packets a client writes, answering through its outbox."""

from __future__ import annotations

import json
from typing import Any

from broker_server.client_socket import ClientSocket
from shared import broker_protocol as bp
from tests.broker_server.lone_socket import TOKEN, lone_socket


class Recorder:
    def __init__(self) -> None:
        self.forwarded: list[Any] = []
        self.identified: list[ClientSocket] = []
        self.closed: list[ClientSocket] = []

    async def forward(self, token: str, request: Any) -> dict[str, Any]:
        self.forwarded.append((token, request))
        return {"status": 201, "headers": {"x-from": "upstream"}, "body": "made"}


def make_socket(recorder: Recorder) -> ClientSocket:
    return lone_socket(
        forward=recorder.forward,
        identified=recorder.identified.append,
        closed=recorder.closed.append,
        role_hint="primary",
    )


def acks(client: bp.BrokerConnection, packets: list[str]) -> list[list[Any]]:
    return [
        event.ack.args
        for packet in packets
        for event in client.receive(packet)
        if isinstance(event, bp.AckReceived)
    ]


async def test_a_socket_identifies_and_forwards_a_callback_through_its_hooks_alone() -> None:
    recorder = Recorder()
    socket = make_socket(recorder)
    client = bp.BrokerConnection("client")
    identify, _ = client.send_event(
        "identify",
        {"token": TOKEN, "metadata": {"version": "4.200.0", "capabilities": ["post-streams"]}},
    )
    await socket.handle(socket.conn.receive(identify))
    assert recorder.identified == [socket] and socket.ready
    request = {"url": "/api/x", "method": "POST", "headers": {}, "body": "abc"}
    event, ack_id = client.send_event("request", request, want_ack=True)
    await socket.handle(socket.conn.receive(event))
    while socket._tasks:  # the upstream call runs as the socket's own task
        await next(iter(socket._tasks))
    assert recorder.forwarded == [(TOKEN, request)]
    [answer] = acks(client, socket.take_outbox())
    assert answer == [{"status": 201, "headers": {"x-from": "upstream"}, "body": "made"}]
    assert ack_id == 1
    await socket.close("done")
    assert recorder.closed == [socket] and socket.closed


async def test_an_unsupported_event_gets_a_501_reply_in_the_servers_field_order() -> None:
    socket = make_socket(Recorder())
    client = bp.BrokerConnection("client")
    event, _ = client.send_event("nonsense", {}, want_ack=True)
    await socket.handle(socket.conn.receive(event))
    packets = socket.take_outbox()
    assert acks(client, packets) == [
        [{"status": 501, "headers": {}, "body": '{"message":"unsupported event nonsense"}'}]
    ]
    # members in the order snyk-broker's server writes them
    assert '"status":501,"headers":{},"body":' in packets[0]


async def test_an_unsupported_events_name_cannot_break_the_json_of_its_501_reply() -> None:
    socket = make_socket(Recorder())
    client = bp.BrokerConnection("client")
    event, _ = client.send_event('x","status":"200', {}, want_ack=True)
    await socket.handle(socket.conn.receive(event))
    [[answer]] = acks(client, socket.take_outbox())
    assert answer["status"] == 501
    assert json.loads(answer["body"]) == {"message": 'unsupported event x","status":"200'}
