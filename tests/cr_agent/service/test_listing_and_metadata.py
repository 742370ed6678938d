"""Listing, tag metadata, image metadata and state ids against Debian's docker-registry."""

from __future__ import annotations

import pytest

from tests.cr_agent.service.agent import Agent, creds_for
from tests.cr_agent.service.images import debian_image, push_image, push_multiarch
from tests.support.registry import RunningRegistry

pytestmark = pytest.mark.registry


async def test_list_repositories_and_tags_with_basic_auth(
    agent: Agent, htpasswd_registry: RunningRegistry, unique_repo: str
) -> None:
    await push_image(htpasswd_registry, unique_repo, "1.0", debian_image())
    await push_image(htpasswd_registry, unique_repo, "2.0", debian_image(marker="b"))
    creds = creds_for(htpasswd_registry)

    status, body = await agent.get("/list", creds)
    assert status == 200, body
    assert unique_repo in body["repositories"]
    assert body["count"] == len(body["repositories"])

    status, body = await agent.get(f"/list/{unique_repo}", creds)
    assert status == 200, body
    assert body == {"repository": unique_repo, "tags": ["1.0", "2.0"], "count": 2}


async def test_list_with_metadata_gives_each_tags_digest(
    agent: Agent, plain_registry: RunningRegistry, unique_repo: str
) -> None:
    first = await push_image(plain_registry, unique_repo, "a", debian_image())
    second = await push_image(plain_registry, unique_repo, "b", debian_image(marker="x"))
    status, body = await agent.get(f"/list-with-metadata/{unique_repo}", creds_for(plain_registry))
    assert status == 200, body
    assert [(t["tag"], t["digest"]) for t in body["tags"]] == [("a", first), ("b", second)]
    # the distribution API has no push time; the field is absent rather than invented
    assert all("pushedAt" not in t for t in body["tags"])
    status, body = await agent.get(
        f"/list-with-metadata/{unique_repo}?created=true", creds_for(plain_registry)
    )
    assert status == 200, body
    # the test images' configs say they were created 2024-01-01 (tests.support.images)
    assert [t["created"] for t in body["tags"]] == ["2024-01-01T00:00:00Z"] * 2


async def test_list_paginated_pages_through_tags_with_a_cursor(
    agent: Agent, plain_registry: RunningRegistry, unique_repo: str
) -> None:
    image = debian_image()
    for tag in ("t1", "t2", "t3", "t4", "t5"):
        await push_image(plain_registry, unique_repo, tag, image)
    creds = creds_for(plain_registry)
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        query = "?pageSize=2" + (f"&cursor={cursor}" if cursor else "")
        status, body = await agent.get(f"/list-paginated/{unique_repo}{query}", creds)
        assert status == 200, body
        assert len(body["items"]) <= 2
        seen += body["items"]
        cursor = body.get("nextCursor")
        if cursor is None:
            break
    assert seen == ["t1", "t2", "t3", "t4", "t5"]

    status, body = await agent.get("/list-paginated/?pageSize=1000", creds)
    assert status == 200 and unique_repo in body["items"]


async def test_image_metadata_for_a_multiarch_tag_picks_the_platform(
    agent: Agent, plain_registry: RunningRegistry, unique_repo: str
) -> None:
    index = await push_multiarch(plain_registry, unique_repo, "multi")
    arm = index.children[1]
    creds = creds_for(plain_registry)
    status, body = await agent.get(
        f"/image-metadata/{unique_repo}/multi?platform=linux/arm64", creds
    )
    assert status == 200, body
    assert body["digest"] == index.digest
    assert body["manifestDigest"] == arm.digest
    assert body["platform"].startswith("linux/arm64")
    assert [layer["digest"] for layer in body["layers"]] == arm.layer_digests
    assert body["size"] == sum(layer["size"] for layer in body["layers"])
    assert {m["platform"] for m in body["manifests"]} == {"linux/amd64", "linux/arm64"}

    # the same image addressed as repo:tag and repo@digest
    status, by_tag = await agent.get(f"/image-metadata/{unique_repo}:multi", creds)
    status2, by_digest = await agent.get(f"/image-metadata/{unique_repo}@{index.digest}", creds)
    assert status == status2 == 200
    assert by_tag["manifestDigest"] == by_digest["manifestDigest"] == index.children[0].digest


async def test_state_identifier_is_stable_and_changes_with_content(
    agent: Agent, plain_registry: RunningRegistry, unique_repo: str
) -> None:
    creds = creds_for(plain_registry)
    await push_image(plain_registry, unique_repo, "latest", debian_image())
    path = f"/get-state-identifier?image={unique_repo}:latest"
    status, one = await agent.get(path, creds)
    status2, again = await agent.get(path, creds)
    assert status == status2 == 200, one
    assert one["stateIdentifier"] == again["stateIdentifier"]

    await push_image(plain_registry, unique_repo, "latest", debian_image(marker="new"))
    status, changed = await agent.get(path, creds)
    assert status == 200
    assert changed["stateIdentifier"] != one["stateIdentifier"]
    assert changed["digest"] != one["digest"]


async def test_validate_credentials_round_trip(
    agent: Agent, htpasswd_registry: RunningRegistry, unique_repo: str
) -> None:
    await push_image(htpasswd_registry, unique_repo, "v", debian_image())
    status, body = await agent.get("/validate-credentials", creds_for(htpasswd_registry))
    assert status == 200, body
    assert body["ok"] is True
    assert [s["step"] for s in body["steps"]] == ["credentials", "authenticate", "list"]
    status, body = await agent.get("/systemcheck", creds_for(htpasswd_registry))
    assert status == 200 and body["ok"] is True


async def test_validate_credentials_names_refused_credentials(
    agent: Agent, htpasswd_registry: RunningRegistry
) -> None:
    creds = creds_for(htpasswd_registry)
    from shared.credentials import build_credentials_json, encode_credentials

    wrong = encode_credentials(
        build_credentials_json(
            "generic-cr",
            base=htpasswd_registry.url,
            username="scanner",
            password="not-the-password",
        )
    )
    status, body = await agent.get("/validate-credentials", wrong)
    assert status == 401, body
    assert body["ok"] is False
    assert body["failedStep"] == "authenticate"
    assert body["reason"] == "credentials-refused"
    assert creds != wrong


async def test_token_registry_lists_through_bearer_challenge(
    agent: Agent, token_registry: RunningRegistry, unique_repo: str
) -> None:
    await push_image(token_registry, unique_repo, "1", debian_image())
    status, body = await agent.get(f"/list/{unique_repo}", creds_for(token_registry))
    assert status == 200, body
    assert body["tags"] == ["1"]


async def test_images_may_name_this_registry_but_no_other(
    agent: Agent, plain_registry: RunningRegistry, unique_repo: str
) -> None:
    digest = await push_image(plain_registry, unique_repo, "1", debian_image(1))
    creds = creds_for(plain_registry)
    status, body = await agent.get(
        f"/get-state-identifier?image={plain_registry.host}/{unique_repo}:1", creds
    )
    assert status == 200 and body["digest"] == digest
    status, body = await agent.get(
        f"/get-state-identifier?image=other.example.com/{unique_repo}:1", creds
    )
    assert status == 400
    assert body["error"]["field"] == "image" and "other.example.com" in body["error"]["message"]
