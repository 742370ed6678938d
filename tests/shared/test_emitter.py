import pytest

from shared.emitter import Ack, Event, decode, encode_ack, encode_event
from shared.protocol_error import ProtocolError


def test_event_without_ack():
    assert encode_event(Event("request", [{"url": "/x"}])) == {
        "type": 0,
        "data": ["request", {"url": "/x"}],
    }


def test_event_with_ack_and_ack():
    assert encode_event(Event("request", [1], 3)) == {"type": 0, "data": ["request", 1], "id": 3}
    assert encode_ack(Ack(3, [{"status": 200}])) == {"type": 1, "id": 3, "data": [{"status": 200}]}


def test_decode_round_trip():
    for value in (Event("identify", [{"a": 1}]), Event("request", [], 7), Ack(7, ["x"])):
        encoded = encode_event(value) if isinstance(value, Event) else encode_ack(value)
        assert decode(encoded) == value


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ([], "not an object"),
        ({"type": 5, "data": []}, "unknown emitter packet type 5"),
        ({"type": 0, "data": []}, "no event name"),
        ({"type": 0, "data": [3]}, "no event name"),
        ({"type": 0, "data": "x"}, "data is not an array"),
        ({"type": 1, "data": []}, "invalid ack id None"),
        ({"type": 1, "id": "one", "data": []}, "invalid ack id 'one'"),
        ({"type": 0, "id": -1, "data": ["x"]}, "invalid ack id -1"),
    ],
)
def test_malformed_packets(obj, message):
    with pytest.raises(ProtocolError, match=message):
        decode(obj)
