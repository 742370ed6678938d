import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from shared.engineio import (
    OpenHandshake,
    Packet,
    PacketType,
    decode_packet,
    decode_payload,
    encode_packet,
    encode_payload,
    js_length,
)
from shared.protocol_error import ProtocolError


def test_text_packets_round_trip():
    for ptype in PacketType:
        packet = Packet(ptype, "abc")
        assert decode_packet(encode_packet(packet)) == packet


def test_ping_without_data_decodes_to_none_and_probe_keeps_data():
    assert decode_packet("2") == Packet(PacketType.PING, None)
    assert decode_packet("2probe") == Packet(PacketType.PING, "probe")
    assert decode_packet("4") == Packet(PacketType.MESSAGE, "")


def test_v4_binary_websocket_frame_is_a_message():
    assert decode_packet(b"\x00\x01") == Packet(PacketType.MESSAGE, b"\x00\x01")
    assert encode_packet(Packet(PacketType.MESSAGE, b"xy")) == b"xy"


def test_v3_binary_frame_carries_type_byte():
    assert decode_packet(b"\x04hi", eio=3) == Packet(PacketType.MESSAGE, b"hi")
    assert encode_packet(Packet(PacketType.MESSAGE, b"hi"), eio=3) == b"\x04hi"
    with pytest.raises(ProtocolError, match="type byte 9"):
        decode_packet(b"\x09", eio=3)


def test_unknown_packet_type_is_named():
    with pytest.raises(ProtocolError, match=r"unknown engine\.io packet type '9'"):
        decode_packet("9hello")
    with pytest.raises(ProtocolError, match="empty"):
        decode_packet("")


def test_v4_payload_uses_record_separator_and_base64_binary():
    packets = [
        Packet(PacketType.MESSAGE, "a"),
        Packet(PacketType.MESSAGE, b"\xff\x00"),
        Packet(PacketType.PING),
    ]
    text = encode_payload(packets)
    assert text == "4a\x1eb/wA=\x1e2"
    assert decode_payload(text) == [
        Packet(PacketType.MESSAGE, "a"),
        Packet(PacketType.MESSAGE, b"\xff\x00"),
        Packet(PacketType.PING, None),
    ]


def test_payload_accepts_already_encoded_packets():
    assert encode_payload(["4x", Packet(PacketType.NOOP)]) == "4x\x1e6"


def test_v4_payload_invalid_base64_is_named():
    with pytest.raises(ProtocolError, match="invalid base64"):
        decode_payload("4a\x1eb!!!")


def test_v3_payload_length_prefixed_in_utf16_units():
    packets = [Packet(PacketType.MESSAGE, "héllo 😀"), Packet(PacketType.PONG, "probe")]
    text = encode_payload(packets, eio=3)
    # "4héllo 😀" is 8 code points but 9 UTF-16 units
    assert text.startswith("9:4héllo 😀")
    assert text.endswith("6:3probe")
    assert decode_payload(text, eio=3) == packets


def test_v3_payload_binary_base64_has_type_char():
    text = encode_payload([Packet(PacketType.MESSAGE, b"\x01\x02")], eio=3)
    assert text == "6:b4AQI="
    assert decode_payload(text, eio=3) == [Packet(PacketType.MESSAGE, b"\x01\x02")]


def test_v3_length_larger_than_body_is_named():
    with pytest.raises(ProtocolError, match="larger than the remaining body"):
        decode_payload("20:4abc", eio=3)


def test_v3_bad_length_prefix():
    with pytest.raises(ProtocolError, match="bad length prefix"):
        decode_payload("x:4abc", eio=3)
    with pytest.raises(ProtocolError, match="bad length prefix"):
        decode_payload("4abc", eio=3)


def test_js_length_counts_surrogate_pairs():
    assert js_length("a😀") == 3


def test_open_handshake_round_trip_and_wire_shape():
    hs = OpenHandshake(
        sid="abc",
        upgrades=["websocket"],
        pingInterval=25000,
        pingTimeout=20000,
        maxPayload=22020096,
    )
    assert hs.to_json() == (
        '{"sid":"abc","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":22020096}'
    )
    assert OpenHandshake.from_json(hs.to_json()) == hs


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{bad", "not JSON"),
        ("[]", "not a JSON object"),
        ('{"upgrades":[]}', "no sid"),
        ('{"sid":"a","pingInterval":"x"}', "pingInterval"),
        ('{"sid":"a","upgrades":"websocket"}', "upgrades"),
    ],
)
def test_open_handshake_malformed(text, message):
    with pytest.raises(ProtocolError, match=message):
        OpenHandshake.from_json(text)


def test_v3_empty_items_are_skipped_like_engineio():
    assert decode_payload("0:2:4a", eio=3) == [Packet(PacketType.MESSAGE, "a")]
    with pytest.raises(ProtocolError, match="no packet"):
        decode_payload("0:", eio=3)


def test_packet_accepts_int_type():
    assert Packet(4, "x") == Packet(PacketType.MESSAGE, "x")
    with pytest.raises(ProtocolError, match="unknown engine"):
        Packet(9)


# --- cross-checks against the JavaScript parsers the real snyk-broker runs -------------------

NODE_MODULES = Path(__file__).resolve().parents[2] / ".cache" / "snyk-broker" / "node_modules"


def node(script: str) -> Any:
    """Run ``script`` with node (modules of the snyk-broker install); its stdout is JSON."""
    if shutil.which("node") is None or not (NODE_MODULES / "engine.io").is_dir():
        pytest.skip("node or the snyk-broker npm install (engine.io) is not available")
    result = subprocess.run(
        ["node", "-e", script], capture_output=True, text=True, timeout=30, cwd=NODE_MODULES
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.interop
def test_v4_payload_matches_engineio_parser():
    theirs = node(
        r"""
        const p = require('./engine.io-parser');
        p.encodePayload([{type: 'message', data: 'a'}, {type: 'message', data: Buffer.from([255, 0])},
                         {type: 'ping'}, {type: 'message', data: 'h\u00e9 \ud83d\ude00'}],
                        (s) => console.log(JSON.stringify(s)));
        """
    )
    ours = encode_payload(
        [
            Packet(PacketType.MESSAGE, "a"),
            Packet(PacketType.MESSAGE, b"\xff\x00"),
            Packet(PacketType.PING),
            Packet(PacketType.MESSAGE, "hé 😀"),
        ]
    )
    assert ours == theirs
    decoded = node(
        "const p = require('./engine.io-parser');"
        f"console.log(JSON.stringify(p.decodePayload({json.dumps(ours)}, 'nodebuffer')"
        ".map(x => [x.type, Buffer.isBuffer(x.data) ? Array.from(x.data) : x.data])));"
    )
    assert decoded == [
        ["message", "a"],
        ["message", [255, 0]],
        ["ping", None],
        ["message", "hé 😀"],
    ]


@pytest.mark.interop
def test_v3_payload_matches_engineio_parser_v3():
    theirs = node(
        r"""
        const p = require('./engine.io/build/parser-v3');
        p.encodePayload([{type: 'message', data: 'h\u00e9llo \ud83d\ude00'}, {type: 'pong', data: 'probe'},
                         {type: 'message', data: Buffer.from([1, 2])}], false,
                        (s) => console.log(JSON.stringify(s)));
        """
    )
    packets = [
        Packet(PacketType.MESSAGE, "héllo 😀"),
        Packet(PacketType.PONG, "probe"),
        Packet(PacketType.MESSAGE, b"\x01\x02"),
    ]
    assert encode_payload(packets, eio=3) == theirs
    assert decode_payload(theirs, eio=3) == packets
