"""Request and response bodies of the agent's HTTP API and of its callbacks.

snyk's own bodies are not public, so these are ours; ``docs/openapi.json`` is generated from
them (see :mod:`cr_agent.service.openapi`). Every request model forbids unknown fields so a
typo is a 400 naming the field rather than a silently ignored option.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: shape of the request-supplied identifiers the agent echoes upstream (requestId, context
#: values): enough for UUIDs, ULIDs and dotted names, too little to carry a URL or a document
SAFE_ID = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
_SAFE_ID = re.compile(SAFE_ID)
_CONTEXT_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{0,63}$")
MAX_CONTEXT_KEYS = 16
#: an image as the API takes it: optional host[:port]/ (with a dot, a port or localhost),
#: lowercase repository path, tag, digest
_IMAGE = re.compile(
    r"^(?:(?:localhost|[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)(?::[0-9]+)?/|[A-Za-z0-9-]+:[0-9]+/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?"
    r"(?:@[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,})?$",
    re.ASCII,
)
#: what an upstream sends when the broker client did not substitute the callback URL
CALLBACK_PLACEHOLDER = "${BROKER_CLIENT_URL}"

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
        description="must name the agent's own BROKER_CLIENT_URL (same scheme, host, port and "
        "path); any other URL is a 400 unless the agent runs with "
        "CR_AGENT_ALLOW_REQUEST_CALLBACK_URL=true. Absent: the agent's setting",
    )
    callbackApiPrefix: Literal["/api", ""] = Field(
        "/api",
        description='"/api" for /api/v2/import/...; "" for the api-host variants /v2/import/...',
    )
    format: SbomFormat = "cyclonedx-json"
    platform: str = Field("linux/amd64", pattern=r"^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$")
    requestId: str | None = Field(
        None,
        pattern=SAFE_ID,
        description="echoed in every callback: letters, digits and . _ : - only, at most 128",
    )
    context: dict[str, str | int | bool | None] | None = Field(
        None,
        max_length=MAX_CONTEXT_KEYS,
        description="values echoed in every callback (org, integration, ...): at most "
        f"{MAX_CONTEXT_KEYS} keys of letters, digits and . _ -; string values shaped like "
        "requestId",
    )

    @field_validator("credentials", "callbackUrl", mode="before")
    @classmethod
    def _empty_is_absent(cls, value: object) -> object:
        # the broker substitutes an unknown ${VAR} with "": fall back as if it were not sent;
        # a placeholder left as it was (substitution off) means the same
        if isinstance(value, str) and (not value.strip() or value.strip() == CALLBACK_PLACEHOLDER):
            return None
        return value

    @field_validator("images")
    @classmethod
    def _image_shapes(cls, images: list[str]) -> list[str]:
        # every image name is echoed in the callbacks: only names that are references
        for index, image in enumerate(images):
            if len(image) > 512 or _IMAGE.match(image) is None:
                raise ValueError(
                    f"images[{index}] is not [host/]repository[:tag][@digest] "
                    "(lowercase repository, at most 512 characters)"
                )
        return images

    @field_validator("context")
    @classmethod
    def _context_shape(
        cls, value: dict[str, str | int | bool | None] | None
    ) -> dict[str, str | int | bool | None] | None:
        for key, item in (value or {}).items():
            if _CONTEXT_KEY.match(key) is None:
                raise ValueError(f"context key {key[:40]!r} is not letters, digits and . _ -")
            if isinstance(item, str) and _SAFE_ID.match(item) is None:
                raise ValueError(
                    f"context.{key} is not letters, digits and . _ : - (at most 128 characters)"
                )
        return value


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
        "listing-not-permitted | registry-not-allowed | registry-error",
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
