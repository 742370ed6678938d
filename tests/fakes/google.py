"""Google OAuth token endpoint and Artifact Registry API, plus an AR host without a catalog.

``POST /token`` takes ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`` and an RS256
``assertion`` signed by the service-account key (``iss`` = client_email, ``aud`` = the token
URI, ``scope``) and answers ``{access_token, expires_in, token_type}``; a bad signature gets
400 ``invalid_grant``. ``GET /v1/projects/{p}/locations/{l}/repositories/{r}/dockerImages``
(``pageSize``, ``pageToken``) answers ``{dockerImages: [{name, uri, tags, imageSizeBytes,
uploadTime, mediaType, updateTime}], nextPageToken}`` for ``Bearer`` tokens it issued.
``/v2/`` answers 200 and ``/v2/_catalog`` 404, as a registry without the catalog does.
"""

from __future__ import annotations

import base64
import json
import secrets
import urllib.parse

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.fakes.vendor_server import FakeServer


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def fake_google(
    public_key: rsa.RSAPublicKey,
    client_email: str,
    location: str,
    project: str,
    repository: str,
    images: dict[str, dict[str, list[str]]],
    host: str = "europe-west1-docker.pkg.dev",
) -> FakeServer:
    """``images``: {"image/path": {digest: [tags]}} inside project/repository."""
    issued: set[str] = set()
    server = FakeServer(web.Application())

    async def token(request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        try:
            head, body, signature = str(form.get("assertion", "")).split(".")
            public_key.verify(
                _unb64(signature), f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
            claims = json.loads(_unb64(body))
        except (ValueError, InvalidSignature):
            return web.json_response(
                {"error": "invalid_grant", "error_description": "Invalid JWT Signature."},
                status=400,
            )
        if claims.get("iss") != client_email or claims.get("aud") != f"{server.url}/token":
            return web.json_response(
                {"error": "invalid_grant", "error_description": "Invalid JWT"}, status=400
            )
        access = "ya29." + secrets.token_urlsafe(24)
        issued.add(access)
        return web.json_response(
            {"access_token": access, "expires_in": 3599, "token_type": "Bearer"}
        )

    async def docker_images(request: web.Request) -> web.Response:
        if request.headers.get("Authorization", "").removeprefix("Bearer ") not in issued:
            return web.json_response(
                {"error": {"code": 401, "status": "UNAUTHENTICATED"}}, status=401
            )
        m = request.match_info
        if (m["project"], m["location"], m["repository"]) != (project, location, repository):
            return web.json_response({"error": {"code": 404, "status": "NOT_FOUND"}}, status=404)
        rows = [
            {
                "name": f"projects/{project}/locations/{location}/repositories/{repository}/dockerImages/"
                + urllib.parse.quote(f"{path}@{digest}", safe=""),
                "uri": f"{host}/{project}/{repository}/{path}@{digest}",
                "tags": tags,
                "imageSizeBytes": "1234",
                "uploadTime": f"2024-08-0{i + 1}T10:00:00.123456Z",
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "updateTime": "2024-08-09T10:00:00Z",
            }
            for path, versions in sorted(images.items())
            for i, (digest, tags) in enumerate(versions.items())
        ]
        size = int(request.query.get("pageSize", 50))
        start = int(request.query.get("pageToken", "0") or 0)
        body: dict[str, object] = {"dockerImages": rows[start : start + size]}
        if start + size < len(rows):
            body["nextPageToken"] = str(start + size)
        return web.json_response(body)

    async def v2(request: web.Request) -> web.Response:
        return web.json_response({})

    async def catalog(request: web.Request) -> web.Response:
        return web.json_response(
            {"errors": [{"code": "UNSUPPORTED", "message": "catalog"}]}, status=404
        )

    app = server.app
    app.router.add_post("/token", token)
    app.router.add_get(
        "/v1/projects/{project}/locations/{location}/repositories/{repository}/dockerImages",
        docker_images,
    )
    app.router.add_get("/v2/", v2)
    app.router.add_get("/v2/_catalog", catalog)
    return server
