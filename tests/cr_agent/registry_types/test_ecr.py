"""ECR through STS against moto in server mode; the registry part from the local registry.

The credentials' ``registryBase`` overrides the token's ``proxyEndpoint`` (moto's is not a
real registry); everything else (AssumeRole with ExternalId, DescribeRepositories,
DescribeImages, GetAuthorizationToken, token caching) goes to moto over HTTP on loopback.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import boto3
import botocore.exceptions
import pytest

from cr_agent.registry_types.base import TypeContext
from cr_agent.registry_types.ecr import REFRESH_MARGIN_SECONDS, EcrRegistry, _aws_call
from deploy.processes import refused_port
from shared.credentials import decode_credentials, encode_credentials
from tests.cr_agent.service.agent import AgentFactory
from tests.cr_agent.service.images import debian_image, push_image
from tests.support import moto_server
from tests.support.registry import RunningRegistry

pytestmark = pytest.mark.registry

ACCOUNT = "123456789012"
REGION = "eu-west-1"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/SnykEcrServiceRole"


#: the module's moto server (STS, ECR)
moto_url = moto_server.moto_url


@pytest.fixture
def aws_identity(monkeypatch: pytest.MonkeyPatch, moto_url: str) -> str:
    """The agent's own AWS identity (what an instance role would provide)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAAGENTIDENTITY00")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "agent-own-secret-key")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return moto_url


def _ecr(moto_url: str) -> Any:
    return boto3.client(
        "ecr",
        region_name=REGION,
        endpoint_url=moto_url,
        aws_access_key_id="AKIASETUP0000000000",
        aws_secret_access_key="setup",
    )


@pytest.fixture
async def ecr_images(
    aws_identity: str, plain_registry: RunningRegistry, unique_repo: str
) -> dict[str, Any]:
    """One ECR repository with two tags, mirrored into the local registry."""
    ecr = _ecr(aws_identity)
    iam = boto3.client(
        "iam",
        region_name=REGION,
        endpoint_url=aws_identity,
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
    }
    try:
        iam.create_role(RoleName="SnykEcrServiceRole", AssumeRolePolicyDocument=json.dumps(trust))
    except iam.exceptions.EntityAlreadyExistsException:
        pass
    ecr.create_repository(repositoryName=unique_repo)
    digests, ecr_digests = {}, {}
    for tag, marker in (("1.0", "a"), ("2.0", "b")):
        image = debian_image(marker=marker)
        answer = ecr.put_image(
            repositoryName=unique_repo,
            imageManifest=image.manifest.decode(),
            imageManifestMediaType=image.media_type,
            imageTag=tag,
        )
        # moto computes its own digest for the manifest; the agent must report ECR's view
        ecr_digests[tag] = answer["image"]["imageId"]["imageDigest"]
        digests[tag] = await push_image(plain_registry, unique_repo, tag, image)
    return {"repo": unique_repo, "digests": digests, "ecr_digests": ecr_digests}


def ecr_creds(registry: RunningRegistry | None, external_id: str = "ext-123") -> str:
    obj: dict[str, Any] = {
        "type": "ecr",
        "roleArn": ROLE_ARN,
        "extra": {"region": REGION, "externalId": external_id},
    }
    if registry is not None:
        obj["registryBase"] = registry.url
    return encode_credentials(obj)


async def test_ecr_lists_repositories_and_tags_with_push_times(
    make_agent: AgentFactory,
    ecr_images: dict[str, Any],
    plain_registry: RunningRegistry,
    moto_url: str,
) -> None:
    agent = await make_agent(AWS_ENDPOINT_URL=moto_url)
    creds = ecr_creds(plain_registry)
    repo = ecr_images["repo"]

    status, body = await agent.get("/list", creds)
    assert status == 200, body
    assert repo in body["repositories"]

    status, body = await agent.get(f"/list-with-metadata/{repo}", creds)
    assert status == 200, body
    assert [t["tag"] for t in body["tags"]] == ["1.0", "2.0"]
    assert [t["digest"] for t in body["tags"]] == [
        ecr_images["ecr_digests"]["1.0"],
        ecr_images["ecr_digests"]["2.0"],
    ]
    assert all(t["pushedAt"] for t in body["tags"])


async def test_ecr_validate_and_pull_metadata_through_the_local_registry(
    make_agent: AgentFactory,
    ecr_images: dict[str, Any],
    plain_registry: RunningRegistry,
    moto_url: str,
) -> None:
    agent = await make_agent(AWS_ENDPOINT_URL=moto_url)
    creds = ecr_creds(plain_registry)
    status, body = await agent.get("/validate-credentials", creds)
    assert status == 200, body
    assert body["type"] == "ecr" and body["registry"] == plain_registry.host

    repo = ecr_images["repo"]
    status, body = await agent.get(f"/image-metadata/{repo}/2.0", creds)
    assert status == 200, body
    assert body["digest"] == ecr_images["digests"]["2.0"]


async def test_ecr_unreachable_aws_is_named(make_agent: AgentFactory, aws_identity: str) -> None:
    agent = await make_agent(
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{refused_port()}", REGISTRY_TIMEOUT=2
    )
    status, body = await agent.get("/validate-credentials", ecr_creds(None))
    assert status == 502, body
    assert body["failedStep"] == "authenticate"
    assert body["reason"] == "registry-unreachable"


async def test_ecr_without_an_agent_identity_says_so(
    make_agent: AgentFactory, moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    agent = await make_agent(AWS_ENDPOINT_URL=moto_url)
    status, body = await agent.get("/list", ecr_creds(None))
    assert status == 401, body
    assert body["error"]["step"] == "assume-role"
    assert "AWS identity" in body["error"]["message"]


@pytest.fixture
async def type_context(moto_url: str) -> AsyncIterator[TypeContext]:
    async with aiohttp.ClientSession() as http:
        yield TypeContext(http=http, timeout=10, aws_endpoint_url=moto_url)


async def test_token_is_cached_per_role_and_refreshed_before_expiry(
    aws_identity: str, type_context: TypeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    ecr = EcrRegistry()
    calls: list[str] = []
    original = EcrRegistry._ecr_call

    async def counting(self: EcrRegistry, creds: Any, ctx: Any, fn: Any, step: str) -> Any:
        calls.append(step)
        return await original(self, creds, ctx, fn, step)

    monkeypatch.setattr(EcrRegistry, "_ecr_call", counting)
    creds = decode_credentials(ecr_creds(None))
    first = await ecr.token(creds, type_context)
    second = await ecr.token(creds, type_context)
    assert first is second
    assert calls == ["authenticate"]
    assert first.proxy_endpoint.startswith("https://")

    # another external id must go through STS again, never reuse this token
    other = decode_credentials(ecr_creds(None, external_id="someone-else"))
    await ecr.token(other, type_context)
    assert calls == ["authenticate", "authenticate"]

    # a token close to its expiry is replaced before it is used
    cache = type_context.caches["ecr"]
    assert isinstance(cache, dict)
    for entry in cache.values():
        entry.expires_at = time.time() + REFRESH_MARGIN_SECONDS - 1
    await ecr.token(creds, type_context)
    assert calls == ["authenticate"] * 3


async def test_assume_role_carries_the_external_id_and_region(
    make_agent: AgentFactory,
    ecr_images: dict[str, Any],
    moto_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[dict[str, Any]] = []
    original = EcrRegistry._client

    def recording(self: EcrRegistry, service: str, ctx: Any, region: str, creds: Any) -> Any:
        client = original(self, service, ctx, region, creds)
        if service == "sts":
            client.meta.events.register(
                "provide-client-params.sts.AssumeRole",
                lambda params, **_: seen.append({**params, "region": client.meta.region_name}),
            )
        return client

    monkeypatch.setattr(EcrRegistry, "_client", recording)
    agent = await make_agent(AWS_ENDPOINT_URL=moto_url)
    status, body = await agent.get("/list", ecr_creds(None, external_id="ext-42"))
    assert status == 200, body
    assert seen == [
        {
            "RoleArn": ROLE_ARN,
            "RoleSessionName": "crbroker-cr-agent",
            "ExternalId": "ext-42",
            "region": REGION,
        }
    ]


async def test_ecr_scan_end_to_end(
    make_agent: AgentFactory,
    ecr_images: dict[str, Any],
    plain_registry: RunningRegistry,
    moto_url: str,
) -> None:
    from tests.fakes.callback_receiver import CallbackReceiver

    receiver = await CallbackReceiver().start()
    try:
        agent = await make_agent(AWS_ENDPOINT_URL=moto_url)
        repo = ecr_images["repo"]
        status, accepted = await agent.post(
            "/scan",
            {"images": [f"{repo}:1.0"], "callbackUrl": receiver.url},
            ecr_creds(plain_registry),
        )
        assert status == 202, accepted
        await receiver.wait_for("/api/v2/import/done")
        result = receiver.on("/api/v2/import/result")[0].json()
        assert result["status"] == "success", result
        assert result["digest"] == ecr_images["digests"]["1.0"]
        assert result["packageCount"] == 3
    finally:
        await receiver.stop()


async def test_ecr_endpoint_from_the_token_is_checked_against_allowed_registries(
    make_agent: AgentFactory, ecr_images: dict[str, Any], moto_url: str
) -> None:
    # no registryBase: the registry is the token's proxyEndpoint, known only after STS
    endpoint = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
    refused = await make_agent(AWS_ENDPOINT_URL=moto_url, CR_ALLOWED_REGISTRIES="other.example")
    status, body = await refused.get("/list", ecr_creds(None))
    assert status == 403, body
    assert body["error"]["code"] == "registry-not-allowed"
    assert body["error"]["registry"] == endpoint
    allowed = await make_agent(AWS_ENDPOINT_URL=moto_url, CR_ALLOWED_REGISTRIES=endpoint)
    status, body = await allowed.get("/list", ecr_creds(None))
    assert status == 200, body
    assert ecr_images["repo"] in body["repositories"]


#: the jq a catalog rule uses on AWS's tag shape (docs/ecr-tags.md): `port-<service>` keys
SERVICE_JQ = '.Tags | from_entries | keys[] | select(startswith("port-")) | .[5:]'


@pytest.fixture
def tagged_repositories(aws_identity: str, unique_repo: str) -> dict[str, str]:
    """Two ECR repositories: one with resource tags (two of them naming services), one without."""
    ecr = _ecr(aws_identity)
    tagged, bare = f"{unique_repo}/api", f"{unique_repo}/bare"
    ecr.create_repository(
        repositoryName=tagged,
        tags=[{"Key": "port-auth-service", "Value": ""}, {"Key": "team", "Value": "payments"}],
    )
    arn = ecr.describe_repositories(repositoryNames=[tagged])["repositories"][0]["repositoryArn"]
    # a tag added later (aws ecr tag-resource, as product document 002 does it)
    ecr.tag_resource(resourceArn=arn, tags=[{"Key": "port-billing", "Value": "owner"}])
    ecr.create_repository(repositoryName=bare)
    return {"tagged": tagged, "bare": bare, "moto_url": aws_identity}


def run_jq(expression: str, document: Any) -> subprocess.CompletedProcess[str]:
    jq = shutil.which("jq")
    if jq is None:
        pytest.skip("Debian's jq is not installed (make deps installs it)")
    return subprocess.run(
        [jq, "-r", expression],
        input=json.dumps(document),
        capture_output=True,
        text=True,
        timeout=30,
    )


async def test_ecr_repository_tags_in_aws_shape_and_the_documented_jq_finds_the_services(
    make_agent: AgentFactory, tagged_repositories: dict[str, str], plain_registry: RunningRegistry
) -> None:
    agent = await make_agent(AWS_ENDPOINT_URL=tagged_repositories["moto_url"])
    creds = ecr_creds(plain_registry)
    answers = {}
    for name in ("tagged", "bare"):
        status, answers[name] = await agent.get(
            f"/list-with-metadata/{tagged_repositories[name]}", creds
        )
        assert status == 200, answers[name]
    assert sorted(answers["tagged"]["Tags"], key=lambda t: t["Key"]) == [
        {"Key": "port-auth-service", "Value": ""},
        {"Key": "port-billing", "Value": "owner"},
        {"Key": "team", "Value": "payments"},
    ]
    assert answers["tagged"]["tags"] == [] and answers["tagged"]["count"] == 0
    assert answers["bare"]["Tags"] == []
    # Debian's jq, the expression of docs/ecr-tags.md, over the agent's answers
    found = {}
    for name, answer in answers.items():
        run = await asyncio.to_thread(run_jq, SERVICE_JQ, answer)
        assert run.returncode == 0, run.stderr
        found[name] = sorted(run.stdout.split())
    assert found == {"tagged": ["auth-service", "billing"], "bare": []}
    # the expression as product document 002 prints it (`keys` on a list, `.[6:]`) does not
    # work on this shape; the one in docs/ecr-tags.md is the one that does
    broken = await asyncio.to_thread(
        run_jq, '.Tags | keys[] | select(startswith("port-")) | .[6:]', answers["tagged"]
    )
    assert broken.returncode != 0 and "startswith() requires string inputs" in broken.stderr


async def test_a_role_that_may_not_read_repository_tags_still_lists(
    make_agent: AgentFactory,
    tagged_repositories: dict[str, str],
    plain_registry: RunningRegistry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = EcrRegistry._ecr_call

    async def denied(self: EcrRegistry, creds: Any, ctx: Any, fn: Any, step: str) -> Any:
        if step != "repository-tags":
            return await original(self, creds, ctx, fn, step)

        def refuse() -> None:
            # what AWS answers a role without ecr:ListTagsForResource
            raise botocore.exceptions.ClientError(
                {"Error": {"Code": "AccessDeniedException", "Message": "not authorized"}},
                "ListTagsForResource",
            )

        return await _aws_call(refuse, step=step, ctx=ctx)

    monkeypatch.setattr(EcrRegistry, "_ecr_call", denied)
    agent = await make_agent(AWS_ENDPOINT_URL=tagged_repositories["moto_url"])
    status, body = await agent.get(
        f"/list-with-metadata/{tagged_repositories['tagged']}", ecr_creds(plain_registry)
    )
    assert status == 200, body
    assert "Tags" not in body and body["tags"] == []
