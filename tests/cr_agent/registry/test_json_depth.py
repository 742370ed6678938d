"""JSON from a registry is refused past a nesting depth, before or after the parser's own limit."""

from __future__ import annotations

import pytest

from cr_agent.registry import json_depth
from cr_agent.registry.errors import ManifestError
from cr_agent.registry.manifest import parse_config, parse_manifest


@pytest.mark.parametrize("depth", [65, 900, 5000, 200_000])
def test_documents_deeper_than_the_limit_are_refused(depth: int) -> None:
    with pytest.raises(json_depth.JsonTooDeep, match="deeper than 64 levels"):
        json_depth.loads("[" * depth + "]" * depth)


def test_documents_at_the_limit_and_scalars_load() -> None:
    assert json_depth.loads("[" * 64 + "]" * 64) is not None
    assert json_depth.loads(b'{"a": {"b": [1, {"c": "d"}]}}') == {"a": {"b": [1, {"c": "d"}]}}
    assert json_depth.loads("3") == 3


def test_a_deep_manifest_or_config_is_an_invalid_manifest() -> None:
    deep = b'{"schemaVersion": 2, "x": ' + b"[" * 3000 + b"]" * 3000 + b"}"
    with pytest.raises(ManifestError, match="invalid manifest: JSON nested deeper"):
        parse_manifest(deep, None, "sha256:x")
    with pytest.raises(ManifestError, match="invalid config: JSON nested deeper"):
        parse_config(deep, "sha256:y")
