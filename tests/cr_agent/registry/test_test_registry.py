"""The test registries themselves: every flavour accepts pushes of images built in code."""

from __future__ import annotations

import json
import urllib.request

import pytest

from tests.support.images import Layer, Pusher, build_image, build_index, push


def _image(arch: str = "amd64"):
    return build_image(
        [Layer({"etc/hello": arch.encode()}, created_by="COPY hello /etc/")], architecture=arch
    )


@pytest.mark.parametrize("flavour", ["plain", "htpasswd", "token"])
def test_push_and_read_back_manifest(request, flavour, unique_repo):
    registry = request.getfixturevalue(f"{flavour}_registry")
    image = _image()
    digest = push(
        registry.url,
        unique_repo,
        image,
        tag="v1",
        username=registry.username,
        password=registry.password,
        chunked=True,
    )
    pusher = Pusher(registry.url, registry.username, registry.password)
    status, headers, body = pusher.request(
        "GET",
        f"/v2/{unique_repo}/manifests/v1",
        headers={"Accept": image.media_type},
        scope=f"repository:{unique_repo}:pull",
    )
    assert status == 200
    assert headers["Docker-Content-Digest"] == digest
    assert json.loads(body)["layers"][0]["digest"] == image.layer_digests[0]


def test_auth_registries_refuse_anonymous(htpasswd_registry, token_registry):
    for registry in (htpasswd_registry, token_registry):
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(registry.url + "/v2/", timeout=10)
        assert info.value.code == 401


def test_index_push(plain_registry, unique_repo):
    index = build_index([_image("amd64"), _image("arm64")])
    assert push(plain_registry.url, unique_repo, index, tag="multi") == index.digest
