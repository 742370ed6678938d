"""JSON:API request bodies: read, checked member by member, errors naming the JSON pointer."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from control_plane.errors import InvalidInput, TooLarge

ACCEPTED_TYPES = ("application/vnd.api+json", "application/json")
MAX_BODY = 1024 * 1024


class UnsupportedMediaType(InvalidInput):
    status = 415
    code = "unsupported-media-type"
    title = "Unsupported media type"


def _not_json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


async def _read_at_most(request: web.Request, limit: int) -> bytes:
    """The whole body, or TooLarge naming ``limit`` (``content.read(n)`` alone returns what
    has arrived so far, which cut large bodies short)."""
    raw = bytearray()
    while len(raw) <= limit:
        chunk = await request.content.read(limit + 1 - len(raw))
        if not chunk:
            return bytes(raw)
        raw += chunk
    raise TooLarge(f"the request body is larger than this API takes ({limit} bytes)", pointer="")


def parse_json(raw: bytes) -> Any:
    """``raw`` parsed as strict JSON (no NaN / Infinity, no NUL character in any string,
    which PostgreSQL cannot store); InvalidInput saying why it is not, and where."""
    try:
        doc = json.loads(raw, parse_constant=_not_json_constant)
    except RecursionError:
        raise InvalidInput(
            "body is not JSON this API takes: nested too deeply", pointer=""
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError, 4300+ digit integers
        raise InvalidInput(f"body is not JSON: {exc}", pointer="") from None
    where = _nul_at(doc)
    if where is not None:
        raise InvalidInput("text must not contain NUL (\\u0000) characters", pointer=where)
    return doc


def _nul_at(doc: Any) -> str | None:
    """The JSON pointer of the first member or string holding a NUL character, or None
    (walked without recursion: the document may be nested as deep as json.loads allows)."""
    stack: list[tuple[str, Any]] = [("", doc)]
    while stack:
        pointer, value = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return pointer
        elif isinstance(value, dict):
            for key, item in value.items():
                escaped = key.replace("~", "~0").replace("/", "~1")
                if "\x00" in key:
                    return f"{pointer}/{escaped}"
                stack.append((f"{pointer}/{escaped}", item))
        elif isinstance(value, list):
            stack.extend((f"{pointer}/{index}", item) for index, item in enumerate(value))
    return None


class Body:
    """The ``data`` object of a JSON:API document (``{"data": {"type", "id"?, "attributes",
    "relationships"?}}``)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    @classmethod
    async def read(
        cls, request: web.Request, kind: str, *, resource_id: uuid.UUID | None = None
    ) -> Body:
        if request.content_type not in ACCEPTED_TYPES:
            raise UnsupportedMediaType(
                f"Content-Type must be application/vnd.api+json, not {request.content_type or 'empty'}"
            )
        doc = parse_json(await _read_at_most(request, MAX_BODY))
        if not isinstance(doc, dict):
            raise InvalidInput("body must be a JSON:API document (an object)", pointer="")
        data = doc.get("data")
        if not isinstance(data, dict):
            raise InvalidInput("data must be a resource object", pointer="/data")
        if data.get("type") != kind:
            raise InvalidInput(f"data.type must be {kind!r}", pointer="/data/type")
        if resource_id is not None and "id" in data and data["id"] != str(resource_id):
            raise InvalidInput(
                "data.id must be the id of the resource in the URL", pointer="/data/id"
            )
        unknown = set(data) - {"type", "id", "attributes", "relationships", "meta"}
        if unknown:
            name = sorted(unknown)[0]
            raise InvalidInput(f"unknown member {name}", pointer=f"/data/{name}")
        return cls(data)

    def attributes(self, allowed: Iterable[str], *, required: Iterable[str] = ()) -> dict[str, Any]:
        attributes = self.data.get("attributes", {})
        if not isinstance(attributes, dict):
            raise InvalidInput("attributes must be an object", pointer="/data/attributes")
        allowed = set(allowed)
        for name in attributes:
            if name not in allowed:
                raise InvalidInput(
                    f"unknown attribute {name}; allowed: {', '.join(sorted(allowed))}",
                    pointer=f"/data/attributes/{name}",
                )
        for name in required:
            if name not in attributes:
                raise InvalidInput(f"{name} is required", pointer=f"/data/attributes/{name}")
        return attributes

    @staticmethod
    def _member(attributes: dict[str, Any], name: str, kind: type, what: str) -> Any:
        value = attributes.get(name)
        if value is not None and not isinstance(value, kind):
            raise InvalidInput(f"{name} must be {what}", pointer=f"/data/attributes/{name}")
        return value

    @classmethod
    def string(cls, attributes: dict[str, Any], name: str) -> str | None:
        value: str | None = cls._member(attributes, name, str, "a string")
        return value

    @classmethod
    def boolean(cls, attributes: dict[str, Any], name: str) -> bool | None:
        value: bool | None = cls._member(attributes, name, bool, "true or false")
        return value

    @staticmethod
    def integer(attributes: dict[str, Any], name: str, low: int, high: int) -> int | None:
        value = attributes.get(name)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise InvalidInput(
                f"{name} must be an integer from {low} to {high}",
                pointer=f"/data/attributes/{name}",
            )
        return value

    @classmethod
    def obj(cls, attributes: dict[str, Any], name: str) -> dict[str, Any] | None:
        value: dict[str, Any] | None = cls._member(attributes, name, dict, "an object")
        return value

    @staticmethod
    def strings(attributes: dict[str, Any], name: str) -> list[str] | None:
        value = attributes.get(name)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidInput(
                f"{name} must be a list of strings", pointer=f"/data/attributes/{name}"
            )
        return value

    @staticmethod
    def list_of_objects(value: Any, name: str, members: set[str]) -> list[dict[str, Any]]:
        pointer = f"/data/attributes/{name}"
        if not isinstance(value, list):
            raise InvalidInput(f"{name} must be a list", pointer=pointer)
        for index, item in enumerate(value):
            if not isinstance(item, dict) or set(item) != members:
                raise InvalidInput(
                    f"each {name} entry must be an object with exactly {', '.join(sorted(members))}",
                    pointer=f"{pointer}/{index}",
                )
            for key in members:
                if not isinstance(item[key], str):
                    raise InvalidInput(
                        f"{key} must be a string", pointer=f"{pointer}/{index}/{key}"
                    )
        return value

    def to_one(self, name: str, kind: str) -> tuple[uuid.UUID | None, bool]:
        """A to-one relationship: (id, False) set, (None, True) cleared, (None, False) absent."""
        relationships = self.data.get("relationships", {})
        pointer = "/data/relationships"
        if not isinstance(relationships, dict):
            raise InvalidInput("relationships must be an object", pointer=pointer)
        for other in relationships:
            if other != name:
                raise InvalidInput(f"unknown relationship {other}", pointer=f"{pointer}/{other}")
        if name not in relationships:
            return None, False
        rel = relationships[name]
        if not isinstance(rel, dict) or "data" not in rel:
            raise InvalidInput(f"{name} must be {{data: ...}}", pointer=f"{pointer}/{name}")
        data = rel["data"]
        if data is None:
            return None, True
        if not isinstance(data, dict) or data.get("type") != kind:
            raise InvalidInput(
                f"{name}.data must be {{type: {kind!r}, id}}", pointer=f"{pointer}/{name}/data"
            )
        try:
            return uuid.UUID(str(data.get("id"))), False
        except ValueError:
            raise InvalidInput(
                f"{name}.data.id must be a UUID", pointer=f"{pointer}/{name}/data/id"
            ) from None
