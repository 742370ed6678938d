"""The served OpenAPI document equals docs/openapi.json and documents every route."""

from __future__ import annotations

import json
import re
from pathlib import Path

from cr_agent.service.app import create_app
from cr_agent.service.settings import load_settings
from tests.cr_agent.service.agent import Agent
from tests.support import snyk_broker

DOCS = Path(__file__).resolve().parents[3] / "docs" / "openapi.json"
#: snyk-broker's stock filter, from the npm package `make npm` installs
ACCEPT = snyk_broker.stock_accept_path()


async def test_served_document_is_the_committed_one(agent: Agent) -> None:
    status, served = await agent.get("/openapi.json")
    assert status == 200
    committed = json.loads(DOCS.read_text())
    assert served == committed, "run: python -m cr_agent.service.openapi > docs/openapi.json"
    assert committed["openapi"].startswith("3.")


def _openapi_path(aiohttp_path: str) -> str:
    # aiohttp writes /list/{repository:.+}; OpenAPI writes /list/{repository}
    path = re.sub(r"\{(\w+):[^}]*\}", r"{\1}", aiohttp_path)
    return path.replace("{job_id}", "{jobId}")


def test_every_route_is_documented(tmp_path: Path) -> None:
    app = create_app(load_settings({"SPOOL_DIR": str(tmp_path), "CR_AGENT_AUTH": "disabled"}))
    document = json.loads(DOCS.read_text())
    routes = {
        (route.method.lower(), _openapi_path(route.resource.canonical))
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    documented = {(method, path) for path, ops in document["paths"].items() for method in ops}
    assert routes == documented


def test_every_private_accept_rule_has_an_operation() -> None:
    """The accept filter's private rules are the inbound API snyk's backend uses."""
    if not ACCEPT.exists():
        import pytest

        pytest.skip(f"snyk-broker npm package not installed ({ACCEPT} missing; run `make npm`)")
    rules = json.loads(ACCEPT.read_text())["private"]
    document = json.loads(DOCS.read_text())
    for rule in rules:
        prefix = rule["path"].removesuffix("/*")
        matches = [
            path
            for path, ops in document["paths"].items()
            if rule["method"].lower() in ops
            and (
                path == rule["path"]
                or (rule["path"].endswith("/*") and path.startswith(prefix + "/{"))
            )
        ]
        assert matches, rule


def test_request_models_reject_unknown_fields() -> None:
    document = json.loads(DOCS.read_text())
    schemas = document["components"]["schemas"]
    assert schemas["ScanRequest"]["additionalProperties"] is False
    for path, ops in document["paths"].items():
        for op in ops.values():
            for param in op.get("parameters", []):
                assert param["in"] in ("path", "query", "header"), path


def test_document_is_valid_openapi() -> None:
    from openapi_spec_validator import validate

    validate(json.loads(DOCS.read_text()))
