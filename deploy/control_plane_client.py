"""A small synchronous client of the control plane's API, for the demo, e2e tests and benches.

It speaks what any Snyk API client speaks (``Authorization: token <t>``, JSON:API, ``version``)
plus the v1 import call, and follows ``links.next`` to read every page.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

VERSION = "2024-05-31"
JSONAPI = "application/vnd.api+json"


class ApiError(RuntimeError):
    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        super().__init__(f"{method} {path} answered {status}: {body!r}"[:1000])
        self.status = status
        self.body = body


@dataclass
class ControlPlaneClient:
    base: str
    token: str
    timeout: float = 30.0

    def call(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = JSONAPI,
        expect: tuple[int, ...] = (200, 201, 202, 204),
    ) -> tuple[int, dict[str, str], Any]:
        params = dict(query or {})
        if path.startswith("/rest/") and "version" not in params and "version=" not in path:
            params["version"] = VERSION
        url = (
            self.base + path + (("&" if "?" in path else "?") + urlencode(params) if params else "")
        )
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"token {self.token}"}
        if data is not None:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:
                status, raw, got = resp.status, resp.read(), dict(resp.headers)
        except urllib.error.HTTPError as exc:
            status, raw, got = exc.code, exc.read(), dict(exc.headers)
        try:
            parsed: Any = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw
        if status not in expect:
            raise ApiError(method, path, status, parsed)
        return status, got, parsed

    # ------------------------------------------------------------------ resources

    def orgs(self) -> list[dict[str, Any]]:
        return self.all_pages("/rest/orgs")

    def default_org(self) -> str:
        return str(self.orgs()[0]["id"])

    def all_pages(self, path: str, query: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        _, _, page = self.call("GET", path, query={"limit": "100", **(query or {})})
        while True:
            items += page["data"]
            following = (page.get("links") or {}).get("next")
            if not following:
                return items
            _, _, page = self.call("GET", following)

    def create_integration(self, org: str, attributes: Mapping[str, Any]) -> dict[str, Any]:
        body = {"data": {"type": "integration", "attributes": dict(attributes)}}
        _, _, answer = self.call("POST", f"/rest/orgs/{org}/integrations", body=body)
        return dict(answer["data"])

    def import_image(self, org: str, integration: str, name: str) -> str:
        """Snyk's v1 import; returns the import job's path (from ``Location``)."""
        _, headers, _ = self.call(
            "POST",
            f"/v1/org/{org}/integrations/{integration}/import",
            body={"target": {"name": name}},
            content_type="application/json",
            expect=(201,),
        )
        location = headers.get("Location") or headers.get("location") or ""
        return location.removeprefix(self.base)

    def wait_import(self, job_path: str, *, timeout: float = 120.0) -> dict[str, Any]:
        """Poll a v1 import job until it is no longer pending."""
        deadline = time.monotonic() + timeout
        while True:
            _, _, job = self.call("GET", job_path)
            if job["status"] != "pending":
                return dict(job)
            if time.monotonic() > deadline:
                raise TimeoutError(f"import job still pending after {timeout:g}s: {job!r}")
            time.sleep(0.2)

    def projects(self, org: str, **query: str) -> list[dict[str, Any]]:
        return self.all_pages(f"/rest/orgs/{org}/projects", query)

    def sbom(self, org: str, project: str, fmt: str = "cyclonedx") -> Any:
        _, _, body = self.call(
            "GET", f"/rest/orgs/{org}/projects/{project}/sbom", query={"format": fmt}
        )
        return body

    def retest(self, org: str, project: str) -> dict[str, Any]:
        _, _, answer = self.call("POST", f"/rest/orgs/{org}/projects/{project}/scans")
        return dict(answer["data"])

    def scans(self, org: str, project: str) -> list[dict[str, Any]]:
        return self.all_pages(f"/rest/orgs/{org}/projects/{project}/scans")

    def wait_scan(
        self, org: str, project: str, scan: str, *, timeout: float = 120.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            found = {s["id"]: s for s in self.scans(org, project)}
            status = found[scan]["attributes"]["status"]
            if status in ("succeeded", "failed"):
                return found[scan]
            if time.monotonic() > deadline:
                raise TimeoutError(f"scan {scan} still {status} after {timeout:g}s")
            time.sleep(0.2)
