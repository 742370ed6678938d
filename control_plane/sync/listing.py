"""Reading a registry through its agent: repositories, then each repository's tags with
digest and push time.

The same calls whatever the integration type (the agent knows how to list a Docker
registry's catalog, ECR, GitHub or GitLab): ``GET /list`` for repositories, and
``GET /list-with-metadata/<repository>`` for tags. Where an answer would be too long for the
agent's bounds (``listing-too-long``), the listing pages through ``/list-paginated``
instead, without metadata for those tags. Brokered integrations go through the relay and the
customer's broker client (``${CR_CREDENTIALS}`` filled in there), direct ones to
``CR_AGENT_URL``: :class:`~control_plane.queue.dispatch.AgentBase` says which.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from control_plane.listed_names import PassedOver, listed_digest
from control_plane.queue.dispatch import AgentBase

#: repositories whose tags are read at once
CONCURRENCY = 8
PAGE_SIZE = 1000


class ListingError(Exception):
    """The agent or the registry failed; ``step`` names what was being read."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"{step}: {message}")
        self.step = step
        self.message = message


@dataclass(frozen=True)
class ListedTag:
    repository: str
    tag: str
    digest: str | None
    pushed_at: dt.datetime | None


def _time(value: object) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)


class _TooLong(Exception):
    pass


class Lister:
    """Lists one integration's registry through ``base`` (secrets inside: never log it)."""

    def __init__(self, http: aiohttp.ClientSession, base: AgentBase, *, timeout: float = 300):
        self.http = http
        self.base = base
        self.timeout = timeout
        self.passed_over = PassedOver(base.where)

    async def _get(self, step: str, path: str, params: dict[str, str] | None = None) -> Any:
        url = f"{self.base.url}{path}"
        try:
            async with self.http.get(
                url,
                params=params,
                headers=self.base.headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as resp:
                raw = await resp.read()
                status = resp.status
        except TimeoutError:
            raise ListingError(step, f"{self.base.where} did not answer in time") from None
        except aiohttp.ClientError as exc:
            raise ListingError(
                step, f"{self.base.where} unreachable: {type(exc).__name__}"
            ) from None
        try:
            answer = json.loads(raw) if raw else None
        except ValueError:
            answer = None
        if status == 200 and isinstance(answer, dict):
            return answer
        error = answer.get("error") if isinstance(answer, dict) else None
        code = error.get("code") if isinstance(error, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        if code == "listing-too-long":
            raise _TooLong(str(message))
        detail = message if isinstance(message, str) else f"answered {status}"
        raise ListingError(step, f"{self.base.where}: {detail}"[:500])

    async def _paged(self, step: str, repository: str) -> list[object]:
        """Every item of a paged listing, as the agent sent them (the callers check them)."""
        items: list[object] = []
        cursor: str | None = None
        while True:
            params = {"pageSize": str(PAGE_SIZE)}
            if cursor:
                params["cursor"] = cursor
            page = await self._get(step, f"/list-paginated/{quote(repository)}", params)
            found = page.get("items")
            items += found if isinstance(found, list) else []
            cursor = page.get("nextCursor")
            if not isinstance(cursor, str) or not cursor:
                return items

    async def repositories(self) -> list[str]:
        try:
            answer = await self._get("list-repositories", "/list")
            names = answer.get("repositories", [])
        except _TooLong:
            names = await self._paged("list-repositories", "")
        return sorted(set(self.passed_over.repositories(names if isinstance(names, list) else [])))

    async def tags(self, repository: str) -> list[ListedTag]:
        """Tags with digest and push time (``/list-with-metadata``)."""
        step = f"list-tags {repository}"
        try:
            answer = await self._get(step, f"/list-with-metadata/{quote(repository)}")
        except _TooLong:
            return await self.names(repository)
        tags = []
        entries = answer.get("tags")
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and self.passed_over.tag(entry.get("tag"), repository):
                tags.append(
                    ListedTag(
                        repository,
                        entry["tag"],
                        listed_digest(entry.get("digest")),
                        _time(entry.get("pushedAt")),
                    )
                )
        return tags

    async def names(self, repository: str) -> list[ListedTag]:
        """Tag names only (``/list/<repository>``, one registry call instead of one per tag)."""
        step = f"list-tags {repository}"
        try:
            answer = await self._get(step, f"/list/{quote(repository)}")
            names = answer.get("tags", [])
        except _TooLong:
            names = await self._paged(step, repository)
        listed = self.passed_over.tags(repository, names if isinstance(names, list) else [])
        return [ListedTag(repository, t, None, None) for t in listed]

    async def everything(
        self, needs_digests: frozenset[str] = frozenset()
    ) -> tuple[list[str], list[ListedTag]]:
        """Every repository and every tag; the first failure ends the listing.

        The first repository with tags is read with metadata: if the registry gives push
        times there (ECR, Docker Hub, GitHub, ...: one vendor call per repository), every
        repository is. If not (a plain Docker registry, where metadata costs one manifest
        request per tag, only for the digest), only the repositories in ``needs_digests``
        (where the sync holds projects whose digest may have moved) are; the others are
        read by name."""
        repositories = await self.repositories()
        found: dict[str, list[ListedTag]] = {}
        push_times = False
        for repository in repositories[:3]:
            found[repository] = await self.tags(repository)
            if found[repository]:
                push_times = any(t.pushed_at is not None for t in found[repository])
                break
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(repository: str) -> list[ListedTag]:
            async with gate:
                if push_times or repository in needs_digests:
                    return await self.tags(repository)
                return await self.names(repository)

        rest = [r for r in repositories if r not in found]
        results = await asyncio.gather(*(one(r) for r in rest))
        found.update(zip(rest, results, strict=True))
        self.passed_over.report()
        return repositories, [t for r in repositories for t in found[r]]
