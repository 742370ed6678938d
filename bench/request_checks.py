"""Cost of the client's per-request checks on the way to the agent (issue 10): request-line
hygiene, the server's credentials replaced by the client's, substitution within the
allow-list, next to the header rewrite the client always did.

    .venv/bin/python bench/request_checks.py [--number 20000]

Prints microseconds per call (best of five repeats) for a typical listing GET and scan POST.
"""

from __future__ import annotations

import argparse
import json
import sys
import timeit
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from broker_client.agent_credentials import (
    own_credentials,
    without_body_credentials,
)
from broker_client.header_hygiene import downstream_headers
from shared.request_hygiene import request_line_problem
from shared.var_substitution import (
    DEFAULT_ALLOW,
    SubstitutionAllowList,
    VariableSource,
    substitute_body,
    substitute_headers,
)

ALLOW = SubstitutionAllowList.parse(DEFAULT_ALLOW)
SOURCE = VariableSource(
    {"CR_CREDENTIALS": "eyJ0eXBlIjoiZG9ja2VyLWh1YiJ9Cg==", "BROKER_CLIENT_URL": "http://c:8000"}
)
HEADERS = {
    "authorization": "${CR_CREDENTIALS}",
    "x-broker-var-sub": "authorization",
    "snyk-request-id": "0f0e0d0c-aaaa-4bbb-8ccc-123456789abc",
    "accept": "application/json",
    "user-agent": "snyk-backend",
}
SCAN = json.dumps(
    {
        "images": ["library/ubuntu:22.04"],
        "callbackUrl": "${BROKER_CLIENT_URL}",
        "BROKER_VAR_SUB": ["callbackUrl"],
    }
).encode()


def checks(method: str, url: str, body: bytes | None) -> None:
    request_line_problem(method, url)
    headers = downstream_headers(HEADERS, user_agent="u")
    own_credentials(headers, "blob")
    substitute_headers(headers, SOURCE, ALLOW, ("authorization",))
    body = without_body_credentials(body)[0]
    substitute_body(body, SOURCE, ALLOW)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20000)
    n = parser.parse_args().number
    cases: list[tuple[str, Callable[[], object]]] = [
        (
            "header rewrite alone (before and after)",
            lambda: downstream_headers(HEADERS, user_agent="u"),
        ),
        (
            "request-line hygiene, GET /list/<repo>?page=2",
            lambda: request_line_problem("GET", "/list/library/ubuntu?page=2"),
        ),
        (
            "all checks, GET /list/<repo>",
            lambda: checks("GET", "/list/library/ubuntu?page=2", None),
        ),
        ("all checks, POST /scan with BROKER_VAR_SUB", lambda: checks("POST", "/scan", SCAN)),
    ]
    for label, call in cases:
        best = min(timeit.repeat(call, number=n, repeat=5)) / n
        print(f"{label:48s} {best * 1e6:7.2f} us")


if __name__ == "__main__":
    main()
