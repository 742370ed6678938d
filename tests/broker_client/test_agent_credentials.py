"""The agent's credentials are the client's own: the server's Authorization and body
``credentials`` are dropped (issue 10 item 2), pure functions."""

from __future__ import annotations

import json

from broker_client.agent_credentials import own_credentials, without_body_credentials


def test_server_authorization_is_replaced_and_reported_unless_a_placeholder() -> None:
    for sent, foreign in (("Basic Zm9yZWlnbg==", True), ("${CR_CREDENTIALS}", False), ("", False)):
        headers = {"authorization": sent, "accept": "x"}
        assert own_credentials(headers, "OWN") is foreign
        assert headers == {"authorization": "OWN", "accept": "x"}
    headers = {"accept": "x"}
    assert own_credentials(headers, "OWN") is False and headers["authorization"] == "OWN"


def test_without_own_credentials_the_server_value_is_still_dropped() -> None:
    headers = {"authorization": "Basic Zm9yZWlnbg=="}
    assert own_credentials(headers, None) is True
    assert headers == {}


def test_body_credentials_field_is_removed() -> None:
    body = json.dumps({"images": ["a:b"], "credentials": "Zm9yZWlnbg=="}).encode()
    new, foreign = without_body_credentials(body)
    assert foreign is True and json.loads(new or b"") == {"images": ["a:b"]}
    placeholder = json.dumps({"credentials": "${CR_CREDENTIALS}", "x": 1}).encode()
    new, foreign = without_body_credentials(placeholder)
    assert foreign is False and json.loads(new or b"") == {"x": 1}


def test_other_bodies_pass_untouched() -> None:
    for body in (None, b"", b"not json credentials", b'["credentials"]', b'{"a": "credentials"}'):
        assert without_body_credentials(body) == (body, False)
