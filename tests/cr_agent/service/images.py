"""Small real images pushed into the test registries (built in code by tests.support.images)."""

from __future__ import annotations

import asyncio

from tests.support.images import (
    DebPackage,
    Layer,
    build_image,
    build_index,
    dpkg_status,
    os_release,
    push,
)
from tests.support.registry import RunningRegistry


def debian_image(packages: int = 3, *, marker: str = "", architecture: str = "amd64"):
    debs = [DebPackage(f"pkg{i}{marker}", f"1.{i}-1") for i in range(packages)]
    return build_image(
        [
            Layer(
                {"etc/os-release": os_release("debian", "12", codename="bookworm")},
                created_by="base",
            ),
            Layer({"var/lib/dpkg/status": dpkg_status(debs)}, created_by="apt-get install"),
        ],
        architecture=architecture,
    )


async def push_image(registry: RunningRegistry, repository: str, tag: str, image) -> str:
    return await asyncio.to_thread(
        push,
        registry.url,
        repository,
        image,
        tag=tag,
        username=registry.username,
        password=registry.password,
    )


async def push_multiarch(registry: RunningRegistry, repository: str, tag: str):
    index = build_index([debian_image(2), debian_image(4, architecture="arm64")])
    await push_image(registry, repository, tag, index)
    return index
