"""The agent against a registry that misbehaves on purpose (tests.support.hostile_registry):
every answer is bounded in time and memory and names what was wrong."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator

import pytest

from shared.credentials import build_credentials_json, encode_credentials
from tests.cr_agent.service.agent import AgentFactory
from tests.cr_agent.service.images import debian_image
from tests.fakes.callback_receiver import CallbackReceiver
from tests.support.hostile_registry import HostileRegistry
from tests.support.images import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    BuiltImage,
    Layer,
    build_image,
)

DONE = "/api/v2/import/done"
RESULT = "/api/v2/import/result"
DEPTH = 5000


def creds(registry: HostileRegistry, username: str = "", password: str = "") -> str:
    return encode_credentials(
        build_credentials_json(
            "generic-cr", base=registry.url, username=username, password=password
        )
    )


@pytest.fixture
async def hostile() -> AsyncIterator[HostileRegistry]:
    registry = await HostileRegistry().start()
    yield registry
    await registry.stop()


@pytest.fixture
async def receiver() -> AsyncIterator[CallbackReceiver]:
    rec = await CallbackReceiver().start()
    yield rec
    await rec.stop()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# --------------------------------------------------------------------------- deep JSON (item 5)


def _deep_documents(registry: HostileRegistry) -> dict[str, str]:
    """Tags whose manifest, index or config nests DEPTH levels deep."""
    image = debian_image(1)
    registry.add_image("deep", "fine", image)
    manifest = json.loads(image.manifest)
    deep_manifest = json.dumps({**manifest, "annotations": {"x": "@"}}).encode()
    deep_manifest = deep_manifest.replace(b'"@"', _deep(DEPTH))
    index = (
        json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": "@"})
        .encode()
        .replace(b'"@"', b"[" + _deep(DEPTH) + b"]")
    )
    config = image.config[:-1] + b',"deep":' + _deep(DEPTH) + b"}"
    config_digest = _digest(config)
    registry._blobs[config_digest] = config
    with_config = {
        **manifest,
        "config": {"mediaType": OCI_CONFIG, "size": len(config), "digest": config_digest},
    }
    registry.manifest_overrides.update(
        {
            "deep-manifest": (deep_manifest, OCI_MANIFEST),
            "deep-index": (index, OCI_INDEX),
            "deep-config": (json.dumps(with_config).encode(), OCI_MANIFEST),
        }
    )
    return {"deep-manifest": "manifest", "deep-index": "manifest", "deep-config": "config"}


async def test_json_nested_thousands_deep_is_an_invalid_manifest_not_a_500(
    make_agent: AgentFactory, hostile: HostileRegistry, receiver: CallbackReceiver
) -> None:
    tags = _deep_documents(hostile)
    agent = await make_agent()
    blob = creds(hostile)
    status, body = await agent.get("/image-metadata/deep/fine", blob)
    assert status == 200, body  # the same registry serves a normal image normally
    for tag, step in tags.items():
        status, body = await agent.get(f"/image-metadata/deep/{tag}", blob)
        assert status == 502, (tag, body)
        assert body["error"]["code"] == "invalid-manifest"
        assert body["error"]["step"] == step
        assert "nested deeper than 64 levels" in body["error"]["message"]

    status, _ = await agent.post(
        "/scan", {"images": [f"deep:{t}" for t in tags], "callbackUrl": receiver.url}, blob
    )
    assert status == 202
    await receiver.wait_for(DONE, wait_seconds=30)
    errors = [r.json()["error"] for r in receiver.on(RESULT)]
    assert [e["code"] for e in errors] == ["invalid-manifest"] * len(tags)


# --------------------------------------------------------------------------- deadlines (item 2)


async def test_a_dripping_layer_ends_at_its_deadline_and_frees_the_queue(
    make_agent: AgentFactory, hostile: HostileRegistry, receiver: CallbackReceiver
) -> None:
    slow, fine = debian_image(2), debian_image(3, marker="x")
    hostile.add_image("drip", "slow", slow)
    hostile.add_image("drip", "fine", fine)
    hostile.drip = {slow.layer_digests[1]}  # one byte every 0.2 s: minutes for the layer
    hostile.drip_interval = 0.2
    agent = await make_agent(
        MAX_ACTIVE_OPERATIONS=1, LAYER_DEADLINE_SECONDS=1, LAYER_CACHE_DIR="off"
    )
    status, _ = await agent.post(
        "/scan",
        {"images": ["drip:slow", "drip:fine"], "callbackUrl": receiver.url},
        creds(hostile),
    )
    assert status == 202
    await receiver.wait_for(DONE, wait_seconds=20)
    slow_result, fine_result = sorted(
        (r.json() for r in receiver.on(RESULT)), key=lambda r: r["image"] != "drip:slow"
    )
    error = slow_result["error"]
    assert error["code"] == "deadline" and error["step"] == "blob"
    assert slow.layer_digests[1] in error["message"]
    assert "LAYER_DEADLINE_SECONDS" in error["message"]
    assert "during blob download" in error["message"]
    assert fine_result["status"] == "success" and fine_result["packageCount"] == 3


async def test_a_scan_ends_at_its_deadline_naming_the_layers_still_read(
    make_agent: AgentFactory, hostile: HostileRegistry, receiver: CallbackReceiver
) -> None:
    slow = debian_image(2)
    hostile.add_image("drip", "slow", slow)
    hostile.drip = set(slow.layer_digests)
    hostile.drip_interval = 0.2
    agent = await make_agent(SCAN_DEADLINE_SECONDS=1.5, LAYER_CACHE_DIR="off")
    await agent.post(
        "/scan", {"images": ["drip:slow"], "callbackUrl": receiver.url}, creds(hostile)
    )
    [done] = await receiver.wait_for(DONE, wait_seconds=20)
    [result] = receiver.on(RESULT)
    error = result.json()["error"]
    assert error["code"] == "deadline" and error["step"] == "layers"
    assert "SCAN_DEADLINE_SECONDS" in error["message"]
    assert all(d in error["message"] for d in slow.layer_digests)
    assert done.json()["images"][0]["error"]["code"] == "deadline"


# --------------------------------------------------------------------------- image budget (item 3)


def _bomb_image(layers: int, compression: str, *, zeros: int, files: int) -> BuiltImage:
    """Small layers with distinct digests, each decompressing to ``zeros`` bytes of zeros in
    one file, or to ``files`` empty files."""
    steps = []
    for n in range(layers):
        entries = {f"bomb/{n}/{i}": b"" for i in range(files)}
        if zeros:
            entries[f"bomb/{n}/zeros"] = bytes(zeros)
        steps.append(Layer(entries, compression=compression))
    return build_image(steps)


@pytest.mark.parametrize(
    ("compression", "zeros", "files", "setting"),
    [
        ("zstd", 1 << 20, 0, "MAX_IMAGE_UNCOMPRESSED_BYTES"),
        ("gzip", 1 << 20, 0, "MAX_IMAGE_UNCOMPRESSED_BYTES"),
        ("gzip", 0, 400, "MAX_IMAGE_TAR_ENTRIES"),
    ],
)
async def test_many_small_bomb_layers_stop_at_the_image_budget(
    make_agent: AgentFactory,
    hostile: HostileRegistry,
    receiver: CallbackReceiver,
    compression: str,
    zeros: int,
    files: int,
    setting: str,
) -> None:
    image = _bomb_image(40, compression, zeros=zeros, files=files)
    assert sum(len(b) for b in image.blobs.values()) < 2 << 20  # small, under every other cap
    hostile.add_image("bombs", "many", image)
    agent = await make_agent(
        MAX_IMAGE_UNCOMPRESSED_BYTES=8 << 20,
        MAX_IMAGE_TAR_ENTRIES=4000,
        LAYER_CACHE_DIR="off",
    )
    await agent.post(
        "/scan", {"images": ["bombs:many"], "callbackUrl": receiver.url}, creds(hostile)
    )
    await receiver.wait_for(DONE, wait_seconds=30)
    [result] = [r.json() for r in receiver.on(RESULT)]
    error = result["error"]
    assert error["code"] == "image-too-large" and error["step"] == "decompress", error
    assert setting in error["message"]
    assert any(d in error["message"] for d in image.layer_digests)
    # it stopped early: most of the 40 layers were never asked for
    assert len([d for d in hostile.blob_requests() if d in image.layer_digests]) < 20


# --------------------------------------------------------------------------- listings (item 4)


@pytest.mark.parametrize(
    ("limits", "named"),
    [
        ({"LISTING_MAX_PAGES": 5}, "LISTING_MAX_PAGES=5"),
        ({"LISTING_MAX_ENTRIES": 3000}, "LISTING_MAX_ENTRIES=3000"),
        ({"LISTING_MAX_BYTES": 200_000}, "LISTING_MAX_BYTES=200000"),
    ],
)
@pytest.mark.parametrize("path", ["/list", "/list/endless/repo", "/list-paginated/endless/repo"])
async def test_a_listing_that_never_ends_stops_at_its_limit_with_a_502_naming_it(
    make_agent: AgentFactory,
    hostile: HostileRegistry,
    limits: dict[str, int],
    named: str,
    path: str,
) -> None:
    hostile.endless_listing = True
    agent = await make_agent(**limits)
    status, body = await agent.get(path, creds(hostile))
    assert status == 502, body
    assert body["error"]["code"] == "listing-too-long"
    assert named in body["error"]["message"]
    assert body["error"]["step"] in ("catalog", "tags")
    pages = [p for m, p in hostile.requests if p.endswith(("/_catalog", "/tags/list"))]
    assert len(pages) <= 6  # it stopped reading at the limit


async def test_a_scan_request_nested_thousands_deep_is_a_400_not_a_500(
    make_agent: AgentFactory, hostile: HostileRegistry
) -> None:
    agent = await make_agent()
    body = b'{"images": ["a:1"], "context": {"x": ' + _deep(DEPTH) + b"}}"
    async with agent.http.post(
        agent.url + "/scan", data=body, headers={"Authorization": creds(hostile)}
    ) as resp:
        answer = await resp.json()
    assert resp.status == 400, answer
    assert answer["error"]["field"] == "body"
    assert "nested deeper than 64 levels" in answer["error"]["message"]
