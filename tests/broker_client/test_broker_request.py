"""Parsing the server's request event and the header hygiene applied before the agent sees it."""

from __future__ import annotations

import pytest

from broker_client.broker_request import BrokerRequest
from broker_client.header_hygiene import downstream_headers, response_headers
from shared.protocol_error import ProtocolError

RID = "0b7f2a34-1111-4222-8333-444455556666"


def test_parse_with_binary_body_and_ctx_prefix() -> None:
    request = BrokerRequest.from_event(
        {
            "url": "/ctx/0b7f2a34-1111-4222-8333-444455556666/scan?x=1",
            "method": "post",
            "headers": {"Snyk-Request-Id": RID, "X-Multi": ["a", "b"], "x-none": None},
            "body": b'{"a":1}',
            "streamingID": "s-1",
        }
    )
    assert request.url == "/scan?x=1"
    assert request.method == "POST"
    assert request.body == b'{"a":1}'
    assert request.request_id == RID
    assert request.headers["x-multi"] == "a, b" and "x-none" not in request.headers
    assert request.wants_stream


def test_node_buffer_body_and_missing_request_id() -> None:
    request = BrokerRequest.from_event(
        {"url": "/x", "body": {"type": "Buffer", "data": [104, 105]}}
    )
    assert request.body == b"hi"
    assert request.method == "GET"
    assert (
        len(request.request_id) == 36 and request.headers["snyk-request-id"] == request.request_id
    )
    assert not request.wants_stream


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("str", "not an object"),
        ({}, "no url"),
        ({"url": "/x", "method": "G T"}, "invalid method"),
        ({"url": "/x", "headers": "x"}, "headers is not an object"),
        ({"url": "/x", "streamingID": 5}, "streamingID is not a string"),
        ({"url": "/x", "body": {"type": "Buffer", "data": [300]}}, "non-byte data"),
    ],
)
def test_malformed_events_raise_protocol_error(arg: object, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        BrokerRequest.from_event(arg)


#: headers that re-route a request or change its method behind the agent (issue 10 item 5)
OVERRIDES = {
    "Forwarded": "for=1;host=admin",
    "X-HTTP-Method-Override": "DELETE",
    "X-HTTP-Method": "PUT",
    "X-Method-Override": "PATCH",
    "X-Original-URL": "/admin",
    "X-Rewrite-URL": "/admin",
}


def test_downstream_header_hygiene_drops_routing_and_override_headers() -> None:
    headers = downstream_headers(
        {
            "host": "broker",
            "content-length": "5",
            "x-forwarded-for": "1.2.3.4",
            "x-forwarded-custom": "k",
            "forwarded": "for=1",
            "snyk-acting-org-public-id": "org",
            "snyk-flow-name": "f",
            "x-snyk-broker-context-id": "c",
            "connection": "upgrade",
            "transfer-encoding": "chunked",
            "user-agent": "snyk-backend/1",
            "snyk-request-id": RID,
            "accept": "application/json",
            **OVERRIDES,
        },
        user_agent="Snyk Broker Client 1",
    )
    assert headers["user-agent"] == "Snyk Broker Client 1"
    assert headers["x-broker-origin-ua"] == "snyk-backend/1"
    assert headers["x-request-id"] == RID
    assert headers["accept"] == "application/json"
    for gone in (
        "host",
        "content-length",
        "x-forwarded-for",
        "x-forwarded-custom",
        *(name.lower() for name in OVERRIDES),
        "snyk-acting-org-public-id",
        "snyk-flow-name",
        "x-snyk-broker-context-id",
        "transfer-encoding",
    ):
        assert gone not in headers
    assert headers["connection"] == "Keep-Alive"


def test_response_headers_keep_repeats_and_drop_hop_by_hop() -> None:
    out = response_headers(
        [
            ("Set-Cookie", "a=1"),
            ("set-cookie", "b=2"),
            ("Transfer-Encoding", "chunked"),
            ("Content-Type", "x"),
        ]
    )
    assert out == {"set-cookie": ["a=1", "b=2"], "content-type": "x"}
