"""Container images: the list (filter, sort, keyset pages) and the image page (Run scan,
packages with their layers, SBOM and PDF downloads, scan history, progress by htmx polling)."""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

from aiohttp import web

from control_plane.advisories.index_cache import index_cache_for
from control_plane.console.app import (
    DB_SESSION,
    ORG,
    PREFIX,
    PRINCIPAL,
    after_commit,
    ctx,
    path_id,
    redirect,
    render,
)
from control_plane.errors import InvalidInput, NotFound
from control_plane.imports.services import retest
from control_plane.integrations.services import list_integrations
from control_plane.pagination import MAX_LIMIT, PageRequest
from control_plane.projects.image_list import SORTS, STATUSES, ImageQuery, list_images
from control_plane.projects.image_page import ImageDetails, image_details
from control_plane.results.pdf_report import render_report
from control_plane.scans.services import latest_sbom


def _id(request: web.Request) -> uuid.UUID:
    return path_id(request, "image")


def _query(request: web.Request) -> ImageQuery:
    q = request.query
    registry = q.get("registry") or None
    try:
        registry_id = uuid.UUID(registry) if registry else None
    except ValueError:
        raise InvalidInput("registry is not a registry id", parameter="registry") from None
    return ImageQuery(
        registry=registry_id,
        status=q.get("status") or None,
        name=(q.get("name") or "").strip() or None,
        sort=q.get("sort") or "name",
        after=q.get("after") or None,
    )


async def _details(request: web.Request, ident: uuid.UUID) -> ImageDetails:
    session = request[DB_SESSION]
    # the API's cache: one advisory index per database per process
    return await image_details(session, request[ORG], ident, advisories=index_cache_for(session))


async def images_page(request: web.Request) -> web.Response:
    query = _query(request)
    db = request[DB_SESSION]
    page = await list_images(db, request[ORG], query)
    registries = await list_integrations(db, request[ORG], PageRequest(limit=MAX_LIMIT))
    kept = {
        k: v
        for k, v in {
            "registry": str(query.registry or ""),
            "status": query.status or "",
            "name": query.name or "",
            "sort": query.sort,
        }.items()
        if v
    }
    values = {
        "page": page,
        "query": query,
        "registries": registries.items,
        "statuses": STATUSES,
        "sorts": SORTS,
        "next_url": f"?{urlencode(kept | {'after': page.next_cursor})}"
        if page.next_cursor
        else None,
        "first_url": f"?{urlencode(kept)}" if query.after else None,
    }
    return render(request, "images.html", values)


async def image_page(request: web.Request) -> web.Response:
    details = await _details(request, _id(request))
    return render(request, "image.html", {"d": details})


async def scan_section(request: web.Request) -> web.Response:
    """htmx: the scan section (status, packages, history), polled while a scan is in flight."""
    details = await _details(request, _id(request))
    return render(request, "_scan.html", {"d": details})


async def run_scan(request: web.Request) -> web.Response:
    ident = _id(request)
    await retest(request[DB_SESSION], request[ORG], ident, user_id=request[PRINCIPAL].user_id)
    after_commit(request, ctx(request).wake)
    if request.headers.get("HX-Request"):
        details = await _details(request, ident)
        return render(request, "_scan.html", {"d": details})
    return redirect(f"{PREFIX}/images/{ident}")


async def sbom(request: web.Request) -> web.Response:
    fmt = request.match_info["format"]
    details = await image_details(request[DB_SESSION], request[ORG], _id(request), packages=False)
    document = await latest_sbom(request[DB_SESSION], details.project, fmt)
    filename = details.project.name.replace("/", "_").replace(":", "_") + f".{fmt}.json"
    return web.Response(
        body=document.content,
        content_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


async def report(request: web.Request) -> web.Response:
    details = await _details(request, _id(request))
    if details.facts is None:
        raise NotFound("scan result of image", details.project.id)
    filename = details.project.name.replace("/", "_").replace(":", "_") + ".pdf"
    return web.Response(
        body=render_report(details),
        content_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def add_routes(router: web.UrlDispatcher) -> None:
    base = f"{PREFIX}/images"
    router.add_get(base, images_page)
    router.add_get(f"{base}/{{id}}", image_page)
    router.add_get(f"{base}/{{id}}/scan", scan_section)
    router.add_post(f"{base}/{{id}}/scan", run_scan)
    router.add_get(f"{base}/{{id}}/sbom/{{format}}", sbom)
    router.add_get(f"{base}/{{id}}/report.pdf", report)
