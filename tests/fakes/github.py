"""GitHub REST packages API, container packages only (docs.github.com/rest/packages).

``GET /orgs/{org}/packages?package_type=container`` and ``GET /user/packages?...``: arrays of
package objects (``id``, ``name``, ``package_type``, ``owner.login``, ``visibility``), paged
with ``per_page``/``page`` and an RFC 8288 ``Link`` header; ``package_type`` is required.
``GET /orgs/{org}/packages/container/{name}/versions``: versions whose ``name`` is the digest
and ``metadata.container.tags`` the tags. A wrong token gets 401 ``Bad credentials``.
"""

from __future__ import annotations

import urllib.parse

from aiohttp import web

from tests.fakes.vendor_server import FakeServer, page_of


def fake_github(
    token: str, org: str, user: str, packages: dict[str, dict[str, list[str]]]
) -> FakeServer:
    """``packages``: {"org/name" or "user/name": {digest: [tags]}}."""

    def authorised(request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        return header in (f"Bearer {token}", f"token {token}")

    def unauthorised() -> web.Response:
        return web.json_response(
            {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"},
            status=401,
        )

    def package(owner: str, name: str, number: int) -> dict[str, object]:
        return {
            "id": number,
            "name": name,
            "package_type": "container",
            "owner": {"login": owner, "id": 1, "type": "Organization" if owner == org else "User"},
            "version_count": len(packages[f"{owner}/{name}"]),
            "visibility": "private",
            "url": f"https://api.github.com/orgs/{owner}/packages/container/{name}",
            "created_at": "2024-01-01T00:00:00Z",
            "updated_at": "2024-02-01T00:00:00Z",
        }

    def listing(request: web.Request, owner: str) -> web.Response:
        if not authorised(request):
            return unauthorised()
        if request.query.get("package_type") not in (
            "npm",
            "maven",
            "rubygems",
            "docker",
            "nuget",
            "container",
        ):
            return web.json_response({"message": "package_type is required"}, status=400)
        owned = [k.split("/", 1)[1] for k in sorted(packages) if k.split("/", 1)[0] == owner]
        if request.query["package_type"] != "container":
            owned = []
        items = [package(owner, name, i + 1) for i, name in enumerate(owned)]
        chunk, page, more = page_of(items, request, size_param="per_page")
        response = web.json_response(chunk)
        if more:
            query = dict(request.query)
            query["page"] = str(page + 1)
            nxt = f"{request.url.origin()}{request.path}?{urllib.parse.urlencode(query)}"
            response.headers["Link"] = f'<{nxt}>; rel="next"'
        return response

    async def org_packages(request: web.Request) -> web.Response:
        if request.match_info["org"] != org:
            return web.json_response({"message": "Not Found"}, status=404)
        return listing(request, org)

    async def user_packages(request: web.Request) -> web.Response:
        return listing(request, user)

    async def versions(request: web.Request) -> web.Response:
        if not authorised(request):
            return unauthorised()
        owner = request.match_info.get("org", user)
        key = f"{owner}/{request.match_info['name']}"
        if key not in packages:
            return web.json_response({"message": "Package not found."}, status=404)
        out = [
            {
                "id": i,
                "name": digest,
                "url": "",
                "created_at": "2024-03-01T10:00:00Z",
                "updated_at": f"2024-03-0{i + 1}T10:00:00Z",
                "metadata": {"package_type": "container", "container": {"tags": tags}},
            }
            for i, (digest, tags) in enumerate(packages[key].items())
        ]
        return web.json_response(out)

    app = web.Application()
    app.router.add_get("/orgs/{org}/packages", org_packages)
    app.router.add_get("/user/packages", user_packages)
    app.router.add_get("/orgs/{org}/packages/container/{name}/versions", versions)
    app.router.add_get("/user/packages/container/{name}/versions", versions)
    return FakeServer(app)
