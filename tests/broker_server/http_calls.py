"""Small synchronous HTTP helpers for tests that drive subprocess servers."""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from typing import Any


def call(
    url: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    data: bytes | None = None,
    timeout: float = 30,
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def call_json(url: str, **kwargs: Any) -> tuple[int, Any]:
    status, _, body = call(url, **kwargs)
    return status, json.loads(body or b"null")


def sha256_of(url: str, timeout: float = 60) -> tuple[int, int, str]:
    """(status, size, sha256) of a body read in 1 MiB pieces."""
    digest = hashlib.sha256()
    size = 0
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        while chunk := resp.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
        return resp.status, size, digest.hexdigest()
