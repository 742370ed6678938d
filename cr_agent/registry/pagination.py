"""``Link: <...>; rel="next"`` pagination for ``_catalog`` and ``tags/list``, and the bounds
on what one listing may read.

A registry whose pages never end (or whose pages are huge) must not grow the agent's memory
without bound: a listing stops at :class:`ListingLimits` and fails with
:class:`~cr_agent.registry.errors.ListingTooLong` naming the limit, rather than answer a list
the caller cannot tell is incomplete.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from cr_agent.registry.errors import ListingTooLong

_LINK = re.compile(r"<([^>]*)>\s*((?:;\s*[^,;]+)*)")

MAX_PAGE_SIZE = 1000  # ECR rejects n > 1000


@dataclass(frozen=True, slots=True)
class ListingLimits:
    """Per listing (one catalog or one repository's tags): pages, names, response bytes."""

    max_pages: int = 1000
    max_entries: int = 200_000
    max_bytes: int = 16 << 20

    def too_long(self, step: str, what: str, setting: str) -> ListingTooLong:
        """The error for a listing whose ``what`` passed ``setting`` (a LISTING_MAX_* name)."""
        value = {
            "LISTING_MAX_PAGES": self.max_pages,
            "LISTING_MAX_ENTRIES": self.max_entries,
            "LISTING_MAX_BYTES": self.max_bytes,
        }[setting]
        return ListingTooLong(
            f"{step}: {what} passed {setting}={value}; the listing was stopped (the registry's "
            f"list is longer than this agent reads; raise {setting} if it is genuine)",
            step,
        )


def next_link(header: str | None, current_url: str) -> str | None:
    """Absolute URL of the ``rel="next"`` link, or None; relative links resolve against the page."""
    if not header:
        return None
    for match in _LINK.finditer(header):
        target, params = match.group(1), match.group(2)
        rels = re.findall(r'rel\s*=\s*"?([^";]+)"?', params)
        if any("next" in rel.split() for rel in rels):
            return urljoin(current_url, target)
    return None


def same_origin(a: str, b: str) -> bool:
    """Same scheme, host and port: a pagination link elsewhere is refused (SSRF guard)."""
    sa, sb = urlsplit(a), urlsplit(b)
    return (sa.scheme, sa.hostname, sa.port or _default_port(sa.scheme)) == (
        sb.scheme,
        sb.hostname,
        sb.port or _default_port(sb.scheme),
    )


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80
