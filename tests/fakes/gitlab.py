"""GitLab REST API v4, container registry parts (docs.gitlab.com/api/container_registry).

``PRIVATE-TOKEN`` authenticates. ``GET /api/v4/projects?membership=true`` lists projects,
``GET /api/v4/projects/:id/registry/repositories`` and
``GET /api/v4/groups/:id/registry/repositories`` list registry repositories (``id``,
``name``, ``path``, ``project_id``, ``location``, ``created_at``); pages by ``page`` /
``per_page`` with ``X-Next-Page`` and ``Link``. A project whose registry is disabled answers 403.
"""

from __future__ import annotations

import urllib.parse

from aiohttp import web

from tests.fakes.vendor_server import FakeServer, page_of


def fake_gitlab(
    token: str,
    projects: dict[int, tuple[str, list[str] | None]],
    groups: dict[str, list[int]] | None = None,
) -> FakeServer:
    """``projects``: {id: ("group/project", [image names] or None when the registry is off)}."""
    groups = groups or {}

    def denied(request: web.Request) -> web.Response | None:
        if request.headers.get("PRIVATE-TOKEN") != token:
            return web.json_response({"message": "401 Unauthorized"}, status=401)
        return None

    def paged(request: web.Request, items: list) -> web.Response:
        chunk, page, more = page_of(items, request, size_param="per_page", default=20)
        response = web.json_response(chunk)
        response.headers["X-Total"] = str(len(items))
        response.headers["X-Page"] = str(page)
        response.headers["X-Next-Page"] = str(page + 1) if more else ""
        if more:
            query = {**request.query, "page": str(page + 1)}
            response.headers["Link"] = (
                f'<{request.url.origin()}{request.path}?{urllib.parse.urlencode(query)}>; rel="next"'
            )
        return response

    def repos_of(pid: int) -> list[dict[str, object]]:
        path, images = projects[pid]
        return [
            {
                "id": pid * 100 + i,
                "name": name,
                "path": f"{path}/{name}" if name else path,
                "project_id": pid,
                "location": f"registry.example.com/{path}/{name}"
                if name
                else f"registry.example.com/{path}",
                "created_at": "2024-01-01T00:00:00.000Z",
            }
            for i, name in enumerate(images or [])
        ]

    async def list_projects(request: web.Request) -> web.Response:
        if (answer := denied(request)) is not None:
            return answer
        items = [
            {"id": pid, "path_with_namespace": path, "name": path.rsplit("/", 1)[-1]}
            for pid, (path, _) in sorted(projects.items())
        ]
        return paged(request, items)

    async def project_repos(request: web.Request) -> web.Response:
        if (answer := denied(request)) is not None:
            return answer
        pid = int(request.match_info["id"])
        if pid not in projects:
            return web.json_response({"message": "404 Project Not Found"}, status=404)
        if projects[pid][1] is None:
            return web.json_response({"message": "403 Forbidden"}, status=403)
        return paged(request, repos_of(pid))

    async def group_repos(request: web.Request) -> web.Response:
        if (answer := denied(request)) is not None:
            return answer
        group = urllib.parse.unquote(request.match_info["id"])
        if group not in groups:
            return web.json_response({"message": "404 Group Not Found"}, status=404)
        return paged(request, [r for pid in groups[group] for r in repos_of(pid)])

    app = web.Application()
    app.router.add_get("/api/v4/projects", list_projects)
    app.router.add_get("/api/v4/projects/{id}/registry/repositories", project_repos)
    app.router.add_get("/api/v4/groups/{id}/registry/repositories", group_repos)
    return FakeServer(app)
