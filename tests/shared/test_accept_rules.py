"""Accept-rule matching: path-to-regexp v1 semantics, path safety, valid conditions, auth, origins."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from shared.accept_rules import (
    AcceptRulesError,
    auth_header,
    compile_path,
    expand_origin,
    glob_match,
    load_rules,
    safe_path,
)
from shared.var_substitution import VariableSource

CRA_RULES = (
    Path(__file__).resolve().parents[2]
    / "broker_client"
    / "accept"
    / "container-registry-agent.json"
)


def rules(*private: dict, public: list[dict] | None = None):
    return load_rules({"private": list(private), "public": public or []})


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("/list", "/list", True),
        ("/list", "/list/", True),  # not strict: optional trailing slash
        ("/list", "/LIST", True),  # not sensitive
        ("/list", "/list/x", False),  # whole path must match
        ("/list/*", "/list/library/ubuntu", True),  # * crosses slashes
        ("/list/*", "/list/", True),
        ("/list/*", "/list", False),
        ("/repos/:name", "/repos/a", True),
        ("/repos/:name", "/repos/a/b", False),  # :name is one segment
        ("/repos/:name/tags", "/repos/a/tags", True),
        ("/repos/:name?", "/repos", True),
        ("/repos/:name+", "/repos/a/b", True),
        ("/repos/:id(\\d+)", "/repos/12", True),
        ("/repos/:id(\\d+)", "/repos/ab", False),
        ("/file.json", "/fileXjson", False),  # dots are literal
        ("/a/*/c", "/a/b/x/c", True),
    ],
)
def test_path_to_regexp_v1_semantics(pattern: str, path: str, expected: bool) -> None:
    assert (compile_path(pattern).fullmatch(path) is not None) is expected


def test_query_is_ignored_for_the_path_and_first_match_wins() -> None:
    r = rules(
        {"method": "GET", "path": "/list", "origin": "http://a"},
        {"method": "GET", "path": "/list", "origin": "http://b"},
    )
    rule = r.match_private("GET", "/list?page=1&x=/../y")
    assert rule is not None and rule.origin == "http://a"


def test_method_any_and_default_get() -> None:
    r = rules({"method": "any", "path": "/x"}, {"path": "/y"})
    assert r.match_private("DELETE", "/x") is not None
    assert r.match_private("get", "/y") is not None
    assert r.match_private("POST", "/y") is None


@pytest.mark.parametrize(
    "url",
    [
        "/list/../x",
        "/list/./x",
        "/list//x",
        "/list/%2e%2e/x",
        "/list/%2E%2E/x",
        "/list/.%2e/x",
        "/list/%252e%252e/x",  # double encoded
        "/list/a%2fb",  # encoded slash
        "/list/a%2F..%2Fb",
        "/list/a%5c..%5cb",  # encoded backslash
        "/list/a\\..\\b",
        "/list/%00",
        "/list/%ff%fe",  # not UTF-8
        "list/x",
        "//list/x",
    ],
)
def test_paths_that_change_under_normalisation_are_refused(url: str) -> None:
    r = rules({"method": "GET", "path": "/list/*", "origin": "http://a"})
    assert r.match_private("GET", url) is None


def test_percent_encoded_ordinary_characters_are_allowed() -> None:
    assert safe_path("/list/my%20repo") == "/list/my repo"
    r = rules({"method": "GET", "path": "/list/*", "origin": "http://a"})
    assert r.match_private("GET", "/list/library/ubuntu?tag=a%2Fb") is not None


def test_body_equality_or_regex_or_query_then_headers_all() -> None:
    r = rules(
        {
            "method": "POST",
            "path": "/scan",
            "origin": "http://a",
            "valid": [
                {"path": "kind", "value": "image"},
                {"path": "image.name", "regex": "^library/"},
                {"queryParam": "ref", "values": ["*.json"]},
                {"queryParam": "mode", "values": ["fast", "slow"]},
                {"header": "accept", "values": ["application/json"]},
            ],
        }
    )
    hdr = {"Accept": "application/json"}
    assert r.match_private("POST", "/scan", hdr, json.dumps({"kind": "image"})) is not None
    assert r.match_private("POST", "/scan", hdr, b'{"image": {"name": "library/x"}}') is not None
    assert r.match_private("POST", "/scan", hdr, b'{"image": {"name": "other/x"}}') is None
    # query conditions are AND-ed among themselves
    assert r.match_private("POST", "/scan?ref=a.json&mode=fast", hdr, b"{}") is not None
    assert r.match_private("POST", "/scan?ref=a.json", hdr, b"{}") is None
    assert r.match_private("POST", "/scan?ref=dir/a.json&mode=fast", hdr, b"{}") is None
    # the header allow-list must hold in addition
    assert r.match_private("POST", "/scan", {"accept": "text/html"}, b'{"kind":"image"}') is None
    assert r.match_private("POST", "/scan", {}, b'{"kind":"image"}') is None


def test_header_only_conditions() -> None:
    r = rules(
        {
            "path": "/x",
            "valid": [{"header": "x-a", "values": ["1"]}, {"header": "x-b", "values": ["2"]}],
        }
    )
    assert r.match_private("GET", "/x", {"x-a": "1", "x-b": "2"}) is not None
    assert r.match_private("GET", "/x", {"x-a": "1"}) is None


def test_glob_match_minimatch_dot_true() -> None:
    assert glob_match(".hidden.json", "*.json")
    assert not glob_match("a/b.json", "*.json")
    assert glob_match("a/b.json", "**/*.json")
    assert glob_match("", "") and not glob_match("x", "")


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        (
            {"scheme": "basic", "username": "${U}", "password": "p"},
            "Basic " + base64.b64encode(b"user:p").decode(),
        ),
        ({"scheme": "basic", "token": "${T}"}, "Basic " + base64.b64encode(b"tok").decode()),
        ({"scheme": "bearer", "token": "${T}"}, "Bearer tok"),
        ({"scheme": "token", "token": "${T}"}, "Token tok"),
        ({"scheme": "raw", "token": "X ${T}"}, "X tok"),
    ],
)
def test_auth_schemes(auth: dict, expected: str) -> None:
    assert auth_header(auth, VariableSource({"U": "user", "T": "tok"})) == expected


def test_unknown_auth_scheme_is_refused_at_load() -> None:
    with pytest.raises(AcceptRulesError, match=r"private rule #0: 'auth.scheme'"):
        rules({"path": "/x", "auth": {"scheme": "digest"}})


def test_origin_expansion_with_pool_round_robin_and_default_scheme() -> None:
    source = VariableSource({"CR_AGENT_URL_POOL": "http://a:1,http://b:2", "HOST": "h.example"})
    assert [expand_origin("${CR_AGENT_URL}", source) for _ in range(3)] == [
        "http://a:1",
        "http://b:2",
        "http://a:1",
    ]
    assert expand_origin("${HOST}/", source) == "https://h.example"
    assert expand_origin("${MISSING}x", source) == "https://x"


def test_load_from_json_and_yaml_files(tmp_path: Path) -> None:
    doc = {
        "private": [{"method": "GET", "path": "/a", "origin": "http://o"}],
        "public": [{"method": "POST", "path": "/cb"}],
    }
    (tmp_path / "a.json").write_text(json.dumps(doc))
    (tmp_path / "a.yaml").write_text(
        "private:\n  - method: GET\n    path: /a\n    origin: http://o\npublic:\n  - {method: POST, path: /cb}\n"
    )
    for name in ("a.json", "a.yaml"):
        loaded = load_rules(tmp_path / name)
        assert loaded.match_private("GET", "/a") is not None
        assert loaded.match_public("POST", "/cb") is not None
        assert loaded.match_public("GET", "/cb") is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[1, 2]", "must be an object"),
        ('{"x": []}', "need a 'private' and/or 'public'"),
        ('{"private": {"a": 1}}', "'private' must be a list"),
        ('{"private": [3]}', "private rule #0 must be an object"),
        (
            '{"public": [{"path": "/x", "valid": [{"path": "a", "regex": "("}]}]}',
            "public rule #0: bad 'valid' regex",
        ),
        ("{: nope", "neither JSON nor YAML"),
    ],
)
def test_bad_rule_files_name_the_problem(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(AcceptRulesError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_rules(path)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(AcceptRulesError, match=r"cannot read accept rules .*nope\.json"):
        load_rules(tmp_path / "nope.json")


def test_shipped_container_registry_agent_rules() -> None:
    cra = load_rules(CRA_RULES)
    allowed = [
        ("GET", "/list?page=1"),
        ("GET", "/list/library/ubuntu"),
        ("GET", "/list-paginated/library/ubuntu?page=2"),
        ("GET", "/list-with-metadata/a/b"),
        ("GET", "/image-metadata/library/ubuntu/latest"),
        ("POST", "/scan"),
        ("POST", "/discover"),
        ("GET", "/healthcheck"),
        ("GET", "/validate-credentials"),
        ("GET", "/get-state-identifier"),
        ("GET", "/scan/0f0e0d0c-aaaa-4bbb-8ccc-123456789abc"),  # statusPath of a scan job
        ("GET", "/scan/0F0E0D0C-AAAA-4BBB-8CCC-123456789ABC"),
    ]
    for method, url in allowed:
        rule = cra.match_private(method, url)
        assert rule is not None and rule.origin == "${CR_AGENT_URL}", (method, url)
    for method, url in [
        ("GET", "/v2/_catalog"),
        ("DELETE", "/list"),
        ("GET", "/scan"),
        ("GET", "/list/%2e%2e/x"),
        # the status rule is as narrow as a job id
        ("GET", "/scan/not-a-job"),
        ("GET", "/scan/0f0e0d0c-aaaa-4bbb-8ccc-123456789abc/x"),
        ("GET", "/scan/0f0e0d0c-aaaa-4bbb-8ccc-123456789abc0"),
        ("GET", "/scan/0f0e0d0c-aaaa-4bbb-8ccc-123456789abc%2f..%2fx"),
        ("POST", "/scan/0f0e0d0c-aaaa-4bbb-8ccc-123456789abc"),
        ("DELETE", "/scan/0f0e0d0c-aaaa-4bbb-8ccc-123456789abc"),
    ]:
        assert cra.match_private(method, url) is None, (method, url)
    assert cra.match_public("POST", "/api/v2/import/result") is not None
    assert cra.match_public("POST", "/rest/scan/result") is not None
    assert cra.match_public("POST", "/api/v2/other") is None
