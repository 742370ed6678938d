"""Request and response bodies of the agent's HTTP API and of its callbacks.

snyk's own bodies are not public, so these are ours; ``docs/openapi.json`` is generated from
them (see :mod:`cr_agent.service.openapi`). Every request model forbids unknown fields so a
typo is a 400 naming the field rather than a silently ignored option.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

SbomFormat = Literal["cyclonedx-json", "spdx-json", "native-json"]
JobState = Literal["queued", "running", "delivering", "done", "failed"]
ImageState = Literal["queued", "running", "succeeded", "failed"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")


# --------------------------------------------------------------------------- requests


class NoQuery(Strict):
    """Endpoints that take no query parameters."""


class PageQuery(Strict):
    pageSize: int = Field(100, ge=1, le=1000, description="items per page")
    cursor: str | None = Field(
        None, max_length=512, description="nextCursor of the previous page; absent for the first"
    )


class TagMetadataQuery(Strict):
    created: bool = Field(
        False,
        description="also read each image's config for its 'created' time (one manifest and "
        "config fetch per tag); useful where the registry has no push times",
    )
    platform: str = Field("linux/amd64", pattern=r"^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$")


class PlatformQuery(Strict):
    platform: str = Field(
        "linux/amd64",
        pattern=r"^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$",
        description="os/arch[/variant] chosen from a multi-platform index",
    )


class StateQuery(PlatformQuery):
    image: str = Field(
        ...,
        min_length=1,
        max_length=512,
        description="repository:tag or repository@sha256:... (repository without registry host)",
    )


class ScanRequest(Strict):
    """``POST /scan`` and ``POST /discover``."""

    images: list[str] = Field(
        ...,
        min_length=1,
        max_length=1000,
        description="repository:tag or repository@digest, repository without the registry host",
    )
    credentials: str | None = Field(
        None,
        max_length=65536,
        description="the base64 CR_CREDENTIALS blob; the Authorization header is used when absent",
    )
    callbackUrl: str | None = Field(
        None,
        max_length=2048,
        pattern=r"^https?://",
        description="the broker client's BROKER_CLIENT_URL; the agent's setting is used when absent",
    )
    callbackApiPrefix: Literal["/api", ""] = Field(
        "/api",
        description='"/api" for /api/v2/import/...; "" for the api-host variants /v2/import/...',
    )
    format: SbomFormat = "cyclonedx-json"
    platform: str = Field("linux/amd64", pattern=r"^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$")
    requestId: str | None = Field(None, max_length=200, description="echoed in every callback")
    context: dict[str, str | int | bool | None] | None = Field(
        None, description="opaque values echoed in every callback (org, integration, ...)"
    )

    @field_validator("credentials", "callbackUrl", mode="before")
    @classmethod
    def _empty_is_absent(cls, value: object) -> object:
        # the broker substitutes an unknown ${VAR} with "": fall back as if it were not sent
        return None if isinstance(value, str) and not value.strip() else value


# --------------------------------------------------------------------------- responses


class ErrorDetail(Open):
    code: str = Field(..., description="machine-readable kind, e.g. invalid-request, credentials")
    message: str
    field: str | None = Field(None, description="the request field or header that is wrong")
    step: str | None = Field(
        None, description="the step that failed: credentials, authenticate, list, manifest, ..."
    )


class ErrorResponse(Strict):
    error: ErrorDetail


class HealthResponse(Strict):
    ok: bool
    version: str
    activeOperations: int
    maxActiveOperations: int
    queuedJobs: int
    spooledCallbacks: int


class StepResult(Strict):
    step: str
    ok: bool
    message: str | None = None


class ValidateResponse(Strict):
    ok: bool
    type: str | None = None
    registry: str | None = Field(None, description="registry host the agent talked to")
    steps: list[StepResult]
    failedStep: str | None = Field(
        None, description="credentials | authenticate | list (with the reason in steps)"
    )
    reason: str | None = Field(
        None,
        description="credentials-invalid | credentials-refused | registry-unreachable | tls | "
        "listing-not-permitted | registry-error",
    )


class RepositoriesResponse(Strict):
    repositories: list[str]
    count: int


class TagsResponse(Strict):
    repository: str
    tags: list[str]
    count: int


class PageResponse(Strict):
    repository: str | None = Field(None, description="set when tags of a repository are listed")
    items: list[str]
    nextCursor: str | None = Field(None, description="absent on the last page")


class TagMetadata(Strict):
    tag: str
    digest: str | None = None
    pushedAt: datetime | None = Field(
        None, description="when the registry says the tag was pushed; null if it cannot say"
    )
    created: datetime | None = Field(None, description="the image config's created time")


class RepositoryTag(Strict):
    Key: str
    Value: str


class TagsWithMetadataResponse(Strict):
    repository: str
    tags: list[TagMetadata]
    count: int
    Tags: list[RepositoryTag] | None = Field(
        None,
        description="the repository's own resource tags in AWS's shape (ECR "
        "ListTagsForResource), e.g. for `.Tags | from_entries`; absent where the registry "
        "type has none or the role may not read them",
    )


class LayerInfo(Strict):
    digest: str
    size: int
    mediaType: str | None = None


class PlatformManifest(Strict):
    digest: str
    platform: str


class ImageMetadataResponse(Strict):
    repository: str
    reference: str
    digest: str = Field(
        ..., description="digest of what the reference points to (index or manifest)"
    )
    manifestDigest: str = Field(..., description="digest of the platform's image manifest")
    mediaType: str | None = None
    platform: str
    configDigest: str | None = None
    created: datetime | None = None
    layers: list[LayerInfo]
    size: int = Field(..., description="sum of the compressed layer sizes, bytes")
    labels: dict[str, str] = Field(default_factory=dict)
    manifests: list[PlatformManifest] = Field(
        default_factory=list, description="every platform of a multi-platform index"
    )


class StateIdentifierResponse(Strict):
    image: str
    stateIdentifier: str = Field(
        ..., description="stable while the image content is unchanged; derived from digests"
    )
    digest: str


class ScanAccepted(Strict):
    jobId: str
    status: JobState
    images: int
    statusPath: str


class ImageStatus(Strict):
    image: str
    status: ImageState
    digest: str | None = None
    packages: int | None = None
    error: ErrorDetail | None = None


class JobStatus(Strict):
    jobId: str
    kind: Literal["scan", "discover"]
    status: JobState
    requestId: str | None = None
    createdAt: datetime
    finishedAt: datetime | None = None
    images: list[ImageStatus]
    callbacksDelivered: int = Field(..., description="delivered at the first try (with retries)")
    callbacksSpooled: int = Field(..., description="sent to the spool at some point")
    callbacksPending: int = Field(..., description="still in the spool, waiting to be delivered")


# --------------------------------------------------------------------------- callbacks


class Chunk(Strict):
    index: int = Field(..., ge=0)
    count: int = Field(..., ge=1)
    fields: list[str] = Field(
        default_factory=list, description="the SBOM lists split across the chunks, sliced alike"
    )


class ResultCallback(Strict):
    """Body POSTed to ``<callback>/api/v2/import/result`` (``/v1/recurring-tests/...`` for discover).

    A result larger than the body limit is sent as several bodies with the same
    ``resultId``; each carries one slice of every SBOM list named in ``chunk.fields`` and
    the receiver concatenates the slices in ``chunk.index`` order.
    """

    jobId: str
    resultId: str
    requestId: str | None = None
    image: str
    status: Literal["success", "error"]
    digest: str | None = None
    platform: str | None = None
    distro: dict[str, Any] | None = None
    format: SbomFormat | None = None
    packageCount: int | None = None
    sbom: dict[str, Any] | None = None
    warnings: list[str] = Field(default_factory=list)
    error: ErrorDetail | None = None
    chunk: Chunk | None = None
    context: dict[str, Any] | None = None


class DoneCallback(Strict):
    """Body POSTed to ``<callback>/api/v2/import/done`` once every image of a job is done."""

    jobId: str
    requestId: str | None = None
    status: Literal["done", "failed"]
    succeeded: int
    failed: int
    images: list[ImageStatus]
    context: dict[str, Any] | None = None
