"""Query parameters as Snyk's REST API takes them.

Arrays are comma lists (``origins=ecr,gcr``, split after URL-decoding); the same parameter
repeated is merged for arrays and tolerated for scalars when every copy is identical;
a parameter the endpoint does not know is an error naming it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from aiohttp import web

from control_plane.errors import InvalidInput
from control_plane.pagination import DEFAULT_LIMIT, PageRequest, check_limit, decode_cursor

PAGINATION = frozenset({"limit", "starting_after", "ending_before"})
_TRUE = {"true", "1"}
_FALSE = {"false", "0"}


class Query:
    """The request's query string, checked against the parameters an endpoint accepts."""

    def __init__(self, request: web.Request, allowed: Iterable[str], *, rest: bool = True):
        self._query = request.query
        known = set(allowed) | ({"version"} if rest else set())
        for name, value in self._query.items():
            if "\x00" in name or "\x00" in value:
                raise InvalidInput(f"{name!r} must not contain a NUL character", parameter=name)
            if name not in known:
                raise InvalidInput(
                    f"unknown query parameter {name}; this endpoint takes "
                    + ", ".join(sorted(known)),
                    parameter=name,
                )

    def one(self, name: str) -> str | None:
        values = set(self._query.getall(name, []))
        if len(values) > 1:
            raise InvalidInput(
                f"{name} was given more than once with different values", parameter=name
            )
        return values.pop() if values else None

    def many(self, name: str) -> tuple[str, ...]:
        items: list[str] = []
        for raw in self._query.getall(name, []):
            items += [part.strip() for part in raw.split(",") if part.strip()]
        return tuple(dict.fromkeys(items))

    def choices(self, name: str, allowed: Iterable[str]) -> tuple[str, ...]:
        values = self.many(name)
        allowed = tuple(allowed)
        for value in values:
            if value not in allowed:
                raise InvalidInput(
                    f"{name} values must be among {', '.join(allowed)}; got {value!r}",
                    parameter=name,
                )
        return values

    def uuids(self, name: str) -> tuple[uuid.UUID, ...]:
        return tuple(self._uuid(name, v) for v in self.many(name))

    def one_uuid(self, name: str) -> uuid.UUID | None:
        value = self.one(name)
        return None if value is None else self._uuid(name, value)

    @staticmethod
    def _uuid(name: str, value: str) -> uuid.UUID:
        try:
            return uuid.UUID(value)
        except ValueError:
            raise InvalidInput(f"{name} must hold UUIDs; got {value!r}", parameter=name) from None

    def flag(self, name: str) -> bool | None:
        value = self.one(name)
        if value is None:
            return None
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise InvalidInput(f"{name} must be true or false; got {value!r}", parameter=name)

    def page(self) -> PageRequest:
        raw = self.one("limit")
        limit = DEFAULT_LIMIT
        if raw is not None:
            try:
                limit = int(raw)
            except ValueError:
                raise InvalidInput(
                    f"limit must be an integer; got {raw!r}", parameter="limit"
                ) from None
        check_limit(limit)
        after, before = self.one("starting_after"), self.one("ending_before")
        if after is not None and before is not None:
            raise InvalidInput(
                "starting_after and ending_before cannot be used together",
                parameter="ending_before",
            )
        return PageRequest(
            limit=limit,
            starting_after=decode_cursor(after, "starting_after") if after is not None else None,
            ending_before=decode_cursor(before, "ending_before") if before is not None else None,
        )


def path_uuid(request: web.Request, name: str) -> uuid.UUID:
    """A UUID from the path (``org_id``, ``project_id``, ...); 400 naming it when malformed."""
    try:
        return uuid.UUID(request.match_info[name])
    except ValueError:
        raise InvalidInput(f"{name} must be a UUID", parameter=name) from None
