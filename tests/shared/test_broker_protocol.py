import json

import pytest

from shared import ejson
from shared.broker_protocol import (
    AckReceived,
    BrokerConnection,
    ClientIdentified,
    Closed,
    DataReceived,
    EnginePing,
    EnginePong,
    EventReceived,
    Noop,
    Opened,
    PrimusIdQuery,
    PrimusPing,
    PrimusPong,
    ProtocolFault,
    ServerClose,
    ServerIdentified,
    Upgraded,
    version_below,
)
from shared.emitter import Ack, Event
from shared.engineio import OpenHandshake, encode_payload
from shared.protocol_error import ProtocolError


def message(value) -> str:
    return "4" + ejson.dumps(value)


def test_client_sees_open_and_answers_engine_ping():
    conn = BrokerConnection("client")
    hs = OpenHandshake(sid="s1", upgrades=[])
    (event,) = conn.receive("0" + hs.to_json())
    assert event == Opened(hs)
    (ping,) = conn.receive("2")
    assert ping == EnginePing(None)
    assert conn.pong_for(ping) == "3"


def test_upgrade_probe_on_server():
    conn = BrokerConnection("server")
    (probe,) = conn.receive("2probe")
    assert conn.pong_for(probe) == "3probe"
    assert conn.receive("5") == [Upgraded()]
    assert conn.receive("6") == [Noop()]


def test_server_open_packet():
    conn = BrokerConnection("server")
    text = conn.open(OpenHandshake(sid="abc"))
    assert text.startswith('0{"sid":"abc"')
    assert conn.engine_ping() == "2"
    assert conn.receive("3") == [EnginePong(None)]


def test_primus_ping_pong_both_ways():
    server = BrokerConnection("server")
    (ping,) = server.receive('4"primus::ping::1795565400866"')
    assert ping == PrimusPing("1795565400866")
    assert server.pong_for(ping) == '4"primus::pong::1795565400866"'
    client = BrokerConnection("client")
    assert client.primus_ping(42) == '4"primus::ping::42"'
    assert client.receive('4"primus::pong::42"') == [PrimusPong("42")]


def test_server_close_is_reported_and_remembered():
    server = BrokerConnection("server")
    client = BrokerConnection("client")
    assert client.receive(server.server_close()) == [ServerClose()]
    assert client.server_closed


def test_client_must_not_send_server_close():
    (fault,) = BrokerConnection("server").receive('4"primus::server::close"')
    assert isinstance(fault, ProtocolFault)


def test_primus_id_query_and_plain_data():
    server = BrokerConnection("server")
    assert server.receive('4"primus::id::"') == [PrimusIdQuery("")]
    assert server.receive('4"hello"') == [DataReceived("hello")]
    assert server.receive('4{"a":1}') == [DataReceived({"a": 1})]


def test_identify_both_ways():
    server = BrokerConnection("server")
    client = BrokerConnection("client")
    data, ack = server.send_event("identify", {"capabilities": ["receive-post-streams"]})
    assert ack is None
    assert json.loads(data[1:]) == {
        "type": 0,
        "data": ["identify", {"capabilities": ["receive-post-streams"]}],
    }
    assert client.receive(data) == [ServerIdentified(["receive-post-streams"])]
    assert client.server_capabilities == ["receive-post-streams"]

    identify = {
        "token": "Tok",
        "metadata": {
            "capabilities": ["post-streams"],
            "clientId": "c1",
            "version": "5.22.14",
            "role": "primary",
            "filters": {"public": [], "private": []},
        },
    }
    data, _ = client.send_event("identify", identify)
    (event,) = server.receive(data)
    assert isinstance(event, ClientIdentified)
    assert event.token == "Tok"
    assert event.metadata.version == "5.22.14"
    assert event.metadata.role == "primary"
    assert event.metadata.client_id == "c1"
    assert event.metadata.ready
    assert server.identity == event


def test_identify_without_version_is_not_ready():
    server = BrokerConnection("server")
    (event,) = server.receive(
        message({"type": 0, "data": ["identify", {"token": "t", "metadata": {}}]})
    )
    assert isinstance(event, ClientIdentified) and not event.metadata.ready


def test_legacy_identify_with_bare_token():
    server = BrokerConnection("server")
    (event,) = server.receive(message({"type": 0, "data": ["identify", "tok"]}))
    assert event == ClientIdentified("tok", event.metadata, legacy=True)


@pytest.mark.parametrize(
    ("arg", "fault"),
    [
        ({"metadata": {}}, "identify without token"),
        ({"token": ""}, "identify without token"),
        (5, "identify argument is not an object"),
        ({"token": "t", "metadata": []}, "metadata is not an object"),
        ({"token": "t", "metadata": {"capabilities": "x"}}, "capabilities is not a list"),
        ({"token": "t", "metadata": {"version": 5}}, "version is not a string"),
    ],
)
def test_bad_identify_is_a_fault(arg, fault):
    (event,) = BrokerConnection("server").receive(message({"type": 0, "data": ["identify", arg]}))
    assert isinstance(event, ProtocolFault)
    assert fault in event.message


def test_request_with_ack_round_trip():
    server = BrokerConnection("server")
    client = BrokerConnection("client")
    request = {"url": "/x", "method": "GET", "headers": {}, "streamingID": "", "body": b"\x00"}
    data, ack_id = server.send_event("request", request, want_ack=True)
    assert ack_id == 1
    assert server.awaiting_acks == {1}
    (event,) = client.receive(data)
    assert event == EventReceived(Event("request", [request], 1))
    reply = client.send_ack(1, {"status": 200, "body": "ok"})
    assert server.receive(reply) == [AckReceived(Ack(1, [{"status": 200, "body": "ok"}]))]
    assert server.awaiting_acks == frozenset()
    # the second ack for the same id is a fault: it is no longer awaited
    (fault,) = server.receive(reply)
    assert fault == ProtocolFault("ack for unknown id 1")


def test_ack_ids_count_from_one_per_side():
    conn = BrokerConnection("client")
    ids = [conn.send_event("request", {}, want_ack=True)[1] for _ in range(3)]
    assert ids == [1, 2, 3]


def test_ack_for_unknown_id():
    (event,) = BrokerConnection("server").receive(message({"type": 1, "id": 9, "data": []}))
    assert event == ProtocolFault("ack for unknown id 9")


def test_forgotten_ack_is_a_fault_when_late():
    conn = BrokerConnection("server")
    _, ack_id = conn.send_event("request", {}, want_ack=True)
    assert ack_id is not None
    conn.forget_ack(ack_id)
    (event,) = conn.receive(message({"type": 1, "id": ack_id, "data": []}))
    assert isinstance(event, ProtocolFault)


def test_send_ack_for_id_not_owed_raises():
    with pytest.raises(ProtocolError, match="no event with ack id 4"):
        BrokerConnection("client").send_ack(4)


@pytest.mark.parametrize(
    ("data", "fault"),
    [
        ("", "empty engine.io packet"),
        ("9", "unknown engine.io packet type '9'"),
        ("4", "empty engine.io MESSAGE"),
        ("4{bad json", "not valid JSON"),
        ('4{"type":0,"data":[]}', "no event name"),
        ('4{"type":0,"data":["request",{"body":{"$binary":"@@@"}}]}', "not valid base64"),
        ("0{}", "a client must not send an engine.io OPEN packet"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_garbage_becomes_fault_event_not_exception(data, fault):
    conn = BrokerConnection("server")
    events = conn.receive(data)
    assert len(events) == 1
    assert isinstance(events[0], ProtocolFault)
    assert fault in events[0].message
    # the connection keeps working afterwards
    assert conn.receive('4"primus::ping::1"') == [PrimusPing("1")]


def test_client_faults():
    client = BrokerConnection("client")
    (bad_open,) = client.receive("0{nope")
    assert isinstance(bad_open, ProtocolFault) and "not JSON" in bad_open.message
    (bad_upgrade,) = client.receive("5")
    assert isinstance(bad_upgrade, ProtocolFault)


def test_oversized_message_is_a_fault():
    conn = BrokerConnection("server", max_message_bytes=100)
    (event,) = conn.receive("4" + json.dumps("x" * 200))
    assert isinstance(event, ProtocolFault) and "exceeds the limit of 100" in event.message


def test_close_packet():
    conn = BrokerConnection("server")
    assert conn.receive("1") == [Closed("peer sent engine.io CLOSE")]
    assert conn.closed


def test_polling_payload_v4_and_v3():
    for eio in (4, 3):
        conn = BrokerConnection("server", eio=eio)
        text = encode_payload(['4"primus::ping::5"', "2"], eio=eio)
        assert conn.receive_payload(text) == [PrimusPing("5"), EnginePing(None)]


def test_polling_payload_fault():
    conn = BrokerConnection("server", eio=3)
    (event,) = conn.receive_payload("99:4abc")
    assert isinstance(event, ProtocolFault) and "larger than" in event.message


def test_duplicate_owed_ack_id_is_a_fault():
    conn = BrokerConnection("server")
    packet = message({"type": 0, "id": 1, "data": ["request", {}]})
    assert isinstance(conn.receive(packet)[0], EventReceived)
    assert isinstance(conn.receive(packet)[0], ProtocolFault)


def test_version_comparison():
    assert version_below("4.99.0", "4.100.0")
    assert not version_below("5.22.14", "4.100.0")
    assert not version_below("local", "4.100.0")
    assert version_below("4.100.0-beta.1", "4.100.0")
    with pytest.raises(ProtocolError, match="not a semantic version"):
        version_below("banana", "4.100.0")
