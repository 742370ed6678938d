"""JSON:API rendering, written once: documents, error objects, pagination links, versions.

Views build resource objects (plain dicts) and hand them to :func:`document`; every error,
whether a domain refusal or an unknown route, leaves through :func:`error_response`, naming
the query parameter (``source.parameter``) or the body member (``source.pointer``) at fault;
a body with several faults (a sync policy) is one error object per fault, in document order.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from multidict import MultiMapping

from control_plane.errors import DomainError, InvalidInput
from control_plane.pagination import Page, encode_cursor

MEDIA_TYPE = "application/vnd.api+json"
JSONAPI = {"version": "1.0"}

#: Snyk's version grammar: a date, optionally ``~stability``, or a bare stability word
_VERSION = re.compile(
    r"^(?:(?P<date>\d{4}-\d{2}-\d{2})(?:~(?P<stability>wip|work-in-progress|experimental|beta))?"
    r"|(?P<bare>wip|work-in-progress|experimental|beta))$"
)
#: dates this API was released at; a request is served by the newest one not after its date
RELEASES = ("2021-06-04", "2024-05-31")


def iso(value: dt.datetime | None) -> str | None:
    """RFC 3339 in UTC with milliseconds and ``Z``, as Snyk writes timestamps."""
    if value is None:
        return None
    return (
        value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{value.microsecond // 1000:03d}Z"
    )


def served_version(requested: str) -> tuple[str, str]:
    """(version served, lifecycle stage) for a requested ``version``; InvalidInput if bad."""
    match = _VERSION.match(requested)
    if match is None:
        raise InvalidInput(
            f"version {requested!r} is not a date YYYY-MM-DD, optionally followed by "
            "~beta, ~experimental or ~wip",
            parameter="version",
        )
    stability = match["stability"] or match["bare"]
    if match["bare"]:
        served = RELEASES[-1]
    else:
        try:
            dt.date.fromisoformat(match["date"])
        except ValueError:
            raise InvalidInput(
                f"version {requested!r} is not a valid date", parameter="version"
            ) from None
        candidates = [r for r in RELEASES if r <= match["date"]]
        if not candidates:
            raise InvalidInput(
                f"version {requested!r} is older than this API's first release {RELEASES[0]}",
                parameter="version",
            )
        served = candidates[-1]
    if stability:
        return f"{served}~{stability}", stability
    return served, "ga"


def dumps(value: Any) -> str:
    # the documents are trees of dicts built per request: no cycle to look for
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, check_circular=False)


def json_response(body: Mapping[str, Any], status: int = 200) -> web.Response:
    return web.Response(text=dumps(body), status=status, content_type=MEDIA_TYPE)


def document(
    data: Any,
    *,
    links: Mapping[str, Any] | None = None,
    meta: Mapping[str, Any] | None = None,
    status: int = 200,
) -> web.Response:
    body: dict[str, Any] = {"jsonapi": JSONAPI, "data": data}
    if links is not None:
        body["links"] = links
    if meta is not None:
        body["meta"] = meta
    return json_response(body, status)


def error_object(
    status: int,
    title: str,
    detail: str,
    *,
    code: str | None = None,
    parameter: str | None = None,
    pointer: str | None = None,
) -> dict[str, Any]:
    error: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "status": str(status),
        "title": title,
        "detail": detail,
    }
    if code:
        error["code"] = code
    if parameter is not None:
        error["source"] = {"parameter": parameter}
    elif pointer is not None:
        error["source"] = {"pointer": pointer}
    return error


def error_response(status: int, title: str, detail: str, **where: Any) -> web.Response:
    return json_response(
        {"jsonapi": JSONAPI, "errors": [error_object(status, title, detail, **where)]}, status
    )


def domain_error_response(exc: DomainError) -> web.Response:
    """Each of a refusal's faults, then one error saying how many more were left out."""
    errors = [
        error_object(exc.status, exc.title, detail, parameter=exc.parameter, pointer=pointer)
        for pointer, detail in exc.faults
    ]
    if exc.more:
        errors.append(error_object(exc.status, exc.title, exc.more_detail))
    return json_response({"jsonapi": JSONAPI, "errors": errors}, exc.status)


def relationship(kind: str, ident: uuid.UUID | None, related: str | None) -> dict[str, Any]:
    """``{"data": {"type", "id"}, "links": {"related"}}``; data null when there is no id."""
    rel: dict[str, Any] = {"data": {"type": kind, "id": str(ident)} if ident else None}
    if related is not None and ident is not None:
        rel["links"] = {"related": related}
    return rel


def page_links(request: web.Request, page: Page[Any], *, base: str | None = None) -> dict[str, str]:
    """``self``, ``first`` and, where there is one, ``next`` / ``prev``: relative URLs that
    repeat every query parameter of the request (cursor parameters replaced)."""
    path = base or request.path
    kept = [
        (k, v)
        for k, v in _unique_pairs(request.query)
        if k not in ("starting_after", "ending_before")
    ]

    def link(extra: Iterable[tuple[str, str]] = ()) -> str:
        pairs = [*kept, *extra]
        return f"{path}?{urlencode(pairs)}" if pairs else path

    links = {"self": request.path_qs, "first": link()}
    if page.has_next and page.last_id is not None:
        links["next"] = link([("starting_after", encode_cursor(page.last_id))])
    if page.has_prev and page.first_id is not None:
        links["prev"] = link([("ending_before", encode_cursor(page.first_id))])
    return links


def _unique_pairs(query: MultiMapping[str]) -> list[tuple[str, str]]:
    """Query pairs with exact repeats dropped (clients that send ``limit`` twice)."""
    seen: set[tuple[str, str]] = set()
    pairs = []
    for pair in query.items():
        if pair not in seen:
            seen.add(pair)
            pairs.append(pair)
    return pairs
