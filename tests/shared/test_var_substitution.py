"""${VAR} substitution for headers (x-broker-var-sub) and JSON bodies (BROKER_VAR_SUB)."""

from __future__ import annotations

import json

from shared.var_substitution import VariableSource, substitute_body, substitute_headers


def test_header_substitution_only_for_listed_headers() -> None:
    source = VariableSource({"CR_CREDENTIALS": "YmxvYg==", "OTHER": "o"})
    headers = {
        "Authorization": "${CR_CREDENTIALS}",
        "x-other": "${OTHER}",
        "x-broker-var-sub": "authorization, x-missing",
    }
    assert substitute_headers(headers, source) == ["authorization"]
    assert headers["Authorization"] == "YmxvYg=="
    assert headers["x-other"] == "${OTHER}"
    assert headers["x-broker-var-sub"] == "authorization, x-missing"  # forwarded, as snyk does


def test_no_switch_header_changes_nothing() -> None:
    headers = {"authorization": "${CR_CREDENTIALS}"}
    assert substitute_headers(headers, VariableSource({"CR_CREDENTIALS": "x"})) == []
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
    new, changed = substitute_body(body, source)
    assert changed == ["creds", "cb.url"]
    assert json.loads(new) == {"image": "a:b", "creds": "blob", "cb": {"url": "http://c:1/x"}}
    assert b" " not in new


def test_non_json_or_unswitched_body_is_untouched() -> None:
    source = VariableSource({"A": "x"})
    for body in (b"BROKER_VAR_SUB not json", b'{"a": "${A}"}', b'["BROKER_VAR_SUB"]', None, b""):
        assert substitute_body(body, source) == (body, [])


def test_pool_rotates() -> None:
    source = VariableSource({"TOKEN_POOL": "a, b"})
    assert [source.replace("${TOKEN}") for _ in range(3)] == ["a", "b", "a"]
    assert source.pool_members("TOKEN") == ["a", "b"]
