"""The agent's HTTP service (aiohttp) and ``cr-agent serve``.

Routes are the private rules of snyk's container-registry-agent accept filter plus
``/systemcheck``, ``/scan/<jobId>`` and ``/openapi.json`` for local operators. Every handler
reads like the request's path through the agent: validate input -> credentials -> registry
session -> answer. Failures become ``{error: {code, message, field, step}}`` in one
middleware; nothing a handler raises can carry a secret out (messages are scrubbed).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import re
import signal
import ssl
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import structlog
from aiohttp import web

from cr_agent.registry_types.base import TypeContext
from cr_agent.service import models as m
from cr_agent.service.allowed_registries import check_credentials
from cr_agent.service.callback_target import callback_base
from cr_agent.service.callbacks import CallbackSender
from cr_agent.service.echo_guard import check_echoed, request_secrets
from cr_agent.service.errors import REASONS, ApiError, classify
from cr_agent.service.jobs import ImageScanner, JobManager
from cr_agent.service.metrics import CONTENT_TYPE_LATEST, AgentMetrics
from cr_agent.service.openapi import build_document
from cr_agent.service.registry_session import RegistrySession
from cr_agent.service.request_input import parse_body, parse_query, request_credentials
from cr_agent.service.settings import Settings, SettingsError, load_settings
from cr_agent.service.spool import Spool
from shared.logging import configure_logging, get_logger, register_secrets
from shared.port_file import bound_port, write_port_file
from shared.version import package_version

log = get_logger(__name__)

_DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$")

REQUEST_ID_HEADER = "X-Request-Id"
#: the shared secret the broker client sends on every request (CR_AGENT_SECRET on both sides)
SECRET_HEADER = "X-Crbroker-Agent-Secret"
#: routes anyone who reaches the port may read: no input, no registry access, nothing to
#: steer (probes and Prometheus scrapers do not carry the secret)
OPEN_PATHS = frozenset({"/healthcheck", "/metrics", "/openapi.json"})

SETTINGS: web.AppKey[Settings] = web.AppKey("settings", Settings)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class AgentState:
    """What lives as long as the app: HTTP session, type caches, spool, jobs."""

    def __init__(self, settings: Settings, scanner: ImageScanner | None) -> None:
        self.settings = settings
        self.scanner_override = scanner
        self.http: aiohttp.ClientSession | None = None
        self.caches: dict[str, object] = {}
        self.spool = Spool(settings.SPOOL_DIR)
        self.sender: CallbackSender | None = None
        self.jobs: JobManager | None = None
        self.metrics = AgentMetrics()

    def type_context(self) -> TypeContext:
        assert self.http is not None
        return TypeContext(
            http=self.http,
            timeout=self.settings.REGISTRY_TIMEOUT,
            ca_file=self.settings.ca_file,
            insecure=self.settings.tls_insecure,
            aws_endpoint_url=self.settings.AWS_ENDPOINT_URL,
            caches=self.caches,
            allowed_registries=self.settings.allowed_registries,
            listing=self.settings.listing_limits,
        )

    def ssl_context(self) -> ssl.SSLContext | bool:
        return self.type_context().ssl_context()


STATE: web.AppKey[AgentState] = web.AppKey("state", AgentState)


def _json(model: Any, status: int = 200) -> web.Response:
    return web.json_response(text=model.model_dump_json(exclude_none=True), status=status)


# --------------------------------------------------------------------------- middleware


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.monotonic()
    # one id per request in every log line it causes (a scan job started here keeps it too)
    request_id = _request_id(request.headers.get(REQUEST_ID_HEADER))
    with structlog.contextvars.bound_contextvars(request_id=request_id):
        response = await _answer(request, handler)
        response.headers[REQUEST_ID_HEADER] = request_id
        log.info(
            "request",
            method=request.method,
            path=request.path,
            status=response.status,
            ms=round((time.monotonic() - started) * 1000, 1),
        )
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    request.app[STATE].metrics.requests.labels(route=route, status=str(response.status)).inc()
    return response


def _request_id(given: str | None) -> str:
    if given and len(given) <= 64 and all(c.isalnum() or c in "-_." for c in given):
        return given
    return uuid.uuid4().hex[:16]


def _check_secret(request: web.Request) -> None:
    """401 unless the request carries the configured secret (or authentication is off)."""
    settings = request.app[SETTINGS]
    expected = settings.CR_AGENT_SECRET
    if expected is None or settings.CR_AGENT_AUTH == "disabled" or request.path in OPEN_PATHS:
        return
    given = request.headers.get(SECRET_HEADER, "")
    if not hmac.compare_digest(given.encode(), expected.get_secret_value().encode()):
        raise ApiError(
            401,
            "unauthenticated",
            f"missing or wrong {SECRET_HEADER} header: the broker client must send the "
            "agent's CR_AGENT_SECRET",
            field=SECRET_HEADER,
        )


async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        _check_secret(request)
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "no-such-route", 405: "method-not-allowed"}.get(exc.status, "http-error")
        body = m.ErrorResponse(
            error=m.ErrorDetail(code=code, message=f"{request.method} {request.path}: {exc.reason}")
        )
        response = _json(body, exc.status)
    except Exception as exc:
        status, detail = classify(exc)
        if status >= 500 and detail.code == "internal":
            # the traceback is for the operator's log only; the answer names the class
            log.error(
                "request failed",
                method=request.method,
                path=request.path,
                error=repr(exc),
                exc_info=exc,
            )
        response = _json(m.ErrorResponse(error=detail), status)
    return response


# --------------------------------------------------------------------------- handlers


def _state(request: web.Request) -> AgentState:
    return request.app[STATE]


async def _with_registry(
    request: web.Request, work: Callable[[RegistrySession], Awaitable[Any]]
) -> Any:
    """Run ``work`` against the registry named by the request's credentials, time-bounded."""
    state = _state(request)
    creds, kind = request_credentials(request)
    async with asyncio.timeout(state.settings.REQUEST_TIMEOUT):
        async with RegistrySession(creds, kind, state.type_context()) as session:
            return await work(session)


async def healthcheck(request: web.Request) -> web.Response:
    state = _state(request)
    jobs = state.jobs
    return _json(
        m.HealthResponse(
            ok=True,
            version=package_version(),
            activeOperations=jobs.active if jobs else 0,
            maxActiveOperations=state.settings.MAX_ACTIVE_OPERATIONS,
            queuedJobs=jobs.queued() if jobs else 0,
            spooledCallbacks=state.spool.count(),
        )
    )


async def validate_credentials(request: web.Request) -> web.Response:
    """Each step in order: credentials, authenticate, list; the first failure ends it."""
    parse_query(request, m.NoQuery)
    state = _state(request)
    steps: list[m.StepResult] = []
    kind_name: str | None = None
    host: str | None = None
    try:
        creds, kind = request_credentials(request)
        kind_name = kind.name
        steps.append(m.StepResult(step="credentials", ok=True))
        async with asyncio.timeout(state.settings.REQUEST_TIMEOUT):
            session = RegistrySession(creds, kind, state.type_context())
            async with session:
                host = session.host
                await session.validate(steps)
    except Exception as exc:
        status, detail = classify(exc)
        step = _validation_step(detail.step, steps)
        steps.append(m.StepResult(step=step, ok=False, message=detail.message))
        body = m.ValidateResponse(
            ok=False,
            type=kind_name,
            registry=host,
            steps=steps,
            failedStep=step,
            reason=REASONS.get(detail.code, "registry-error"),
        )
        return _json(body, status)
    return _json(m.ValidateResponse(ok=True, type=kind_name, registry=host, steps=steps))


def _validation_step(raw: str | None, done: list[m.StepResult]) -> str:
    """Map the failing client step onto credentials / authenticate / list."""
    if raw == "credentials" or not done:
        return "credentials"
    if len(done) == 1:
        return "authenticate" if raw not in ("catalog", "list") else "list"
    return "list"


async def list_repositories(request: web.Request) -> web.Response:
    parse_query(request, m.NoQuery)
    repos = await _with_registry(request, lambda s: s.list_repositories())
    return _json(m.RepositoriesResponse(repositories=repos, count=len(repos)))


async def list_tags(request: web.Request) -> web.Response:
    parse_query(request, m.NoQuery)
    repo = request.match_info["repository"]

    async def work(s: RegistrySession) -> m.TagsResponse:
        tags = sorted(await s.list_tags(repo))
        return m.TagsResponse(repository=s.repository_name(repo), tags=tags, count=len(tags))

    return _json(await _with_registry(request, work))


async def list_paginated(request: web.Request) -> web.Response:
    query = parse_query(request, m.PageQuery)
    repo = request.match_info.get("repository", "").strip("/")

    async def work(s: RegistrySession) -> m.PageResponse:
        # the whole list is read and cut here: hosted listing APIs page in their own ways,
        # and a cursor that is the last name seen works the same for all of them
        items = sorted(await s.list_tags(repo)) if repo else sorted(await s.list_repositories())
        start = 0
        if query.cursor:
            start = next((i for i, v in enumerate(items) if v > query.cursor), len(items))
        page = items[start : start + query.pageSize]
        more = start + query.pageSize < len(items)
        return m.PageResponse(
            repository=s.repository_name(repo) if repo else None,
            items=page,
            nextCursor=page[-1] if more and page else None,
        )

    return _json(await _with_registry(request, work))


async def list_with_metadata(request: web.Request) -> web.Response:
    query = parse_query(request, m.TagMetadataQuery)
    repo = request.match_info["repository"]

    async def work(s: RegistrySession) -> m.TagsWithMetadataResponse:
        tags = await s.tags_with_metadata(repo, created=query.created, platform=query.platform)
        return m.TagsWithMetadataResponse(
            repository=s.repository_name(repo),
            tags=tags,
            count=len(tags),
            Tags=await s.repository_tags(repo),
        )

    return _json(await _with_registry(request, work))


def image_from_path(rest: str) -> str:
    """``repo/sub/tag``, ``repo/sub/sha256:...``, ``repo/sub:tag`` or ``repo/sub@sha256:...``
    (PR #877's ``/image-metadata/:repo/:imageRef``, with slashes in the repository)."""
    rest = rest.strip("/")
    if "@" in rest:
        return rest
    repo, _, last = rest.rpartition("/")
    if repo and _DIGEST.match(last):
        return f"{repo}@{last}"
    if not repo or ":" in last:
        return rest
    return f"{repo}:{last}"


async def image_metadata(request: web.Request) -> web.Response:
    query = parse_query(request, m.PlatformQuery)
    image = image_from_path(request.match_info["image"])
    return _json(await _with_registry(request, lambda s: s.image_metadata(image, query.platform)))


async def state_identifier(request: web.Request) -> web.Response:
    query = parse_query(request, m.StateQuery)

    async def work(s: RegistrySession) -> m.StateIdentifierResponse:
        state_id, digest = await s.state_identifier(query.image)
        return m.StateIdentifierResponse(image=query.image, stateIdentifier=state_id, digest=digest)

    return _json(await _with_registry(request, work))


def _submit(kind: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        state = _state(request)
        body, _raw = await parse_body(request, m.ScanRequest)
        creds, cr_type = request_credentials(request, body.credentials)
        settings = state.settings
        # refused now rather than in the job's callbacks (ECR's endpoint is checked in the job)
        check_credentials(creds, cr_type, settings.allowed_registries)
        callback = callback_base(
            settings.BROKER_CLIENT_URL,
            body.callbackUrl,
            allow_request=settings.CR_AGENT_ALLOW_REQUEST_CALLBACK_URL,
        )
        secret = settings.CR_AGENT_SECRET
        blobs = (body.credentials, request.headers.get("Authorization"))
        check_echoed(
            body, request_secrets(creds, blobs, secret.get_secret_value() if secret else None)
        )
        assert state.jobs is not None
        waiting = state.jobs.pending_images()
        if waiting + len(body.images) > state.settings.MAX_QUEUED_IMAGES:
            raise ApiError(
                503,
                "busy",
                f"{waiting} images are already waiting (MAX_QUEUED_IMAGES="
                f"{state.settings.MAX_QUEUED_IMAGES}); send this scan again later",
                field="images",
            )
        job = state.jobs.submit(kind, body, creds, callback)  # type: ignore[arg-type]
        accepted = m.ScanAccepted(
            jobId=job.id, status="queued", images=len(body.images), statusPath=f"/scan/{job.id}"
        )
        return _json(accepted, 202)

    return handler


async def job_status(request: web.Request) -> web.Response:
    parse_query(request, m.NoQuery)
    state = _state(request)
    job = state.jobs.get(request.match_info["job_id"]) if state.jobs else None
    if job is None:
        raise ApiError(
            404,
            "not-found",
            "no job with that id (finished jobs are kept for a while)",
            field="jobId",
        )
    return _json(job.view(pending=state.spool.count_for(job.id)))


async def metrics(request: web.Request) -> web.Response:
    body = _state(request).metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(build_document())


# --------------------------------------------------------------------------- app


def _scanner(state: AgentState) -> ImageScanner:
    if state.scanner_override is not None:
        return state.scanner_override
    from cr_agent.layer_cache import LayerCache
    from cr_agent.service.image_scanner import RegistryImageScanner

    settings = state.settings
    cache = None
    if settings.LAYER_CACHE_DIR is not None:
        try:
            cache = LayerCache(settings.LAYER_CACHE_DIR, max_bytes=settings.LAYER_CACHE_BYTES)
        except OSError as exc:
            # a read-only or foreign directory costs the cache, not the service
            log.warning(
                "layer cache unavailable, scanning without it",
                directory=str(settings.LAYER_CACHE_DIR),
                error=str(exc),
            )
    return RegistryImageScanner.from_settings(state.type_context, settings, cache)


async def _startup(app: web.Application) -> None:
    state = app[STATE]
    settings = state.settings
    state.http = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(
            total=None, sock_connect=settings.REGISTRY_TIMEOUT, sock_read=settings.REGISTRY_TIMEOUT
        )
    )
    state.sender = CallbackSender(
        state.http,
        state.spool,
        metrics=state.metrics,
        attempts=settings.CALLBACK_ATTEMPTS,
        retry_seconds=settings.CALLBACK_RETRY_SECONDS,
        timeout=settings.REGISTRY_TIMEOUT,
        ssl_context=state.ssl_context(),
    )
    state.sender.start()
    state.jobs = JobManager(
        _scanner(state),
        state.sender,
        max_active=settings.MAX_ACTIVE_OPERATIONS,
        max_body=settings.MAX_CALLBACK_BODY_BYTES,
        history=settings.JOB_HISTORY,
        metrics=state.metrics,
    )
    jobs, spool = state.jobs, state.spool
    state.metrics.gauge("cr_agent_active_operations", "Scans running now", lambda: jobs.active)
    state.metrics.gauge(
        "cr_agent_pending_images", "Images accepted, not yet scanned", jobs.pending_images
    )
    state.metrics.gauge("cr_agent_spooled_callbacks", "Callbacks waiting in the spool", spool.count)
    pending = state.spool.count()
    if pending:
        log.info("spooled callbacks found; retrying them", count=pending)


async def _cleanup(app: web.Application) -> None:
    state = app[STATE]
    if state.jobs is not None:
        await state.jobs.close()
    if state.sender is not None:
        await state.sender.close()
    if state.http is not None:
        await state.http.close()


def create_app(settings: Settings, *, scanner: ImageScanner | None = None) -> web.Application:
    """The aiohttp application; ``scanner`` replaces the registry scanner (tests of jobs)."""
    app = web.Application(middlewares=[error_middleware], client_max_size=2 * 1024 * 1024)
    if settings.CR_AGENT_SECRET is not None:
        register_secrets(settings.CR_AGENT_SECRET.get_secret_value())
    app[SETTINGS] = settings
    app[STATE] = AgentState(settings, scanner)
    app.on_startup.append(_startup)
    app.on_cleanup.append(_cleanup)
    r = app.router
    r.add_get("/healthcheck", healthcheck, allow_head=True)
    r.add_get("/systemcheck", validate_credentials)
    r.add_get("/validate-credentials", validate_credentials)
    r.add_get("/list", list_repositories)
    r.add_get(r"/list/{repository:.+}", list_tags)
    r.add_get(r"/list-paginated/{repository:.*}", list_paginated)
    r.add_get(r"/list-with-metadata/{repository:.+}", list_with_metadata)
    r.add_get(r"/image-metadata/{image:.+}", image_metadata)
    r.add_get("/get-state-identifier", state_identifier)
    r.add_post("/scan", _submit("scan"))
    r.add_post("/discover", _submit("discover"))
    r.add_get(r"/scan/{job_id}", job_status)
    r.add_get("/metrics", metrics)
    r.add_get("/openapi.json", openapi)
    return app


# --------------------------------------------------------------------------- serve


def _server_ssl(settings: Settings) -> ssl.SSLContext | None:
    if settings.HTTPS_CERT is None or settings.HTTPS_KEY is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(settings.HTTPS_CERT), str(settings.HTTPS_KEY))
    return ctx


async def serve(settings: Settings, *, ready: Callable[[int], None] | None = None) -> None:
    """Serve until SIGTERM/SIGINT, then finish cleanly (jobs cancelled, spool kept)."""
    app = create_app(settings)
    # requests are time-bounded anyway; do not let one hold a SIGTERM for aiohttp's 60 s
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5.0)
    await runner.setup()
    site = web.TCPSite(runner, settings.HOST, settings.port, ssl_context=_server_ssl(settings))
    await site.start()
    port = bound_port(runner.addresses, settings.port)
    log.info(
        "cr-agent listening",
        host=settings.HOST,
        port=port,
        https=settings.HTTPS_CERT is not None,
        callback=settings.BROKER_CLIENT_URL,
        allowed_registries=settings.CR_ALLOWED_REGISTRIES or "any",
    )
    if settings.CR_AGENT_SECRET is None or settings.CR_AGENT_AUTH == "disabled":
        log.warning("CR_AGENT_AUTH=disabled: anything that reaches this port can drive the agent")
    if settings.CR_AGENT_ALLOW_REQUEST_CALLBACK_URL:
        log.warning("CR_AGENT_ALLOW_REQUEST_CALLBACK_URL=true: requests choose where results go")
    elif settings.BROKER_CLIENT_URL is None:
        log.warning("BROKER_CLIENT_URL is not set: /scan and /discover will be refused")
    write_port_file(settings.PORT_FILE, {settings.port_variable: port})
    if ready is not None:
        ready(port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("cr-agent stopping")
        await runner.cleanup()


def main_serve(argv: list[str] | None = None) -> int:
    """``cr-agent serve``: settings from the environment; exit 2 naming a bad variable."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help"):
        print(
            "usage: cr-agent serve\n\nAll settings come from the environment: SNYK_PORT or PORT "
            "(default 8081; 0 = any free port), HTTPS_CERT/HTTPS_KEY, CA_CERT, LOG_LEVEL, "
            "MAX_ACTIVE_OPERATIONS, MAX_IMAGE_SIZE_IN_BYTES, BROKER_CLIENT_URL, SPOOL_DIR, ...\n"
            "API: GET /openapi.json"
        )
        return 0
    if args:
        print(
            f"cr-agent serve: unexpected argument {args[0]!r} (settings come from the environment)",
            file=sys.stderr,
        )
        return 2
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"cr-agent: invalid setting {exc}", file=sys.stderr)
        return 2
    level = settings.LOG_LEVEL
    configure_logging(level, service="cr-agent", debug=level.strip().lower() in ("debug", "trace"))
    try:
        asyncio.run(serve(settings))
    except OSError as exc:
        print(
            f"cr-agent: cannot listen on {settings.HOST}:{settings.port}: {exc.strerror}",
            file=sys.stderr,
        )
        return 1
    return 0
