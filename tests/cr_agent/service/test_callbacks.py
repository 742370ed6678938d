"""Callback bodies: split under the limit, never truncated."""

from __future__ import annotations

import json

import pytest

from cr_agent.service.callbacks import CallbackTooLarge, result_bodies


def result(components: int, size: int = 100) -> dict:
    return {
        "jobId": "j",
        "resultId": "r",
        "status": "success",
        "sbom": {
            "bomFormat": "CycloneDX",
            "components": [{"name": f"c{i}", "pad": "x" * size} for i in range(components)],
            "dependencies": [{"ref": f"c{i}"} for i in range(components)],
        },
    }


def test_small_result_is_one_body_unchanged() -> None:
    [body] = result_bodies(result(3), 10_000)
    assert json.loads(body) == result(3)


def test_large_result_is_split_and_reassembles_exactly() -> None:
    original = result(500)
    bodies = [json.loads(b) for b in result_bodies(original, 8_000)]
    assert len(bodies) > 1
    assert all(len(json.dumps(b, separators=(",", ":"))) <= 8_000 for b in bodies)
    assert [b["chunk"]["index"] for b in bodies] == list(range(len(bodies)))
    for field in ("components", "dependencies"):
        joined = [item for b in bodies for item in b["sbom"][field]]
        assert joined == original["sbom"][field]
    assert all(b["sbom"]["bomFormat"] == "CycloneDX" for b in bodies)


def test_an_entry_larger_than_the_limit_is_refused_not_truncated() -> None:
    with pytest.raises(CallbackTooLarge):
        result_bodies(result(3, size=20_000), 8_000)
