import json
import struct

import pytest

from shared.protocol_error import ProtocolError
from shared.response_stream import CONTENT_TYPE, BodyChunk, Head, ResponseStreamDecoder, encode_head


def test_head_layout_is_little_endian_length_and_json():
    raw = encode_head(200, {"content-type": "text/plain"})
    (length,) = struct.unpack("<I", raw[:4])
    assert raw[:4] == bytes([length, 0, 0, 0])
    assert json.loads(raw[4:]) == {"status": 200, "headers": {"content-type": "text/plain"}}
    assert len(raw) == 4 + length
    assert CONTENT_TYPE == "application/vnd.broker.stream+octet-stream"


def test_error_type_included():
    raw = encode_head(502, {}, "DOWNSTREAM_UNREACHABLE")
    assert json.loads(raw[4:])["errorType"] == "DOWNSTREAM_UNREACHABLE"


def test_decoder_byte_by_byte():
    frame = encode_head(201, {"a": "b"}, "X") + b"hello"
    decoder = ResponseStreamDecoder()
    events = []
    for i in range(len(frame)):
        events.extend(decoder.feed(frame[i : i + 1]))
    decoder.close()
    assert events[0] == Head(201, {"a": "b"}, "X")
    assert b"".join(e.data for e in events[1:] if isinstance(e, BodyChunk)) == b"hello"
    assert decoder.body_bytes == 5


def test_decoder_head_and_body_in_one_chunk():
    decoder = ResponseStreamDecoder()
    events = decoder.feed(encode_head(200, {}) + b"abc")
    assert events == [Head(200, {}, None), BodyChunk(b"abc")]
    assert decoder.feed(b"def") == [BodyChunk(b"def")]


def test_length_prefix_larger_than_body():
    decoder = ResponseStreamDecoder()
    decoder.feed(struct.pack("<I", 500) + b'{"status":200}')
    with pytest.raises(ProtocolError, match="head length 500 is larger than the 14 bytes received"):
        decoder.close()


def test_truncated_before_length():
    decoder = ResponseStreamDecoder()
    decoder.feed(b"\x01\x00")
    with pytest.raises(ProtocolError, match="before the 4-byte head length"):
        decoder.close()


def test_oversized_head_length_rejected_early():
    decoder = ResponseStreamDecoder(max_head=1000)
    with pytest.raises(ProtocolError, match="exceeds the limit"):
        decoder.feed(struct.pack("<I", 0xFFFFFFFF))


@pytest.mark.parametrize(
    ("head", "message"),
    [
        (b"{bad json", "not valid UTF-8 JSON"),
        (b"[1]", "not a JSON object"),
        (b'{"status":"200"}', "invalid status"),
        (b'{"status":99}', "invalid status"),
        (b'{"status":200,"headers":[]}', "headers is not an object"),
        (b'{"status":200,"errorType":1}', "errorType is not a string"),
    ],
)
def test_bad_head(head, message):
    decoder = ResponseStreamDecoder()
    with pytest.raises(ProtocolError, match=message):
        decoder.feed(struct.pack("<I", len(head)) + head)
