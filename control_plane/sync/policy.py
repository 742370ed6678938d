"""The import policy of an integration: Snyk's ``container_registry_import_policy`` JSON.

``{"name", "schedule_frequency_hours" (>= 2, default 24), "delete_images" (default false),
"import_policy": rule}``; a rule is ``{"name"?, "type", "policy"?, "sub_policies"?}`` with
``type`` one of :data:`RULE_TYPES`; ``And`` / ``Or`` nest rules to any depth.

:func:`parse_policy` turns JSON into a :class:`SyncPolicy` or raises
:class:`~control_plane.errors.InvalidInput` naming the JSON pointer of every fault, in
document order (``/import_policy/sub_policies/1/policy/tag`` under the caller's base pointer).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from control_plane.errors import InvalidInput

RULE_TYPES = ("ImportAll", "ImportAllNew", "Regex", "Recent", "LastNObserved", "And", "Or")
MAX_DEPTH = 16
MAX_PATTERN = 1000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _compiled(value: str | None) -> str | None:
    if value is None:
        return None
    if len(value) > MAX_PATTERN:
        raise ValueError(f"a regular expression of at most {MAX_PATTERN} characters")
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"regular expression does not compile: {exc}") from None
    return value


class RegexParams(_Strict):
    repo: str | None = None
    tag: str | None = None

    _check = field_validator("repo", "tag")(_compiled)

    @model_validator(mode="after")
    def _one(self) -> RegexParams:
        if self.repo is None and self.tag is None:
            raise ValueError("give repo, tag or both")
        return self


class RecentParams(_Strict):
    max_age_days: int = Field(alias="maxAgeDays", ge=1, le=36500, strict=True)


class LastNParams(_Strict):
    limit_newest_images: int = Field(alias="limitNewestImages", ge=1, le=10000, strict=True)


class _Leaf(_Strict):
    name: str | None = Field(None, max_length=200)
    #: the spec's resource shows ``sub_policies: []`` on leaves: accepted when empty
    sub_policies: list[Any] | None = Field(None, max_length=0)


class ImportAll(_Leaf):
    type: Literal["ImportAll"]
    policy: dict[str, Any] | None = Field(None, max_length=0)


class ImportAllNew(_Leaf):
    type: Literal["ImportAllNew"]
    policy: dict[str, Any] | None = Field(None, max_length=0)


class Regex(_Leaf):
    type: Literal["Regex"]
    policy: RegexParams


class Recent(_Leaf):
    type: Literal["Recent"]
    policy: RecentParams


class LastNObserved(_Leaf):
    type: Literal["LastNObserved"]
    policy: LastNParams


class And(_Strict):
    type: Literal["And"]
    name: str | None = Field(None, max_length=200)
    policy: dict[str, Any] | None = Field(None, max_length=0)
    sub_policies: list[Rule] = Field(min_length=1, max_length=100)


class Or(_Strict):
    type: Literal["Or"]
    name: str | None = Field(None, max_length=200)
    policy: dict[str, Any] | None = Field(None, max_length=0)
    sub_policies: list[Rule] = Field(min_length=1, max_length=100)


Rule = Annotated[
    ImportAll | ImportAllNew | Regex | Recent | LastNObserved | And | Or,
    Field(discriminator="type"),
]


class SyncPolicy(_Strict):
    name: str = Field(min_length=1, max_length=200)
    schedule_frequency_hours: int = Field(24, ge=2, le=24 * 366, strict=True)
    delete_images: bool = Field(False, strict=True)
    import_policy: Rule

    def document(self) -> dict[str, Any]:
        """The policy as JSON, in the spec's member names (what is stored and rendered)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def _depth(rule: Any, level: int = 1) -> int:
    subs = getattr(rule, "sub_policies", None) or []
    return max([level] + [_depth(s, level + 1) for s in subs if isinstance(s, BaseModel)])


def _parts(loc: tuple[int | str, ...]) -> list[int | str]:
    # pydantic puts the discriminator's value in the location of a tagged union member
    return [p for p in loc if p not in RULE_TYPES]


def _pointer(base: str, parts: list[int | str]) -> str:
    return base + "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _document_order(
    data: Any, parts: list[int | str], positions: dict[int, dict[str, int]]
) -> list[tuple[int, int]]:
    """Where a location is in the given JSON: members in the order given, a missing member
    after its object's given ones (``positions`` caches each object's member positions)."""
    key = []
    for part in parts:
        if isinstance(data, dict) and part in data:
            if id(data) not in positions:
                positions[id(data)] = {name: i for i, name in enumerate(data)}
            key.append((0, positions[id(data)][str(part)]))
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            key.append((0, part))
            data = data[part]
        else:
            key.append((1, 0))
            break
    return key


def _message(error: ErrorDetails) -> str:
    kind = error["type"]
    if kind == "union_tag_invalid":
        return f"unknown policy type {error['input'].get('type')!r}; one of {', '.join(RULE_TYPES)}"
    if kind == "union_tag_not_found":
        return f"type is required; one of {', '.join(RULE_TYPES)}"
    if kind == "extra_forbidden":
        return "unknown member"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def parse_policy(data: Any, base: str = "") -> SyncPolicy:
    """A :class:`SyncPolicy` from JSON, or InvalidInput naming every JSON pointer at fault."""
    if not isinstance(data, dict):
        raise InvalidInput("the policy must be an object", pointer=base)
    try:
        policy = SyncPolicy.model_validate(data)
    except ValidationError as exc:
        faults = []
        positions: dict[int, dict[str, int]] = {}
        for error in exc.errors():
            parts = _parts(tuple(error["loc"]))
            if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
                parts.append("type")
            faults.append(
                (_document_order(data, parts, positions), _pointer(base, parts), _message(error))
            )
        faults.sort(key=lambda fault: fault[0])
        raise InvalidInput.several([(pointer, message) for _, pointer, message in faults]) from None
    if _depth(policy.import_policy) > MAX_DEPTH:
        raise InvalidInput(
            f"policies nest at most {MAX_DEPTH} levels deep", pointer=f"{base}/import_policy"
        )
    return policy


def merged(current: dict[str, Any], changes: dict[str, Any], base: str = "") -> SyncPolicy:
    """PATCH: the stored policy with the given top-level members replaced, validated whole."""
    return parse_policy({**current, **changes}, base)


And.model_rebuild()
Or.model_rebuild()
SyncPolicy.model_rebuild()
