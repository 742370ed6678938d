"""``Link: <...>; rel="next"`` pagination for ``_catalog`` and ``tags/list``."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

_LINK = re.compile(r"<([^>]*)>\s*((?:;\s*[^,;]+)*)")

MAX_PAGE_SIZE = 1000  # ECR rejects n > 1000


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
