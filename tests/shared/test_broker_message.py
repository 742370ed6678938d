"""shared.broker_message: the request event and its ack reply, in every body shape the peers send."""

from __future__ import annotations

from typing import Any

import pytest

from shared import ejson
from shared.broker_message import (
    FRAMING,
    Reply,
    RequestMessage,
    answer_headers,
    body_bytes,
    body_size,
    declared_length,
    error_reply,
    merged_headers,
    reply,
)
from shared.protocol_error import ProtocolError


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, b""),
        ("", b""),
        ("héllo", "héllo".encode()),
        (b"\x00\xff", b"\x00\xff"),
        ({"type": "Buffer", "data": [104, 105]}, b"hi"),
        ({"a": [1, 2]}, b'{"a":[1,2]}'),  # JSON.stringify's shape
        (7, b"7"),
    ],
)
def test_body_bytes_reads_every_shape(value: Any, expected: bytes) -> None:
    assert body_bytes(value) == expected


def test_a_buffer_with_non_byte_data_is_named() -> None:
    with pytest.raises(ProtocolError, match="request event body Buffer has non-byte data"):
        body_bytes({"type": "Buffer", "data": [300]}, "request event body")


def test_body_size_counts_without_copying() -> None:
    assert body_size("abc") == 3 and body_size(b"ab") == 2
    assert body_size({"type": "Buffer", "data": [1, 2, 3, 4]}) == 4 and body_size(None) == 0


def test_request_event_round_trips_through_ejson_with_a_binary_body() -> None:
    message = RequestMessage("/x?y=1", "POST", {"a": "1"}, b"\x00body", "sid", "rid")
    event = ejson.loads(ejson.dumps(message.to_event()))
    assert RequestMessage.from_event(event) == message


def test_request_event_without_a_body_has_no_body_field() -> None:
    event = RequestMessage("/x", "GET", {}, b"", "", "rid").to_event()
    assert list(event) == ["url", "method", "headers", "streamingID", "requestId"]


def test_request_event_headers_are_lower_cased_and_arrays_joined() -> None:
    message = RequestMessage.from_event(
        {"url": "/x", "method": "get", "headers": {"X-A": ["1", "2"], "X-B": None}}
    )
    assert message.method == "GET" and message.headers == {"x-a": "1, 2"}


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ([], "argument is not an object"),
        ({"method": "GET"}, "has no url"),
        ({"url": "/x", "method": "G T"}, "invalid method"),
        ({"url": "/x", "headers": ["h"]}, "headers is not an object"),
        ({"url": "/x", "streamingID": 3}, "streamingID is not a string"),
    ],
)
def test_a_bad_request_event_is_named(arg: Any, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        RequestMessage.from_event(arg)


def test_reply_reads_status_headers_and_any_body_shape() -> None:
    answer = Reply.from_ack([{"status": 201, "headers": {"a": "b"}, "body": {"k": 1}}])
    assert (answer.status, dict(answer.headers), answer.body) == (201, {"a": "b"}, b'{"k":1}')
    assert answer.json_body
    buffer = Reply.from_ack([{"status": 200, "body": {"type": "Buffer", "data": [65]}}])
    assert buffer.body == b"A" and not buffer.json_body


@pytest.mark.parametrize(
    ("args", "default", "message"),
    [
        ([], 200, "answer is not an object"),
        (["text"], 200, "answer is not an object"),
        ([{"status": True}], 200, "answer has status True"),
        ([{"status": 600}], 200, "answer has status 600"),
        ([{}], None, "answer has status None"),
    ],
)
def test_a_bad_reply_is_named(args: list[Any], default: int | None, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        Reply.from_ack(args, default_status=default)


def test_a_reply_without_status_is_200_by_default() -> None:
    assert Reply.from_ack([{"body": "x"}]).status == 200


def test_replies_keep_the_field_order_of_the_wire() -> None:
    assert list(reply(200, {}, "x", errorType="E")) == ["status", "headers", "body", "errorType"]
    error = error_reply(401, "FILTER_BLOCKED", "blocked", url="/x")
    assert error["headers"] == {"content-type": "application/json"}
    assert error["body"] == '{"code": "FILTER_BLOCKED", "message": "blocked", "url": "/x"}'


def test_answer_headers_drop_framing_splitting_values_and_join_arrays() -> None:
    headers = {
        "Content-Length": "3",
        "Transfer-Encoding": "chunked",
        "X-Ok": ["a", "b"],
        "X-Bad": "a\r\nSet-Cookie: x",
        "X-None": None,
        "Content-Encoding": "gzip",
    }
    assert answer_headers(headers) == {"X-Ok": "a, b", "Content-Encoding": "gzip"}
    assert answer_headers(headers, drop=FRAMING | {"content-encoding"}) == {"X-Ok": "a, b"}
    assert answer_headers(["not", "a", "mapping"]) == {}


def test_merged_headers_join_repeats() -> None:
    assert merged_headers([("A", "1"), ("a", "2"), ("B", "3")]) == {"a": "1, 2", "b": "3"}


@pytest.mark.parametrize(
    ("status", "headers", "method", "expected"),
    [
        (200, {"Content-Length": "12"}, "GET", 12),
        (200, {"content-length": "12"}, "HEAD", None),
        (204, {"content-length": "0"}, "GET", None),
        (200, {"content-length": "1e3"}, "GET", None),
        (200, {}, "GET", None),
    ],
)
def test_declared_length_only_when_a_body_is_expected_and_it_parses(
    status: int, headers: dict[str, str], method: str, expected: int | None
) -> None:
    assert declared_length(status, headers, method) == expected
