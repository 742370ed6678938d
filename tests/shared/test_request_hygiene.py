"""Request-line hygiene: what the client refuses (400) before the accept rules even look."""

from __future__ import annotations

import pytest

from shared.request_hygiene import request_line_problem


@pytest.mark.parametrize(
    "url",
    [
        "/list",
        "/list/library/ubuntu?page=2&n=50",
        "/image-metadata/my-repo/v1.2.3",
        "/list/caf%C3%A9",  # a non-ASCII name that looks like nothing structural
        "/list/a;b",  # a ';' on an ordinary segment is just a character
        "/list/..a/b",  # not a dot segment
        "/scan/0f0e0d0c-aaaa-4bbb-8ccc-123456789abc",
    ],
)
def test_ordinary_request_lines_pass(url: str) -> None:
    assert request_line_problem("GET", url) is None


@pytest.mark.parametrize(
    ("method", "url", "needle"),
    [
        ("GET", "/list\r\nX: 1", "control character '\\r' in the request URL"),
        ("GET", "/list\n", "control character '\\n'"),
        ("GET", "/li\tst", "control character '\\t'"),
        ("GET", "/list\x00", "control character '\\x00'"),
        ("GET", "/list\x7f", "control character '\\x7f'"),
        ("GE\rT", "/list", "control character '\\r' in the request method"),
        ("GET", "/list?q=%0D%0A", "percent-encoded control character %0D"),
        ("GET", "/list/%2500", "multiply percent-encoded control character '\\x00'"),
        ("GET", "/list?a=%250d", "multiply percent-encoded control character '\\r'"),
        ("GET", "/list/..;/x", "path parameter on a dot segment ('..;')"),
        ("GET", "/list/.;/x", "path parameter on a dot segment"),
        ("GET", "/list/%2E%2E;/x", "path parameter on a dot segment"),
        ("GET", "/list/%2e%2e%3b/x", "path parameter on a dot segment"),
        ("GET", "/list/%252e%252e%253b/x", "path parameter on a dot segment"),
        ("GET", "/list/..;jsessionid=1/x", "path parameter on a dot segment"),
        ("GET", "/list/\uff0e\uff0e/x", "U+FF0E FULLWIDTH FULL STOP"),
        ("GET", "/list/a\uff0fb", "U+FF0F FULLWIDTH SOLIDUS"),
        ("GET", "/list/a\uff3cb", "U+FF3C FULLWIDTH REVERSE SOLIDUS"),
        ("GET", "/list/%EF%BC%8E%EF%BC%8E/x", "U+FF0E"),
        ("GET", "/list/\ufe52\ufe52/x", "U+FE52 SMALL FULL STOP"),
        ("GET", "/list/\u2025/x", "U+2025 TWO DOT LEADER"),
        ("GET", "/list/a\u2215b", "U+2215 DIVISION SLASH"),
        ("GET", "/list/a\u2044b", "U+2044 FRACTION SLASH"),
        ("GET", "/list/a\u29f8b", "U+29F8 BIG SOLIDUS"),
        ("GET", "/list/%C0%AE%C0%AE/x", "not valid percent-encoded UTF-8"),
    ],
)
def test_suspicious_request_lines_are_named(method: str, url: str, needle: str) -> None:
    problem = request_line_problem(method, url)
    assert problem is not None and needle in problem, problem
