"""``ecr``: Amazon ECR through a cross-account role.

The agent runs with its own AWS identity (instance role, env keys, profile: whatever boto3
finds) and assumes the customer's read-only role ``roleArn`` with ``extra.externalId`` in
``extra.region``. With the assumed role it lists repositories (``DescribeRepositories``),
tags with digests and push times (``DescribeImages``), a repository's own resource tags
(``ListTagsForResource``; a role without that permission just gets none) and gets a registry password
(``GetAuthorizationToken``, valid 12 hours, used as Basic ``AWS:<password>``).

Role credentials and registry tokens are cached per account, region and role, and refreshed
a safety margin before they expire. ``AWS_ENDPOINT_URL`` (moto in tests) points boto3
elsewhere. ``registryBase`` in the credentials, when present, overrides the token's
``proxyEndpoint`` (tests serve the registry part from a local registry; it is also how a
VPC endpoint or pull-through host is used).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.config
import botocore.exceptions

from cr_agent.registry.auth import RegistryAuth
from cr_agent.registry.errors import (
    AuthenticationError,
    NotFoundError,
    PermissionDenied,
    RegistryError,
    RegistryUnreachable,
)
from cr_agent.registry_types.base import (
    RegistryEndpoint,
    RegistryType,
    ResourceTag,
    TagInfo,
    TypeContext,
    normalise_base,
)
from shared.credentials import CredentialsError, RegistryCredentials
from shared.logging import get_logger, register_secrets

log = get_logger(__name__)

#: refresh this long before expiry, so a scan started now does not outlive its token
REFRESH_MARGIN_SECONDS = 15 * 60
#: GetAuthorizationToken tokens are valid for 12 hours (ECR documentation)
TOKEN_LIFETIME_SECONDS = 12 * 3600
ROLE_SESSION_NAME = "crbroker-cr-agent"
_CACHE_KEY = "ecr"


@dataclass(slots=True)
class _Cached:
    value: Any
    expires_at: float  # epoch seconds

    def fresh(self) -> bool:
        return time.time() < self.expires_at - REFRESH_MARGIN_SECONDS


@dataclass(slots=True)
class EcrToken:
    proxy_endpoint: str
    password: str


def account_of(role_arn: str) -> str:
    """The account id in ``arn:aws:iam::<account>:role/<name>``."""
    parts = role_arn.split(":")
    if len(parts) < 6 or parts[0] != "arn" or parts[2] != "iam" or not parts[4].isdigit():
        raise CredentialsError("roleArn is not an IAM role ARN (arn:aws:iam::<account>:role/...)")
    return parts[4]


class EcrRegistry(RegistryType):
    name = "ecr"
    catalog_first = False

    def check(self, creds: RegistryCredentials) -> None:
        if not creds.roleArn:
            raise CredentialsError("roleArn is required for type ecr")
        account_of(creds.roleArn)
        if creds.extra is None or not creds.extra.region:
            raise CredentialsError("extra.region is required for type ecr")

    def _cache(self, ctx: TypeContext) -> dict[tuple[str, ...], _Cached]:
        cache = ctx.caches.setdefault(_CACHE_KEY, {})
        assert isinstance(cache, dict)
        return cache

    def _key(self, creds: RegistryCredentials, what: str) -> tuple[str, ...]:
        assert creds.roleArn and creds.extra and creds.extra.region
        # the role and external id are part of the key: a request naming another role (or a
        # wrong external id) must go through STS itself, never reuse someone else's token
        who = hashlib.sha256(
            f"{creds.roleArn}\0{creds.extra.externalId or ''}".encode()
        ).hexdigest()
        return (what, account_of(creds.roleArn), creds.extra.region, who)

    def _config(self, ctx: TypeContext) -> botocore.config.Config:
        return botocore.config.Config(
            connect_timeout=min(ctx.timeout, 10.0),
            read_timeout=ctx.timeout,
            retries={"max_attempts": 2, "mode": "standard"},
        )

    def _client(
        self, service: str, ctx: TypeContext, region: str, creds: dict[str, str] | None
    ) -> Any:
        kwargs: dict[str, Any] = {"region_name": region, "config": self._config(ctx)}
        if ctx.aws_endpoint_url:
            kwargs["endpoint_url"] = ctx.aws_endpoint_url
        if ctx.insecure:
            kwargs["verify"] = False
        elif ctx.ca_file:
            kwargs["verify"] = ctx.ca_file
        if creds is not None:
            kwargs.update(
                aws_access_key_id=creds["AccessKeyId"],
                aws_secret_access_key=creds["SecretAccessKey"],
                aws_session_token=creds["SessionToken"],
            )
        return boto3.session.Session().client(service, **kwargs)

    async def _role_credentials(
        self, creds: RegistryCredentials, ctx: TypeContext
    ) -> dict[str, str]:
        key = self._key(creds, "role")
        cache = self._cache(ctx)
        hit = cache.get(key)
        if hit is not None and hit.fresh():
            return hit.value
        assert creds.extra and creds.extra.region and creds.roleArn
        region = creds.extra.region
        params: dict[str, Any] = {"RoleArn": creds.roleArn, "RoleSessionName": ROLE_SESSION_NAME}
        if creds.extra.externalId:
            params["ExternalId"] = creds.extra.externalId

        def assume() -> dict[str, Any]:
            sts = self._client("sts", ctx, region, None)
            return sts.assume_role(**params)

        answer = await _aws_call(assume, step="assume-role", ctx=ctx)
        role = answer["Credentials"]
        register_secrets(role["SecretAccessKey"], role["SessionToken"], role["AccessKeyId"])
        expires = role["Expiration"].timestamp()
        cache[key] = _Cached(value=role, expires_at=expires)
        log.info("assumed ECR role", account=account_of(creds.roleArn), region=region)
        return role

    async def _ecr_call(
        self, creds: RegistryCredentials, ctx: TypeContext, fn: Any, step: str
    ) -> Any:
        role = await self._role_credentials(creds, ctx)
        assert creds.extra and creds.extra.region
        region = creds.extra.region

        def call() -> Any:
            return fn(self._client("ecr", ctx, region, role))

        return await _aws_call(call, step=step, ctx=ctx)

    async def token(self, creds: RegistryCredentials, ctx: TypeContext) -> EcrToken:
        """A registry password for the role's account, from the cache while it is fresh."""
        key = self._key(creds, "token")
        cache = self._cache(ctx)
        hit = cache.get(key)
        if hit is not None and hit.fresh():
            return hit.value
        answer = await self._ecr_call(
            creds, ctx, lambda ecr: ecr.get_authorization_token(), "authenticate"
        )
        data = (answer.get("authorizationData") or [None])[0]
        if not data:
            raise AuthenticationError("ECR GetAuthorizationToken returned no token", "authenticate")
        decoded = base64.b64decode(data["authorizationToken"]).decode()
        _user, _, password = decoded.partition(":")
        register_secrets(data["authorizationToken"], password)
        token = EcrToken(proxy_endpoint=data["proxyEndpoint"], password=password)
        now = time.time()
        expires = data["expiresAt"].timestamp()
        if expires <= now or expires > now + TOKEN_LIFETIME_SECONDS:
            # an expiry in the past (or beyond the documented 12 h) means our clock and AWS's
            # disagree (or an emulator answered); trust the documented lifetime instead
            log.warning("ECR token expiry not plausible; assuming 12 h", account=key[1])
            expires = now + TOKEN_LIFETIME_SECONDS
        cache[key] = _Cached(value=token, expires_at=expires)
        return token

    async def endpoint(self, creds: RegistryCredentials, ctx: TypeContext) -> RegistryEndpoint:
        self.check(creds)
        token = await self.token(creds, ctx)
        base = creds.registryBase or token.proxy_endpoint
        return RegistryEndpoint(
            base_url=normalise_base(base),
            auth=RegistryAuth(username="AWS", password=token.password),
        )

    async def list_repositories_via_api(
        self, creds: RegistryCredentials, ctx: TypeContext, catalog_error: RegistryError | None
    ) -> list[str] | None:
        def describe(ecr: Any) -> list[str]:
            names: list[str] = []
            for page in ecr.get_paginator("describe_repositories").paginate():
                names += [r["repositoryName"] for r in page.get("repositories", [])]
            return names

        return await self._ecr_call(creds, ctx, describe, "list")

    async def tag_metadata(
        self, creds: RegistryCredentials, ctx: TypeContext, repository: str
    ) -> list[TagInfo] | None:
        def describe(ecr: Any) -> list[TagInfo]:
            tags: list[TagInfo] = []
            pages = ecr.get_paginator("describe_images").paginate(repositoryName=repository)
            for page in pages:
                for image in page.get("imageDetails", []):
                    for tag in image.get("imageTags") or []:
                        tags.append(
                            TagInfo(
                                tag=tag,
                                digest=image.get("imageDigest"),
                                pushed_at=image.get("imagePushedAt"),
                            )
                        )
            return tags

        return await self._ecr_call(creds, ctx, describe, "list-tags")

    async def repository_tags(
        self, creds: RegistryCredentials, ctx: TypeContext, repository: str
    ) -> list[ResourceTag] | None:
        def tags(ecr: Any) -> list[ResourceTag]:
            # ListTagsForResource wants the ARN; DescribeRepositories gives it, whatever
            # account the registry is in
            found = ecr.describe_repositories(repositoryNames=[repository])["repositories"]
            answer = ecr.list_tags_for_resource(resourceArn=found[0]["repositoryArn"])
            return [
                ResourceTag(key=tag["Key"], value=tag.get("Value") or "")
                for tag in answer.get("tags") or []
            ]

        return await self._ecr_call(creds, ctx, tags, "repository-tags")


async def _aws_call(fn: Any, *, step: str, ctx: TypeContext) -> Any:
    """Run a blocking boto3 call in a thread; AWS errors become registry errors for ``step``."""
    try:
        async with asyncio.timeout(ctx.timeout * 3):
            return await asyncio.to_thread(fn)
    except TimeoutError:
        raise RegistryUnreachable(f"AWS did not answer within {ctx.timeout * 3:g}s", step) from None
    except botocore.exceptions.NoCredentialsError:
        raise AuthenticationError(
            "the agent has no AWS identity of its own to assume the role with", step
        ) from None
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("AccessDenied", "AccessDeniedException") and step == "assume-role":
            raise AuthenticationError(
                f"STS refused to assume the role ({code})", step, status=status
            ) from None
        if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation"):
            raise PermissionDenied(
                f"the role may not do this on ECR ({code})", step, status=status
            ) from None
        if code in (
            "InvalidClientTokenId",
            "ExpiredToken",
            "SignatureDoesNotMatch",
            "UnrecognizedClientException",
        ):
            raise AuthenticationError(
                f"AWS refused the agent's identity ({code})", step, status=status
            ) from None
        if code in ("RepositoryNotFoundException", "ImageNotFoundException"):
            raise NotFoundError(f"ECR: {code}", step, status=status) from None
        raise RegistryError(
            f"AWS call failed ({code or 'unknown error'})", step, status=status
        ) from None
    except (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectTimeoutError):
        raise RegistryUnreachable("AWS endpoint unreachable", step) from None
    except botocore.exceptions.BotoCoreError as exc:
        raise RegistryError(f"AWS call failed ({exc.__class__.__name__})", step) from None


TYPE = EcrRegistry()
