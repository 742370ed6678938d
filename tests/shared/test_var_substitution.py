"""${VAR} substitution for headers (x-broker-var-sub) and JSON bodies (BROKER_VAR_SUB),
limited by an allow-list of variables and places."""

from __future__ import annotations

import json

import pytest

from shared.var_substitution import (
    DEFAULT_ALLOW,
    AllowListError,
    Refused,
    SubstitutionAllowList,
    VariableSource,
    substitute_body,
    substitute_headers,
)

EVERYTHING = SubstitutionAllowList.parse(
    "CR_CREDENTIALS@header:authorization,CR_CREDENTIALS@body:creds,"
    "BROKER_CLIENT_URL@body:cb.url,A@body:a"
)
DEFAULT = SubstitutionAllowList.parse(DEFAULT_ALLOW)


def test_header_substitution_only_for_listed_headers() -> None:
    source = VariableSource({"CR_CREDENTIALS": "YmxvYg==", "OTHER": "o"})
    headers = {
        "Authorization": "${CR_CREDENTIALS}",
        "x-other": "${OTHER}",
        "x-broker-var-sub": "authorization, x-missing",
    }
    assert substitute_headers(headers, source, EVERYTHING) == (["authorization"], [])
    assert headers["Authorization"] == "YmxvYg=="
    assert headers["x-other"] == "${OTHER}"
    assert headers["x-broker-var-sub"] == "authorization, x-missing"  # forwarded, as snyk does


def test_no_switch_header_changes_nothing() -> None:
    headers = {"authorization": "${CR_CREDENTIALS}"}
    assert substitute_headers(headers, VariableSource({"CR_CREDENTIALS": "x"}), EVERYTHING) == (
        [],
        [],
    )
    assert headers == {"authorization": "${CR_CREDENTIALS}"}


def test_unknown_variable_becomes_empty() -> None:
    assert VariableSource({}).replace("a${NOPE}b") == "ab"


def test_body_substitution_removes_switch_and_recompacts() -> None:
    source = VariableSource({"CR_CREDENTIALS": "blob", "BROKER_CLIENT_URL": "http://c:1"})
    body = json.dumps(
        {
            "image": "a:b",
            "BROKER_VAR_SUB": ["creds", "cb.url", "nope.x"],
            "creds": "${CR_CREDENTIALS}",
            "cb": {"url": "${BROKER_CLIENT_URL}/x"},
        }
    ).encode()
    new, changed, refused = substitute_body(body, source, EVERYTHING)
    assert new is not None
    assert changed == ["creds", "cb.url"] and refused == []
    assert json.loads(new) == {"image": "a:b", "creds": "blob", "cb": {"url": "http://c:1/x"}}
    assert b" " not in new


def test_non_json_or_unswitched_body_is_untouched() -> None:
    source = VariableSource({"A": "x"})
    for body in (b"BROKER_VAR_SUB not json", b'{"a": "${A}"}', b'["BROKER_VAR_SUB"]', None, b""):
        assert substitute_body(body, source, EVERYTHING) == (body, [], [])


def test_pool_rotates() -> None:
    source = VariableSource({"TOKEN_POOL": "a, b"})
    assert [source.replace("${TOKEN}") for _ in range(3)] == ["a", "b", "a"]
    assert source.pool_members("TOKEN") == ["a", "b"]


def test_a_request_gets_one_member_of_each_pool_and_the_next_request_the_next() -> None:
    source = VariableSource({"TOKEN_POOL": "a,b,c", "URL_POOL": "u1,u2", "PLAIN": "p"})
    seen = []
    for _ in range(4):
        request = source.for_request()
        seen.append(request.replace("${TOKEN}:${TOKEN}/${URL}/${PLAIN}/${URL}"))
    assert seen == ["a:a/u1/p/u1", "b:b/u2/p/u2", "c:c/u1/p/u1", "a:a/u2/p/u2"]


def test_a_pool_moves_on_only_for_a_request_that_uses_it() -> None:
    source = VariableSource({"TOKEN_POOL": "a,b"})
    assert source.for_request().replace("${OTHER}") == ""
    assert source.for_request().replace_only("${TOKEN}", frozenset({"TOKEN"})) == ("a", [])
    assert source.for_request().replace_only("${TOKEN}", frozenset()) == ("${TOKEN}", ["TOKEN"])
    assert source.for_request().get("TOKEN") == "b"
    assert source.for_request().for_request().get("TOKEN") == "a"


SECRETS = VariableSource(
    {
        "BROKER_TOKEN": "tok-secret",
        "CR_PASSWORD": "pw-secret",
        "CR_CREDENTIALS": "blob-secret",
        "AWS_SECRET_ACCESS_KEY": "aws-secret",
        "BROKER_CLIENT_URL": "http://client:8000",
    }
)


def test_echoed_body_fields_keep_placeholders_literal_by_default() -> None:
    """Issue 10 item 4: a server-sent scan whose echoed fields name client variables."""
    fields = {
        "requestId": "${BROKER_TOKEN}",
        "context": "${CR_PASSWORD}|${CR_CREDENTIALS}|${AWS_SECRET_ACCESS_KEY}",
        "callbackUrl": "${BROKER_CLIENT_URL}",
    }
    body = json.dumps({**fields, "BROKER_VAR_SUB": list(fields)}).encode()
    new, changed, refused = substitute_body(body, SECRETS, DEFAULT)
    assert new is not None
    assert json.loads(new) == {**fields, "callbackUrl": "http://client:8000"}
    assert b"secret" not in new
    assert changed == ["requestId", "context", "callbackUrl"]
    assert refused == [
        Refused("body:requestId", "BROKER_TOKEN"),
        Refused("body:context", "CR_PASSWORD"),
        Refused("body:context", "CR_CREDENTIALS"),
        Refused("body:context", "AWS_SECRET_ACCESS_KEY"),
    ]


def test_allowed_place_fills_only_allowed_variables() -> None:
    headers = {
        "authorization": "${CR_CREDENTIALS} ${BROKER_TOKEN}",
        "x-echo": "${CR_CREDENTIALS}",
        "x-broker-var-sub": "authorization,x-echo",
    }
    changed, refused = substitute_headers(headers, SECRETS, DEFAULT)
    assert headers["authorization"] == "blob-secret ${BROKER_TOKEN}"
    assert headers["x-echo"] == "${CR_CREDENTIALS}"  # the credentials, but not in this place
    assert refused == [
        Refused("header:authorization", "BROKER_TOKEN"),
        Refused("header:x-echo", "CR_CREDENTIALS"),
    ]
    assert changed == ["authorization", "x-echo"]


def test_skipped_headers_are_left_alone() -> None:
    headers = {"authorization": "${CR_CREDENTIALS}", "x-broker-var-sub": "authorization"}
    assert substitute_headers(headers, SECRETS, DEFAULT, skip=["Authorization"]) == ([], [])
    assert headers["authorization"] == "${CR_CREDENTIALS}"


def test_none_allows_nothing() -> None:
    headers = {"authorization": "${CR_CREDENTIALS}", "x-broker-var-sub": "authorization"}
    substitute_headers(headers, SECRETS, SubstitutionAllowList.parse("none"))
    assert headers["authorization"] == "${CR_CREDENTIALS}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("CR_CREDENTIALS", "is not VAR@header:<name> or VAR@body:<path>"),
        ("CR_CREDENTIALS@query:x", "is not VAR@header"),
        ("CR_CREDENTIALS@header:", "is not VAR@header"),
        ("1X@header:a", "'1X' is not a variable name"),
        ("BROKER_TOKEN@header:authorization", "BROKER_TOKEN is never substituted"),
        ("HTTPS_PROXY@body:p", "HTTPS_PROXY is never substituted"),
        ("AWS_SECRET_ACCESS_KEY@body:p", "AWS_SECRET_ACCESS_KEY is never substituted"),
    ],
)
def test_bad_allow_list_entries_are_named(text: str, message: str) -> None:
    with pytest.raises(AllowListError, match=message):
        SubstitutionAllowList.parse(text)


def test_allow_list_parses_places_case_insensitively_for_headers() -> None:
    allow = SubstitutionAllowList.parse("A@header:X-Thing, B@body:a.b")
    assert allow.for_header("x-thing") == {"A"} and allow.for_body("a.b") == {"B"}
    assert allow.for_body("A.B") == frozenset()
    assert allow.variables() == {"A", "B"}
