"""Harbor v2.0 API (goharbor.io, swagger ``/api/v2.0``) plus a catalog that refuses non-admins.

``GET /api/v2.0/projects`` and ``GET /api/v2.0/projects/{project_name}/repositories`` return
arrays (``page``/``page_size``, ``X-Total-Count``); repository ``name`` is
``project/repo``. ``.../repositories/{repo}/artifacts?with_tag=true`` lists artifacts with
``digest``, ``push_time`` and ``tags[{name, push_time}]`` (repo names with ``/`` encoded
twice). Basic credentials; ``/v2/_catalog`` answers 401 ``UNAUTHORIZED`` to non-admins.
"""

from __future__ import annotations

import base64
import urllib.parse

from aiohttp import web

from tests.fakes.vendor_server import FakeServer, page_of


def fake_harbor(username: str, password: str, repos: dict[str, dict[str, str]]) -> FakeServer:
    """``repos``: {"project/name": {tag: digest}}."""
    expected = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()

    def denied(request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") != expected:
            return web.json_response(
                {"errors": [{"code": "UNAUTHORIZED", "message": "unauthorized"}]}, status=401
            )
        return None

    def paged(request: web.Request, items: list) -> web.Response:
        chunk, _page, _more = page_of(items, request, size_param="page_size", default=10)
        response = web.json_response(chunk)
        response.headers["X-Total-Count"] = str(len(items))
        return response

    async def v2(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != expected:
            return web.json_response(
                {"errors": [{"code": "UNAUTHORIZED"}]},
                status=401,
                headers={"WWW-Authenticate": 'Basic realm="harbor"'},
            )
        return web.json_response({})

    async def catalog(request: web.Request) -> web.Response:
        # Harbor keeps the registry-wide catalog for system admins
        return web.json_response(
            {"errors": [{"code": "DENIED", "message": "not admin"}]}, status=403
        )

    async def projects(request: web.Request) -> web.Response:
        if (answer := denied(request)) is not None:
            return answer
        names = sorted({k.split("/", 1)[0] for k in repos})
        return paged(
            request,
            [{"project_id": i + 1, "name": n, "repo_count": 1} for i, n in enumerate(names)],
        )

    async def project_repos(request: web.Request) -> web.Response:
        if (answer := denied(request)) is not None:
            return answer
        project = request.match_info["project"]
        items = [
            {"id": i, "project_id": 1, "name": k, "artifact_count": len(v)}
            for i, (k, v) in enumerate(sorted(repos.items()))
            if k.split("/", 1)[0] == project
        ]
        return paged(request, items)

    async def artifacts(request: web.Request) -> web.Response:
        if (answer := denied(request)) is not None:
            return answer
        # aiohttp decoded the path once; Harbor's clients encode "/" twice, so "%2F" remains
        repo = urllib.parse.unquote(request.match_info["repo"])
        key = f"{request.match_info['project']}/{repo}"
        if key not in repos:
            return web.json_response({"errors": [{"code": "NOT_FOUND"}]}, status=404)
        by_digest: dict[str, list[str]] = {}
        for tag, digest in sorted(repos[key].items()):
            by_digest.setdefault(digest, []).append(tag)
        items = [
            {
                "digest": digest,
                "push_time": "2024-06-01T08:00:00.000Z",
                "tags": [
                    {"name": t, "push_time": f"2024-06-0{j + 1}T08:00:00.000Z"}
                    for j, t in enumerate(tags)
                ],
            }
            for digest, tags in by_digest.items()
        ]
        return paged(request, items)

    app = web.Application()
    app.router.add_get("/v2/", v2)
    app.router.add_get("/v2/_catalog", catalog)
    app.router.add_get("/api/v2.0/projects", projects)
    app.router.add_get("/api/v2.0/projects/{project}/repositories", project_repos)
    app.router.add_get("/api/v2.0/projects/{project}/repositories/{repo}/artifacts", artifacts)
    return FakeServer(app)
