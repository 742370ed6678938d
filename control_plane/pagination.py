"""Keyset pagination, written once for every list: pages cut by id, cursors opaque.

Ids are time-ordered (:mod:`control_plane.ids`), so "after this id" is "newer than this row"
and a page costs an index range scan however deep it is. A cursor is ``v1.`` + urlsafe
base64 of ``{"id": "<uuid>"}`` (Snyk's cursors look the same).
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from control_plane.errors import InvalidInput

T = TypeVar("T")

DEFAULT_LIMIT = 10
MIN_LIMIT = 10
MAX_LIMIT = 100
LIMIT_STEP = 10


@dataclass(frozen=True)
class PageRequest:
    limit: int = DEFAULT_LIMIT
    starting_after: uuid.UUID | None = None
    ending_before: uuid.UUID | None = None


@dataclass(frozen=True)
class Page(Generic[T]):
    items: Sequence[T]
    #: there are rows after the last item / before the first
    has_next: bool
    has_prev: bool

    @property
    def first_id(self) -> uuid.UUID | None:
        return getattr(self.items[0], "id", None) if self.items else None

    @property
    def last_id(self) -> uuid.UUID | None:
        return getattr(self.items[-1], "id", None) if self.items else None


def encode_cursor(ident: uuid.UUID) -> str:
    raw = json.dumps({"id": str(ident)}, separators=(",", ":")).encode()
    return "v1." + base64.urlsafe_b64encode(raw).decode()


def decode_cursor(cursor: str, parameter: str) -> uuid.UUID:
    """The id in a cursor; :class:`InvalidInput` naming ``parameter`` when it is not ours."""
    try:
        if not cursor.startswith("v1."):
            raise ValueError
        body = base64.urlsafe_b64decode(cursor[3:] + "=" * (-len(cursor[3:]) % 4))
        return uuid.UUID(json.loads(body)["id"])
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError, binascii.Error):
        raise InvalidInput(
            f"{parameter} is not a cursor this server handed out", parameter=parameter
        ) from None


def check_limit(limit: int) -> int:
    if not MIN_LIMIT <= limit <= MAX_LIMIT or limit % LIMIT_STEP:
        raise InvalidInput(
            f"limit must be between {MIN_LIMIT} and {MAX_LIMIT} in steps of {LIMIT_STEP}, got {limit}",
            parameter="limit",
        )
    return limit


async def fetch_page(
    session: AsyncSession,
    query: Select[Any],
    id_column: InstrumentedAttribute[uuid.UUID],
    page: PageRequest,
    *,
    rows: bool = False,
) -> Page[Any]:
    """Run ``query`` (already filtered) for one page, oldest first: ORM entities, or with
    ``rows`` the result rows of a multi-column select (each with an ``id``).

    One row more than asked says whether another page follows; whether one precedes is
    known from the cursor (a page reached by a cursor has rows on the cursor's side).
    """
    if page.ending_before is not None:
        query = query.where(id_column < page.ending_before).order_by(id_column.desc())
    else:
        if page.starting_after is not None:
            query = query.where(id_column > page.starting_after)
        query = query.order_by(id_column)
    # callers eager-load to-one relationships by join and collections by selectin, so rows
    # are never repeated and need no unique() pass
    limited = query.limit(page.limit + 1)
    found: list[Any] = (
        list((await session.execute(limited)).all())
        if rows
        else list(await session.scalars(limited))
    )
    more = len(found) > page.limit
    found = found[: page.limit]
    if page.ending_before is not None:
        found.reverse()
        return Page(found, has_next=True, has_prev=more)
    return Page(found, has_next=more, has_prev=page.starting_after is not None)
