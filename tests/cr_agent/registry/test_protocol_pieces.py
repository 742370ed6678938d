"""Pure parts of the registry client: references, challenges, tokens, manifests, paging."""

from __future__ import annotations

import json

import pytest

from cr_agent.registry.auth import (
    Token,
    TokenCache,
    parse_www_authenticate,
    token_from_response,
    widen_scopes,
)
from cr_agent.registry.errors import InvalidReference, ManifestError, UnsupportedManifest
from cr_agent.registry.manifest import (
    ImageIndex,
    ImageManifest,
    Platform,
    parse_config,
    parse_manifest,
    select_platform,
)
from cr_agent.registry.pagination import next_link, same_origin
from cr_agent.registry.rate_limit import parse_rate_limit, parse_retry_after
from cr_agent.registry.reference import ImageReference


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("alpine", ("docker.io", "library/alpine", "latest", None)),
        ("bitnami/redis:7.2", ("docker.io", "bitnami/redis", "7.2", None)),
        ("localhost:5000/a/b:t", ("localhost:5000", "a/b", "t", None)),
        ("127.0.0.1:5000/x", ("127.0.0.1:5000", "x", "latest", None)),
        ("ghcr.io/o/r@sha256:" + "a" * 64, ("ghcr.io", "o/r", None, "sha256:" + "a" * 64)),
        (
            "reg.example.com/r:t@sha256:" + "b" * 64,
            ("reg.example.com", "r", "t", "sha256:" + "b" * 64),
        ),
        ("index.docker.io/library/nginx", ("docker.io", "library/nginx", "latest", None)),
    ],
)
def test_reference_parse(text, expected):
    ref = ImageReference.parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == expected


@pytest.mark.parametrize(
    "text", ["", "Upper/Case", "a/b:bad tag", "a@sha256:short", "a//b", "x:5000/-bad"]
)
def test_reference_rejects(text):
    with pytest.raises(InvalidReference):
        ImageReference.parse(text)


def test_reference_prefers_digest_and_maps_hub():
    ref = ImageReference.parse("nginx:1@sha256:" + "c" * 64)
    assert ref.reference == ref.digest and ref.api_host == "registry-1.docker.io"


def test_www_authenticate_several_challenges_and_quoted_commas():
    header = (
        'Bearer realm="https://auth.example/token",service="reg.example",'
        'scope="repository:a/b:pull,push repository:c:pull", Basic realm="x, y"'
    )
    bearer, basic = parse_www_authenticate(header)
    assert bearer.scheme == "bearer" and bearer.realm == "https://auth.example/token"
    assert bearer.scopes == ["repository:a/b:pull,push", "repository:c:pull"]
    assert basic.scheme == "basic" and basic.params["realm"] == "x, y"
    assert (
        parse_www_authenticate('Bearer error="insufficient_scope",realm="r"')[0].error
        == "insufficient_scope"
    )


def test_token_response_variants_and_refresh_margin():
    t = token_from_response({"access_token": "abc", "expires_in": 10}, ["s"], now=0)
    assert t.value == "abc" and t.lifetime == 60  # short lifetimes count as 60 s
    assert t.fresh(now=40) and not t.fresh(now=49)  # refreshed before expiry
    with pytest.raises(ValueError, match="neither 'token' nor 'access_token'"):
        token_from_response({"expires_in": 300}, [], now=0)


def test_token_cache_uses_wider_tokens_and_widening_order():
    cache = TokenCache()
    cache.put(
        "r", "s", Token("t1", frozenset({"repository:a:pull", "repository:b:pull"}), 1e12, 300)
    )
    assert cache.get("r", "s", ["repository:a:pull"]).value == "t1"
    assert cache.get("r", "s", ["repository:c:pull"]) is None
    assert cache.get("other", "s", ["repository:a:pull"]) is None
    assert widen_scopes(["repository:a:pull"], ["repository:a:pull,push"]) == [
        "repository:a:pull,push",
        "repository:a:pull",
    ]


def test_link_header_and_origin_guard():
    url = "https://r.example/v2/_catalog?n=2"
    assert (
        next_link('</v2/_catalog?last=b&n=2>; rel="next"', url)
        == "https://r.example/v2/_catalog?last=b&n=2"
    )
    assert next_link('<https://x/y>; rel="prev"', url) is None
    assert same_origin("https://r.example/a", "https://r.example:443/b")
    assert not same_origin("https://r.example/a", "https://evil.example/a")
    assert not same_origin("https://r.example/a", "http://r.example/a")


def test_rate_limit_and_retry_after():
    limit = parse_rate_limit(
        {
            "RateLimit-Limit": "100;w=21600",
            "RateLimit-Remaining": "76;w=21600",
            "docker-ratelimit-source": "1.2.3.4",
        }
    )
    assert (limit.limit, limit.remaining, limit.window_seconds, limit.source) == (
        100,
        76,
        21600,
        "1.2.3.4",
    )
    assert parse_rate_limit({}) is None
    assert parse_retry_after("7") == 7 and parse_retry_after("junk") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0
    assert parse_retry_after("9999", cap=60) == 60


def _manifest(**extra):
    obj = {
        "schemaVersion": 2,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": "sha256:" + "1" * 64,
            "size": 10,
        },
        "layers": [],
    }
    obj.update(extra)
    return json.dumps(obj).encode()


def test_manifest_without_media_type_is_oci():
    m = parse_manifest(_manifest(), None, "sha256:x")
    assert (
        isinstance(m, ImageManifest)
        and m.media_type == "application/vnd.oci.image.manifest.v1+json"
    )
    idx = parse_manifest(
        json.dumps({"schemaVersion": 2, "manifests": []}).encode(), None, "sha256:y"
    )
    assert isinstance(idx, ImageIndex)


def test_schema1_malformed_and_artifacts():
    with pytest.raises(UnsupportedManifest, match="schema1"):
        parse_manifest(json.dumps({"schemaVersion": 1, "fsLayers": []}).encode(), None, "sha256:s1")
    with pytest.raises(ManifestError, match="not valid JSON"):
        parse_manifest(b"{nope", None, "sha256:z")
    with pytest.raises(ManifestError, match="no valid digest"):
        parse_manifest(
            json.dumps({"schemaVersion": 2, "config": {"size": 1}, "layers": []}).encode(),
            None,
            "d",
        )
    helm = json.loads(_manifest())
    helm["config"]["mediaType"] = "application/vnd.cncf.helm.config.v1+json"
    with pytest.raises(UnsupportedManifest, match="helm"):
        parse_manifest(json.dumps(helm).encode(), None, "sha256:h")


def test_platform_selection_variants_and_attestations():
    def desc(arch, variant=None, os="linux", extra=None):
        d = {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": f"sha256:{arch}{variant}",
            "size": 1,
            "platform": {"os": os, "architecture": arch},
        }
        if variant:
            d["platform"]["variant"] = variant
        d.update(extra or {})
        return d

    index = parse_manifest(
        json.dumps(
            {
                "schemaVersion": 2,
                "manifests": [
                    desc(
                        "unknown",
                        os="unknown",
                        extra={
                            "annotations": {"vnd.docker.reference.type": "attestation-manifest"}
                        },
                    ),
                    desc("arm", "v6"),
                    desc("arm", "v7"),
                    desc("arm64"),
                    desc("amd64"),
                ],
            }
        ).encode(),
        None,
        "sha256:i",
    )
    assert select_platform(index, Platform.parse("linux/arm64/v8")).digest == "sha256:arm64None"
    assert select_platform(index, Platform.parse("linux/arm/v7")).digest == "sha256:armv7"
    assert select_platform(index, Platform.parse("linux/amd64")).digest == "sha256:amd64None"
    with pytest.raises(UnsupportedManifest, match="available: linux/amd64, linux/arm/v6"):
        select_platform(index, Platform.parse("windows/amd64"))


def test_history_alignment_when_counts_differ():
    cfg = parse_config(
        json.dumps(
            {
                "rootfs": {"diff_ids": ["a", "b"]},
                "history": [{"created_by": "ENV x", "empty_layer": True}, {"created_by": "RUN b"}],
            }
        ).encode(),
        "c",
    )
    assert cfg.layer_history() == [None, "RUN b"]
    with pytest.raises(ManifestError, match="diff_ids"):
        parse_config(b'{"rootfs": {}}', "c")


def test_realm_refusals():
    from cr_agent.registry.auth import realm_refusal

    assert realm_refusal("https://auth.docker.io/token", "https://registry-1.docker.io") is None
    assert "plain http" in realm_refusal("http://auth.example/token", "https://reg.example")
    assert realm_refusal("http://auth.example/token", "https://reg.example", insecure=True) is None
    assert "link-local" in realm_refusal("http://169.254.169.254/latest", "http://reg.example")
    assert "link-local" in realm_refusal("https://127.0.0.1/token", "https://reg.example")
    # a registry on loopback may have its realm on loopback (tests, local mirrors)
    assert realm_refusal("http://127.0.0.1:5001/token", "http://127.0.0.1:5000") is None
    assert "not an http(s) URL" in realm_refusal("file:///etc/passwd", "https://reg.example")
