"""Hostile or broken input to the control plane: a clear error naming what is wrong, never a
500, and nothing stored. The agents' callbacks are not trusted either: a result that is too
large, malformed, or that borrows another scan's ``resultId`` is refused."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import html
import io
import json
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, CookieJar, web
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select

from control_plane.accounts.services import set_password
from control_plane.api import agent_callbacks, setup_api
from control_plane.api import imports as imports_api
from control_plane.api.body import MAX_BODY as API_BODY
from control_plane.console.app import setup_console
from control_plane.db import Database
from control_plane.encryption import SecretBox
from control_plane.integrations.registry_agent import RegistryAgent
from control_plane.models import Integration, Org, ResultChunk, Scan, ScanSbom
from control_plane.queue.dispatch import seal
from control_plane.results import sbom_documents as docs
from control_plane.results import services as results
from control_plane.server import MAX_BODY as CALLBACK_BODY
from control_plane.server_settings import load_server_settings
from shared.logging import configure_logging
from tests.control_plane import factories
from tests.control_plane import flow_factories as f
from tests.control_plane.api_client import ApiClient
from tests.control_plane.test_result_ingest import DEB, _running_scan


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """SQLite: parsing and refusing are the same on either database; the cases where
    PostgreSQL differs (NUL characters, column lengths) ask for it by parameter."""
    if getattr(request, "param", "sqlite") == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'control-plane.db'}"
    url: str = request.getfixturevalue("postgres_server").create_database()
    return url


BOTH = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
async def plane(db: Database, box: SecretBox) -> AsyncIterator[ApiClient]:
    """The API, the import views and the agents' callbacks on one app, with the server's
    body limit (as ``crbroker-server`` builds it)."""
    app = web.Application(client_max_size=CALLBACK_BODY)
    setup_api(app, db, box)
    imports_api.add_routes(app.router)
    agent_callbacks.add_routes(app, db.sessions, box)
    server = TestServer(app)
    await server.start_server()
    async with ClientSession() as http:
        yield ApiClient(http, str(server.make_url("")).rstrip("/"), db)
    await server.close()


async def _account(api: ApiClient) -> factories.Account:
    async with api.db.sessions() as session, session.begin():
        acct = await factories.account(session)
    api.token = acct.token
    return acct


async def _integrations(api: ApiClient) -> int:
    async with api.db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Integration)) or 0)


PASSWORD = "registry-Pa55word-hostile"
_HEAD = (
    b'{"data": {"type": "integration", "attributes": {"integration_type": "harbor-cr",'
    b' "credentials": {"username": "u", "password": "' + PASSWORD.encode() + b'"}, "x": '
)


@pytest.mark.parametrize(
    ("value", "said"),
    [
        (b"[" * 10_000 + b"]" * 10_000, "nested too deeply"),
        (b'{"a":' * 10_000 + b"1" + b"}" * 10_000, "nested too deeply"),
        (b"9" * 5000, "digits"),
        (b"NaN", "NaN"),
        (b"-Infinity", "-Infinity"),
    ],
    ids=["deep-array", "deep-object", "5000-digit-number", "nan", "infinity"],
)
async def test_json_python_would_choke_on_is_a_400_naming_why(
    api: ApiClient, value: bytes, said: str
) -> None:
    stream = io.StringIO()
    configure_logging("debug", service="control-plane", stream=stream)
    acct = await _account(api)
    answer = await api.call(
        "POST", f"/rest/orgs/{acct.org.id}/integrations", raw=_HEAD + value + b"}}}"
    )
    assert answer.status == 400
    error = answer.error()
    assert error["source"] == {"pointer": ""} and said in error["detail"]
    assert PASSWORD not in answer.body.decode() and PASSWORD not in stream.getvalue()
    assert await _integrations(api) == 0


async def test_a_body_over_the_limit_is_a_413_naming_the_limit(api: ApiClient) -> None:
    acct = await _account(api)
    profile = "p" * API_BODY
    body = {"data": {"type": "integration", "attributes": {"profile_name": profile}}}
    answer = await api.call("POST", f"/rest/orgs/{acct.org.id}/integrations", body=body)
    assert answer.status == 413
    error = answer.error()
    assert error["source"] == {"pointer": ""} and str(API_BODY) in error["detail"]
    assert await _integrations(api) == 0


async def test_a_body_arriving_in_pieces_is_read_whole(api: ApiClient) -> None:
    acct = await _account(api)
    raw = json.dumps(
        {
            "data": {
                "type": "integration",
                "attributes": {"integration_type": "ecr", "has_broker": True},
                "meta": {"padding": "p" * 200_000},
            }
        }
    ).encode()

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(raw), 50_000):
            yield raw[start : start + 50_000]
            await asyncio.sleep(0.01)

    url = f"{api.base}/rest/orgs/{acct.org.id}/integrations?version=2024-05-31"
    headers = {"Authorization": f"token {acct.token}", "Content-Type": "application/vnd.api+json"}
    async with api.http.post(url, data=pieces(), headers=headers) as resp:
        status, answer = resp.status, await resp.json(content_type=None)
    assert status == 201, answer
    assert answer["data"]["attributes"]["integration_type"] == "ecr"
    assert await _integrations(api) == 1


def _cursor(document: Any) -> str:
    return "v1." + base64.urlsafe_b64encode(json.dumps(document).encode()).decode()


@pytest.mark.parametrize("document", [{"id": 1}, {"id": ["x"]}, {"id": {"id": "x"}}])
@pytest.mark.parametrize("parameter", ["starting_after", "ending_before"])
async def test_a_tampered_cursor_is_a_400_naming_it(
    api: ApiClient, parameter: str, document: Any
) -> None:
    acct = await _account(api)
    answer = await api.get(
        f"/rest/orgs/{acct.org.id}/projects?{parameter}={_cursor(document)}&version=2024-05-31"
    )
    assert answer.status == 400
    error = answer.error()
    assert error["source"] == {"parameter": parameter} and parameter in error["detail"]


# --------------------------------------------------------------------------- callbacks


async def _post(plane: ApiClient, path: str, raw: bytes, **headers: str) -> tuple[int, Any]:
    sent = {"Content-Type": "application/json", **headers}
    async with plane.http.post(plane.base + path, data=raw, headers=sent) as resp:
        return resp.status, await resp.json(content_type=None)


async def _stored(db: Database, scan_id: uuid.UUID) -> tuple[str, list[bytes]]:
    async with db.sessions() as session:
        scan = await session.get(Scan, scan_id)
        sboms = await session.scalars(select(ScanSbom).where(ScanSbom.scan_id == scan_id))
        assert scan is not None
        return scan.status, [docs.decompress(s.content) for s in sboms]


async def test_the_v1_callback_path_takes_a_ticket_not_a_token(
    plane: ApiClient, box: SecretBox
) -> None:
    scan, _ = await _running_scan(plane.db)
    body = f.result_body(str(scan.id), seal(box, scan.id), sbom=f.cyclonedx(DEB), result_id="v1")
    status, answer = await _post(plane, "/v1/recurring-tests/dependencies", f.raw(body))
    assert (status, answer) == (200, {"stored": True, "scan": str(scan.id)})
    assert (await _stored(plane.db, scan.id))[0] == "succeeded"


@pytest.mark.parametrize("encoding", ["identity", "gzip"])
async def test_a_callback_body_over_the_limit_is_a_json_413_naming_it(
    plane: ApiClient, box: SecretBox, encoding: str
) -> None:
    scan, _ = await _running_scan(plane.db)
    body = f.result_body(str(scan.id), seal(box, scan.id), sbom=f.cyclonedx(DEB), result_id="b")
    body["padding"] = " " * CALLBACK_BODY
    raw = f.raw(body)
    headers = {}
    if encoding == "gzip":  # 32 MiB of spaces in ~33 kB: a small bomb
        raw, headers = gzip.compress(raw), {"Content-Encoding": "gzip"}
    status, answer = await _post(plane, "/api/v2/import/result", raw, **headers)
    assert status == 413
    assert answer["code"] == "too-large" and str(CALLBACK_BODY) in answer["message"]
    assert await _stored(plane.db, scan.id) == ("running", [])


@pytest.mark.parametrize(
    ("sbom", "said"),
    [
        ({"components": "libc6"}, "sbom.components must be a list"),
        ({"components": [f.cyclonedx(DEB)["components"][0], 7]}, "sbom.components[1] must be"),
        ({"components": [{"name": {"n": 1}}]}, "sbom.components[0].name must be a string"),
        ({"components": [{"purl": 5}]}, "sbom.components[0].purl must be a string"),
        ({"components": [{"licenses": "MIT"}]}, "sbom.components[0].licenses must be"),
        ({"metadata": 5}, "sbom.metadata must be an object"),
        ({"metadata": {"component": []}}, "sbom.metadata.component must be an object"),
        ({"bomFormat": "SPDX", "components": []}, "sbom.bomFormat must be CycloneDX"),
    ],
)
async def test_a_malformed_sbom_is_refused_naming_the_member_and_nothing_is_stored(
    plane: ApiClient, box: SecretBox, sbom: dict[str, Any], said: str
) -> None:
    scan, _ = await _running_scan(plane.db)
    body = f.result_body(str(scan.id), seal(box, scan.id), sbom=None, result_id="m")
    body |= {"status": "success", "sbom": sbom}
    status, answer = await _post(plane, "/api/v2/import/result", f.raw(body))
    assert status == 400 and said in answer["message"]
    assert await _stored(plane.db, scan.id) == ("running", [])


def _chunk(box: SecretBox, scan: Scan, name: str, index: int, count: int = 2) -> bytes:
    sbom = {"bomFormat": "CycloneDX", "components": [{"name": name, "purl": f"pkg:deb/{name}@1"}]}
    body = f.result_body(str(scan.id), seal(box, scan.id), sbom=sbom, result_id="shared")
    body["chunk"] = {"index": index, "count": count, "fields": ["components"]}
    return f.raw(body)


async def test_a_chunk_never_joins_another_scans_result(plane: ApiClient, box: SecretBox) -> None:
    theirs, _ = await _running_scan(plane.db)
    async with plane.db.sessions() as session, session.begin():
        org = await factories.account(session)
        integ = await f.integration(session, org=org.org)
        project = await f.project(session, integ, "mine", "1")
    mine, _ = await _running_scan(plane.db, project.id)
    status, _ = await _post(plane, "/api/v2/import/result", _chunk(box, theirs, "theirs-0", 0))
    assert status == 202
    # the other agent's second body, carrying the same resultId: refused, naming it
    status, answer = await _post(plane, "/api/v2/import/result", _chunk(box, mine, "mine-1", 1))
    assert status == 409 and "resultId" in answer["message"]
    assert await _stored(plane.db, mine.id) == ("running", [])
    status, _ = await _post(plane, "/api/v2/import/result", _chunk(box, theirs, "theirs-1", 1))
    assert status == 200
    state, sboms = await _stored(plane.db, theirs.id)
    assert state == "succeeded"
    cyclonedx = json.loads(next(s for s in sboms if b"bomFormat" in s))
    assert [c["name"] for c in cyclonedx["components"]] == ["theirs-0", "theirs-1"]


# --------------------------------------------------------------------------- PostgreSQL


_INTEGRATION = {"integration_type": "harbor-cr", "has_broker": False}
_CREDENTIALS = {"username": "u", "password": PASSWORD, "registry_base": "https://h.test"}


@BOTH
@pytest.mark.parametrize(
    ("attributes", "pointer", "said"),
    [
        ({"profile_name": "a\x00b"}, "/data/attributes/profile_name", "NUL"),
        ({"profile_name": "p" * 201}, "/data/attributes/profile_name", "at most 200"),
        ({"registry_base": "https://" + "h" * 500}, "/data/attributes/registry_base", "500"),
        (
            {"credentials": _CREDENTIALS | {"registry_base": "https://h\x00.test"}},
            "/data/attributes/credentials/registry_base",
            "NUL",
        ),
        (
            {"credentials": _CREDENTIALS | {"registry_base": "https://" + "h" * 500}},
            "/data/attributes/credentials/registry_base",
            "at most 500",
        ),
        ({"x\x00": 1}, "/data/attributes/x\x00", "NUL"),
    ],
    ids=["nul", "long-name", "long-base", "nul-in-credentials", "long-credential", "nul-key"],
)
async def test_text_a_column_cannot_hold_is_a_400_naming_the_member(
    api: ApiClient, attributes: dict[str, Any], pointer: str, said: str
) -> None:
    stream = io.StringIO()
    configure_logging("debug", service="control-plane", stream=stream)
    acct = await _account(api)
    given = {"credentials": _CREDENTIALS} | _INTEGRATION | attributes
    body = {"data": {"type": "integration", "attributes": given}}
    answer = await api.call("POST", f"/rest/orgs/{acct.org.id}/integrations", body=body)
    assert answer.status == 400
    error = answer.error()
    assert error["source"] == {"pointer": pointer} and said in error["detail"]
    assert PASSWORD not in answer.body.decode() and PASSWORD not in stream.getvalue()
    assert await _integrations(api) == 0


@BOTH
@pytest.mark.parametrize("parameter", ["names", "tags", "target_reference", "origins"])
async def test_a_nul_in_a_query_parameter_is_a_400_naming_it(
    api: ApiClient, parameter: str
) -> None:
    acct = await _account(api)
    answer = await api.get(f"/rest/orgs/{acct.org.id}/projects?{parameter}=a%00b:c")
    assert answer.status == 400
    error = answer.error()
    assert error["source"] == {"parameter": parameter} and "NUL" in error["detail"]


@BOTH
@pytest.mark.parametrize(
    ("member", "said"),
    [
        ({"platform": "linux/" + "a" * 100}, "platform: String should have at most 100"),
        ({"digest": "sha256:\x00"}, "digest: String should match"),
        ({"image": "app\x00:1"}, "image: String should match"),
        ({"resultId": "r\x00"}, "resultId: String should match"),
        ({"packageCount": 2**40}, "packageCount: Input should be less than"),
        ({"chunk": {"index": 10**12, "count": 2}}, "chunk.index: Input should be less than"),
        (
            {"status": "error", "sbom": None, "error": {"message": "m\x00", "step": "pull"}},
            "error.message: String should match",
        ),
    ],
    ids=[
        "long-platform",
        "nul-digest",
        "nul-image",
        "nul-result-id",
        "huge-count",
        "huge-index",
        "nul-error",
    ],
)
async def test_a_callback_member_a_column_cannot_hold_is_a_400_naming_it(
    plane: ApiClient, box: SecretBox, member: dict[str, Any], said: str
) -> None:
    scan, _ = await _running_scan(plane.db)
    body = f.result_body(str(scan.id), seal(box, scan.id), sbom=f.cyclonedx(DEB), result_id="n")
    status, answer = await _post(plane, "/api/v2/import/result", f.raw(body | member))
    assert status == 400 and said in answer["message"]
    assert await _stored(plane.db, scan.id) == ("running", [])


# --------------------------------------------------------------------------- console

CONSOLE_PASSWORD = "console-Pa55-hostile"


@pytest.fixture
async def console(db: Database, box: SecretBox) -> AsyncIterator[ClientSession]:
    """The console on its own app, signed in as a user of the first org."""
    async with _signed_in_console(db, box) as http:
        yield http


@contextlib.asynccontextmanager
async def _signed_in_console(
    db: Database, box: SecretBox, *, extra: Callable[[web.Application], None] | None = None
) -> AsyncIterator[ClientSession]:
    app = web.Application()
    settings = load_server_settings({})
    setup_console(app, db, box, RegistryAgent(settings, box, None), lambda: None)
    if extra is not None:
        extra(app)
    async with db.sessions() as session, session.begin():
        await factories.account(session)
        await set_password(session, "alice", CONSOLE_PASSWORD)
    server = TestServer(app)
    await server.start_server()
    base = str(server.make_url("")).rstrip("/")
    async with ClientSession(base, cookie_jar=CookieJar(unsafe=True)) as http:
        form = {"username": "alice", "password": CONSOLE_PASSWORD, "next": "/console/registries"}
        async with http.post("/console/sign-in", data=form | await _csrf(http)) as resp:
            assert resp.status == 200 and resp.url.path == "/console/registries"
        yield http
    await server.close()


@BOTH
async def test_a_console_fault_of_ours_is_an_error_page_naming_a_request_id(
    db: Database, box: SecretBox
) -> None:
    secret = "s3cr3t-" + "y" * 20

    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError(f"a bug holding {secret}")

    def add(app: web.Application) -> None:
        app.router.add_get("/console/test-broken", broken)

    async with (
        _signed_in_console(db, box, extra=add) as http,
        http.get("/console/test-broken") as resp,
    ):
        page = await resp.text()
    assert resp.status == 500 and resp.content_type == "text/html"
    assert "its log names this request" in page and secret not in page


async def _csrf(http: ClientSession) -> dict[str, str]:
    async with http.get("/console/sign-in") as resp:
        page = await resp.text()
    return {"csrf_token": page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]}


@BOTH
@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({"name": "r" * 201}, "profile_name must be at most 200"),
        ({"name": "a\x00b"}, "The field name holds a NUL"),
        ({"host": "https://h\x00.test"}, "The field host holds a NUL"),
    ],
    ids=["long-name", "nul-name", "nul-host"],
)
async def test_a_console_registry_form_a_column_cannot_hold_is_refused_naming_the_field(
    console: ClientSession, db: Database, fields: dict[str, str], said: str
) -> None:
    form = {"type": "harbor-cr", "connection": "direct", "host": "https://h.test"}
    form |= {"username": "u", "password": PASSWORD} | fields | await _csrf(console)
    async with console.post("/console/registries", data=form) as resp:
        status, page = resp.status, await resp.text()
    assert status == 400 and html.escape(said, quote=False) in page
    assert PASSWORD not in page
    async with db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Integration)) == 0


@BOTH
async def test_a_console_image_filter_with_a_nul_is_refused_naming_it(
    console: ClientSession,
) -> None:
    async with console.get("/console/images?q=a%00b") as resp:
        assert resp.status == 400 and "The field q holds a NUL" in await resp.text()


async def test_a_console_sync_policy_nested_too_deeply_is_refused_naming_it(
    console: ClientSession, db: Database, box: SecretBox
) -> None:
    rule = "[" * 10_000 + "]" * 10_000
    async with db.sessions() as session, session.begin():
        org = await session.scalar(select(Org).order_by(Org.created_at).limit(1))
        assert org is not None
        registry = await factories.integration(session, box, org)
    form = {"policy_name": "p", "schedule_frequency_hours": "24", "import_policy": rule}
    path = f"/console/registries/{registry.id}/sync-policy"
    async with console.post(path, data=form | await _csrf(console)) as resp:
        status, page = resp.status, await resp.text()
    assert status == 400 and "nested too deeply" in page


async def test_chunks_that_disagree_on_their_count_are_refused_and_nothing_is_cut(
    plane: ApiClient, box: SecretBox
) -> None:
    scan, _ = await _running_scan(plane.db)
    assert (await _post(plane, "/api/v2/import/result", _chunk(box, scan, "c0", 0)))[0] == 202
    status, answer = await _post(plane, "/api/v2/import/result", _chunk(box, scan, "c1", 1, 3))
    assert status == 409 and "chunk.count 3 differs" in answer["message"]
    status, answer = await _post(plane, "/api/v2/import/result", _chunk(box, scan, "c2", 2))
    assert status == 400 and "chunk: Value error, index 2 is not below count 2" in answer["message"]
    assert await _stored(plane.db, scan.id) == ("running", [])
    assert (await _post(plane, "/api/v2/import/result", _chunk(box, scan, "c1", 1)))[0] == 200
    state, sboms = await _stored(plane.db, scan.id)
    cyclonedx = json.loads(next(s for s in sboms if b"bomFormat" in s))
    assert state == "succeeded" and [c["name"] for c in cyclonedx["components"]] == ["c0", "c1"]


def _target(name: str) -> bytes:
    return json.dumps({"target": {"name": name}}).encode()


@BOTH
@pytest.mark.parametrize(
    ("raw", "status", "said"),
    [
        (b'{"target": ' * 10_000 + b"{}" + b"}" * 10_000, 400, "nested too deeply"),
        (_target("r" * 501 + ":t"), 400, "the repository must be at most 500"),
        (_target("r:" + "t" * 301), 400, "the tag must be at most 300"),
        (b"{" + b" " * CALLBACK_BODY + b"}", 413, f"body size {CALLBACK_BODY}"),
    ],
    ids=["deep", "long-repository", "long-tag", "over-limit"],
)
async def test_the_v1_import_refuses_what_it_cannot_take_with_a_v1_error(
    plane: ApiClient, box: SecretBox, raw: bytes, status: int, said: str
) -> None:
    acct = await _account(plane)
    async with plane.db.sessions() as session, session.begin():
        hub = await factories.integration(session, box, acct.org)
    answer = await plane.call(
        "POST",
        f"/v1/org/{acct.org.id}/integrations/{hub.id}/import",
        raw=raw,
        content_type="application/json",
    )
    assert answer.status == status
    assert answer.json["code"] == status and said in answer.json["message"]


async def test_a_chunked_result_over_the_joined_limit_fails_its_scan_naming_the_limit(
    plane: ApiClient, box: SecretBox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(results, "MAX_JOINED_BYTES", 1000)
    scan, _ = await _running_scan(plane.db)
    assert (await _post(plane, "/api/v2/import/result", _chunk(box, scan, "c0", 0)))[0] == 202
    assert (await _post(plane, "/api/v2/import/result", _chunk(box, scan, "c1", 1)))[0] == 200
    assert await _stored(plane.db, scan.id) == ("failed", [])
    async with plane.db.sessions() as session:
        stored = await session.get(Scan, scan.id)
        assert stored is not None and stored.error is not None
        assert "over the 1000 joined" in stored.error and stored.failed_step == "callback"
        assert await session.scalar(select(func.count()).select_from(ResultChunk)) == 0
