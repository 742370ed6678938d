"""RegistryClient against Debian's docker-registry (plain, htpasswd, bearer realm)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from cr_agent.cli import scan_transport
from cr_agent.registry import (
    AuthenticationError,
    DigestMismatch,
    ManifestError,
    NotFoundError,
    RegistryAuth,
    RegistryClient,
    RegistryError,
    RegistryUnreachable,
    TlsError,
    UnsupportedManifest,
)
from cr_agent.registry.aiohttp_transport import AiohttpTransport
from cr_agent.registry.manifest import ImageIndex, ImageManifest
from tests.cr_agent.registry.tamper_proxy import Misbehaviour, TamperProxy
from tests.support.images import EmptyStep, Layer, build_image, build_index, push
from tests.support.registry import TokenRealm, running_registry

# every test taking client_over runs over both HTTP transports (aiohttp and stream): see conftest.py


def _image(arch: str = "amd64", variant: str | None = None, **kw):
    return build_image(
        [Layer({"etc/arch": arch.encode()}, created_by=f"COPY arch /etc/ # {arch}")],
        architecture=arch,
        variant=variant,
        **kw,
    )


async def _push(registry, repo, image, tag="v1"):
    return await asyncio.to_thread(
        push,
        registry.url,
        repo,
        image,
        tag=tag,
        username=registry.username,
        password=registry.password,
        ca_file=getattr(registry, "ca_file", None),
    )


def _client(client_over, registry, **kw):
    auth = RegistryAuth(registry.username, registry.password) if registry.username else None
    return client_over(registry.url, auth, **kw)


@pytest.mark.parametrize("flavour", ["plain", "htpasswd", "token"])
async def test_ping_list_and_resolve_on_each_auth_flavour(
    client_over, request, flavour, unique_repo
):
    registry = request.getfixturevalue(f"{flavour}_registry")
    image = _image()
    await _push(registry, unique_repo, image, tag="v1")
    await _push(registry, unique_repo, image, tag="v2")
    async with _client(client_over, registry) as client:
        ping = await client.ping()
        assert ping.scheme == {"plain": None, "htpasswd": "basic", "token": "bearer"}[flavour]
        assert sorted(await client.list_tags(unique_repo)) == ["v1", "v2"]
        repos = [r async for r in client.list_repositories()]
        assert unique_repo in repos
        resolved = await client.resolve_image(unique_repo, "v1")
        assert resolved.digest == image.digest
        assert resolved.config.diff_ids == image.diff_ids
        assert (await client.head_manifest(unique_repo, "v2")).digest == image.digest


async def test_wrong_password_is_an_authentication_error(
    client_over, htpasswd_registry, token_registry
):
    for registry in (htpasswd_registry, token_registry):
        async with client_over(registry.url, RegistryAuth("scanner", "wrong")) as client:
            with pytest.raises(AuthenticationError, match="refused"):
                await client.ping()


async def test_anonymous_against_auth_registry_names_the_problem(
    client_over, htpasswd_registry, token_registry
):
    async with client_over(htpasswd_registry.url) as client:
        with pytest.raises(AuthenticationError, match="requires credentials"):
            await client.list_tags("any/repo")
    async with client_over(token_registry.url) as client:
        with pytest.raises(AuthenticationError, match="requires credentials"):
            await client.list_tags("any/repo")


async def test_bearer_tokens_cached_per_scope_and_widened(client_over, token_registry, unique_repo):
    realm = token_registry.realm
    await _push(token_registry, unique_repo, _image(), tag="a")
    await _push(token_registry, unique_repo + "-b", _image(), tag="a")
    async with _client(client_over, token_registry) as client:
        await client.ping()
        before = len(realm.requests)
        for _ in range(3):
            await client.get_manifest(unique_repo, "a")
        assert len(realm.requests) == before + 1  # one token for the repository scope
        assert realm.requests[-1].scopes == [f"repository:{unique_repo}:pull"]
        await client.get_manifest(unique_repo + "-b", "a")
        assert realm.requests[-1].scopes == [f"repository:{unique_repo}-b:pull"]
        await client.get_manifest(unique_repo, "a")  # first token still cached
        assert len(realm.requests) == before + 2


async def test_oauth2_refresh_token_post_and_access_token_only(client_over, unique_repo):
    realm = TokenRealm(users={"scanner": "pw"}, response_keys=("access_token",))
    realm.refresh_tokens["refresh-abc"] = "scanner"
    with running_registry("token", username="scanner", password="pw", realm=realm) as registry:
        await _push(registry, unique_repo, _image())
        async with client_over(registry.url, RegistryAuth(identity_token="refresh-abc")) as c:
            assert (await c.resolve_image(unique_repo, "v1")).digest
        assert any(r.method == "POST" and r.grant_type == "refresh_token" for r in realm.requests)
        async with client_over(registry.url, RegistryAuth(identity_token="bad")) as c:
            with pytest.raises(AuthenticationError):
                await c.get_manifest(unique_repo, "v1")


async def test_catalog_pagination_follows_link_pages(client_over, plain_registry, unique_repo):
    names = [f"{unique_repo}-{i}" for i in range(5)]
    for name in names:
        await _push(plain_registry, name, _image())
    async with _client(client_over, plain_registry) as client:
        seen = [r async for r in client.list_repositories(page_size=2)]
    assert set(names) <= set(seen)
    assert len(seen) == len(set(seen))


async def test_manifest_kinds_and_platform_selection(client_over, plain_registry, unique_repo):
    amd, arm = _image("amd64"), _image("arm64", "v8")
    docker_img = _image("amd64", flavour="docker")
    no_media = _image("amd64", include_media_type=False)
    await _push(plain_registry, unique_repo, build_index([amd, arm]), tag="multi")
    await _push(
        plain_registry, unique_repo, build_index([docker_img], flavour="docker"), tag="list"
    )
    await _push(plain_registry, unique_repo, build_index([build_index([amd, arm])]), tag="nested")
    await _push(plain_registry, unique_repo, no_media, tag="bare")
    async with _client(client_over, plain_registry) as client:
        top = await client.get_manifest(unique_repo, "multi")
        assert isinstance(top, ImageIndex)
        assert (await client.resolve_image(unique_repo, "multi")).digest == amd.digest
        res = await client.resolve_image(unique_repo, "multi", platform="linux/arm64")
        assert res.digest == arm.digest and res.index_digest == top.digest
        assert (await client.resolve_image(unique_repo, "list")).digest == docker_img.digest
        assert (
            await client.resolve_image(unique_repo, "nested", "linux/arm64/v8")
        ).digest == arm.digest
        bare = await client.get_manifest(unique_repo, "bare")
        assert isinstance(bare, ImageManifest) and bare.digest == no_media.digest
        with pytest.raises(
            UnsupportedManifest, match=r"linux/s390x.*available: linux/amd64, linux/arm64/v8"
        ):
            await client.resolve_image(unique_repo, "multi", platform="linux/s390x")
        with pytest.raises(NotFoundError):
            await client.get_manifest(unique_repo, "nope")
        by_digest = await client.get_manifest(unique_repo, arm.digest)
        assert by_digest.digest == arm.digest


async def test_non_image_artifact_is_unsupported(client_over, plain_registry, unique_repo):
    helm = build_image(
        [Layer({"chart.tgz": b"x"})],
        config_extra=None,
        manifest_extra={"artifactType": "application/vnd.cncf.helm.chart.v1"},
    )
    await _push(plain_registry, unique_repo, helm, tag="chart")
    async with _client(client_over, plain_registry) as client:
        with pytest.raises(
            UnsupportedManifest, match=r"artifact of type application/vnd\.cncf\.helm"
        ):
            await client.resolve_image(unique_repo, "chart")


@pytest.fixture
async def proxy(plain_registry):
    p = await TamperProxy(plain_registry.url).start()
    yield p
    await p.stop()


async def test_blob_redirect_to_other_host_drops_authorization(
    client_over, plain_registry, proxy, unique_repo
):
    image = _image()
    await _push(plain_registry, unique_repo, image)
    proxy.redirect_blobs_to = proxy.storage_url
    async with client_over(proxy.url, RegistryAuth(bearer_token="registry-secret")) as client:
        resolved = await client.resolve_image(unique_repo, "v1")
        async with client.open_blob(unique_repo, image.layer_digests[0]) as stream:
            data = b"".join([c async for c in stream.chunks()])
    assert data == image.blobs[image.layer_digests[0]]
    assert resolved.digest == image.digest
    assert proxy.storage_auth_seen and all(a is None for a in proxy.storage_auth_seen)
    assert any(a == "Bearer registry-secret" for _, _, a in proxy.seen)


async def test_corrupt_blob_is_a_digest_mismatch(client_over, plain_registry, proxy, unique_repo):
    image = _image()
    await _push(plain_registry, unique_repo, image)
    proxy.corrupt_blobs = True
    async with client_over(proxy.url) as client:
        with pytest.raises(DigestMismatch, match="hashes to"):
            await client.resolve_image(unique_repo, "v1")


async def test_malformed_manifest_json_is_a_clear_error(
    client_over, plain_registry, proxy, unique_repo
):
    await _push(plain_registry, unique_repo, _image())
    proxy.body_override[r"/manifests/v1$"] = b'{"schemaVersion": 2, "layers": [oops'
    async with client_over(proxy.url) as client:
        with pytest.raises(ManifestError, match="not valid JSON"):
            await client.get_manifest(unique_repo, "v1")


async def test_manifest_digest_mismatch_by_digest_reference(
    client_over, plain_registry, proxy, unique_repo
):
    image = _image()
    await _push(plain_registry, unique_repo, image)
    other = json.loads(image.manifest)
    other["annotations"] = {"x": "y"}
    proxy.body_override[r"/manifests/sha256:"] = json.dumps(other).encode()
    async with client_over(proxy.url) as client:
        with pytest.raises(DigestMismatch):
            await client.get_manifest(unique_repo, image.digest)


async def test_retries_honour_retry_after_and_expose_rate_limit(
    client_over, plain_registry, proxy, unique_repo
):
    await _push(plain_registry, unique_repo, _image())
    proxy.failures.append(
        Misbehaviour(
            "GET",
            r"/manifests/",
            429,
            {
                "Retry-After": "1",
                "ratelimit-limit": "100;w=21600",
                "ratelimit-remaining": "0;w=21600",
            },
        )
    )
    proxy.failures.append(Misbehaviour("GET", r"/manifests/", 503))
    proxy.extra_headers = {"ratelimit-limit": "100;w=21600", "ratelimit-remaining": "42;w=21600"}
    async with client_over(proxy.url, backoff=0.01) as client:
        start = time.monotonic()
        await client.get_manifest(unique_repo, "v1")
        assert time.monotonic() - start >= 0.95
        assert client.rate_limit is not None
        assert (client.rate_limit.limit, client.rate_limit.remaining) == (100, 42)
        assert client.rate_limit.window_seconds == 21600
    proxy.failures.append(Misbehaviour("GET", r"/manifests/", 500, times=10))
    async with client_over(proxy.url, backoff=0.01, retries=3) as client:
        with pytest.raises(RegistryUnreachable, match="after 3 attempts: HTTP 500"):
            await client.get_manifest(unique_repo, "v1")


async def test_pagination_link_to_another_host_is_refused(
    client_over, plain_registry, proxy, unique_repo
):
    await _push(plain_registry, unique_repo, _image())
    proxy.link_override = '<http://169.254.169.254/v2/_catalog?n=1&last=x>; rel="next"'
    async with client_over(proxy.url) as client:
        with pytest.raises(RegistryError, match="another host"):
            _ = [r async for r in client.list_repositories()]


async def test_unreachable_registry(client_over):
    from deploy.processes import refused_port

    async with client_over(f"http://127.0.0.1:{refused_port()}", retries=2, backoff=0.01) as c:
        with pytest.raises(RegistryUnreachable, match="ping"):
            await c.ping()


async def test_tls_verified_by_default_with_ca_bundle_and_insecure_switch(client_over, unique_repo):
    with running_registry("none", tls=True) as registry:
        await _push(registry, unique_repo, _image())
        async with client_over(registry.url, retries=1) as client:
            with pytest.raises(TlsError, match="not trusted"):
                await client.ping()
        async with client_over(registry.url, ca_file=registry.ca_file) as client:
            assert (await client.resolve_image(unique_repo, "v1")).digest
        async with client_over(registry.url, insecure=True) as client:
            assert (await client.ping()).status == 200


async def test_history_alignment_skips_empty_layers(client_over, plain_registry, unique_repo):
    image = build_image(
        [
            EmptyStep("ARG X=1"),
            Layer({"a": b"1"}, created_by="RUN one"),
            EmptyStep("ENV A=b"),
            Layer({"b": b"2"}, created_by="RUN two"),
            EmptyStep('CMD ["sh"]'),
        ]
    )
    await _push(plain_registry, unique_repo, image)
    async with _client(client_over, plain_registry) as client:
        resolved = await client.resolve_image(unique_repo, "v1")
    assert resolved.config.layer_history() == ["RUN one", "RUN two"]


async def test_silent_server_times_out_instead_of_hanging(client_over):
    # accepts the connection, never answers: the read timeout and bounded retries end it
    async def swallow(reader, writer):
        await reader.read(65536)
        await asyncio.sleep(30)
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with client_over(
            f"http://127.0.0.1:{port}", timeout=0.3, retries=2, backoff=0.01
        ) as c:
            start = time.monotonic()
            with pytest.raises(RegistryUnreachable, match="after 2 attempts"):
                await c.ping()
            assert time.monotonic() - start < 5
    finally:
        server.close()


async def test_tags_list_when_the_registry_ignores_n(client_over, plain_registry, unique_repo):
    # docker-registry answers tags/list in one page whatever n says, without a Link header
    image = _image()
    for tag in ("a", "b", "c", "d", "e"):
        await _push(plain_registry, unique_repo, image, tag=tag)
    async with _client(client_over, plain_registry) as client:
        assert sorted(await client.list_tags(unique_repo, page_size=2)) == ["a", "b", "c", "d", "e"]
        with pytest.raises(NotFoundError):
            await client.list_tags(unique_repo + "-missing")


async def test_anonymous_bearer_token_for_public_pulls(client_over, unique_repo):
    # Docker Hub style: no credentials, the realm still issues a pull token
    realm = TokenRealm(users={"pusher": "pw"}, anonymous_pull=True)
    with running_registry("token", username="pusher", password="pw", realm=realm) as registry:
        image = _image()
        await _push(registry, unique_repo, image)
        async with client_over(registry.url) as client:
            assert (await client.ping()).scheme == "bearer"
            assert (await client.resolve_image(unique_repo, "v1")).digest == image.digest
        anonymous = [r for r in realm.requests if r.user is None and r.method == "GET"]
        assert anonymous and anonymous[-1].scopes == [f"repository:{unique_repo}:pull"]


async def test_registry_under_a_path_prefix(client_over, plain_registry, unique_repo):
    image = _image()
    await _push(plain_registry, unique_repo, image)
    prefixed = await TamperProxy(plain_registry.url, prefix="/artifactory/api/docker/repo").start()
    try:
        async with client_over(prefixed.url + "/artifactory/api/docker/repo") as client:
            assert (await client.ping()).status == 200
            assert await client.list_tags(unique_repo) == ["v1"]
            assert (await client.resolve_image(unique_repo, "v1")).digest == image.digest
    finally:
        await prefixed.stop()


async def test_http_proxy_from_the_environment(plain_registry, unique_repo, monkeypatch):
    # the registry's name does not resolve; only the proxy named in HTTP_PROXY can reach it
    image = _image()
    await _push(plain_registry, unique_repo, image)
    forward = await TamperProxy(plain_registry.url).start()
    try:
        monkeypatch.setenv("HTTP_PROXY", forward.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        url = "http://registry.invalid:5000"
        # the service's transport, and the one `cr-agent scan` chooses when a proxy is set
        for transport in (
            AiohttpTransport(None, 60.0),
            scan_transport(url, ca_file=None, insecure=False, timeout=60.0),
        ):
            assert isinstance(transport, AiohttpTransport)
            forward.seen.clear()
            async with RegistryClient(url, transport=transport, retries=1) as client:
                assert (await client.resolve_image(unique_repo, "v1")).digest == image.digest
            assert any(p.endswith("/manifests/v1") for _, p, _ in forward.seen)
    finally:
        await forward.stop()


async def test_token_is_refreshed_before_it_expires(
    client_over, token_registry, unique_repo, monkeypatch
):
    import cr_agent.registry.auth as auth_module

    await _push(token_registry, unique_repo, _image())
    realm = token_registry.realm
    clock = [time.monotonic()]
    monkeypatch.setattr(auth_module, "clock", lambda: clock[0])
    async with _client(client_over, token_registry) as client:
        await client.get_manifest(unique_repo, "v1")
        first = len(realm.requests)
        clock[0] += realm.expires_in - 60  # well inside the lifetime: cached token reused
        await client.get_manifest(unique_repo, "v1")
        assert len(realm.requests) == first
        clock[0] += 45  # within the refresh margin before expiry: a new token, no 401 first
        await client.get_manifest(unique_repo, "v1")
        assert len(realm.requests) == first + 1
