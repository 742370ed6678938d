"""Pagination, filters and the other resources of the REST API (answers checked against the
OpenAPI document by the client fixture)."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlsplit

from control_plane.encryption import SecretBox
from control_plane.scans.services import ScanOutcome, enqueue_scan, record_success
from tests.control_plane import factories
from tests.control_plane.api_client import ApiClient


async def _catalog(
    api: ApiClient, box: SecretBox
) -> tuple[factories.Account, dict[str, list[str]]]:
    """25 projects: ecr deb, gcr apk, docker-hub rpm, in 5 repositories with 5 tags each."""
    names: dict[str, list[str]] = {}
    async with api.db.sessions() as session, session.begin():
        acct = await factories.account(session)
        integrations = [
            (await factories.integration(session, box, acct.org, kind), ptype)
            for kind, ptype in (("ecr", "deb"), ("gcr", "apk"), ("docker-hub", "rpm"))
        ]
        for r in range(5):
            integration, ptype = integrations[r % 3]
            for t in range(5):
                project = await factories.scanned_project(
                    session,
                    acct.org,
                    integration,
                    f"team{r}/svc",
                    f"1.{t}",
                    package_type=ptype,
                    importer=acct.user,
                    tags=[("team", f"t{r}"), ("stage", "prod" if t % 2 else "dev")],
                )
                names.setdefault(integration.integration_type, []).append(project.name)
    api.token = acct.token
    return acct, names


async def _walk(api: ApiClient, path: str) -> list[dict[str, object]]:
    items: list[dict[str, object]] = []
    next_path: str | None = path
    while next_path:
        answer = await api.get(next_path)
        assert answer.status == 200, answer.body
        items += answer.json["data"]
        next_path = answer.json["links"].get("next")
    return items


async def test_pages_follow_next_and_prev_and_repeat_every_parameter(
    api: ApiClient, box: SecretBox
) -> None:
    acct, names = await _catalog(api, box)
    base = f"/rest/orgs/{acct.org.id}/projects"
    first = await api.get(
        f"{base}?version=2024-05-31&origins=ecr,gcr,docker-hub&expand=target&limit=10"
    )
    links = first.json["links"]
    assert len(first.json["data"]) == 10
    assert "prev" not in links
    parts = urlsplit(links["next"])
    assert parts.path == base and not parts.netloc  # relative
    query = dict(parse_qsl(parts.query))
    assert query["version"] == "2024-05-31" and query["origins"] == "ecr,gcr,docker-hub"
    assert query["expand"] == "target" and query["limit"] == "10" and "starting_after" in query
    second = await api.get(links["next"])
    assert len(second.json["data"]) == 10
    third = await api.get(second.json["links"]["next"])
    assert len(third.json["data"]) == sum(map(len, names.values())) - 20 == 5
    assert "next" not in third.json["links"]
    back = await api.get(third.json["links"]["prev"])
    assert [p["id"] for p in back.json["data"]] == [p["id"] for p in second.json["data"]]
    # the same filter as a repeated parameter (what Ocean's replay of links may send)
    repeated = await _walk(api, f"{base}?origins=ecr&origins=gcr&limit=100")
    walked = await _walk(api, f"{base}?origins=ecr%2Cgcr&limit=10")
    assert [p["id"] for p in repeated] == [p["id"] for p in walked]
    assert sorted(p["attributes"]["name"] for p in walked) == sorted(names["ecr"] + names["gcr"])  # type: ignore[index]


async def test_every_filter_selects_what_it_names(api: ApiClient, box: SecretBox) -> None:
    acct, names = await _catalog(api, box)
    base = f"/rest/orgs/{acct.org.id}/projects?limit=100"
    everything = await _walk(api, base)
    assert len(everything) == 25

    def names_of(items: list[dict[str, object]]) -> set[str]:
        return {p["attributes"]["name"] for p in items}  # type: ignore[index]

    assert names_of(await _walk(api, f"{base}&types=rpm")) == set(names["docker-hub"])
    assert names_of(await _walk(api, f"{base}&types=deb,apk&origins=gcr")) == set(names["gcr"])
    assert names_of(await _walk(api, f"{base}&names=team1/svc:1.2,team4/svc:1.0")) == {
        "team1/svc:1.2",
        "team4/svc:1.0",
    }
    assert len(await _walk(api, f"{base}&names_start_with=team2/,team3/")) == 10
    assert len(await _walk(api, f"{base}&target_reference=1.3")) == 5
    some = [str(p["id"]) for p in everything[:3]]
    assert [p["id"] for p in await _walk(api, f"{base}&ids={','.join(some)}")] == some
    target_id = everything[0]["relationships"]["target"]["data"]["id"]  # type: ignore[index]
    by_target = await _walk(api, f"{base}&target_id={target_id}")
    assert len(by_target) == 5
    tagged = await _walk(api, f"{base}&tags=team:t2,stage:prod")
    assert names_of(tagged) == {"team2/svc:1.1", "team2/svc:1.3"}
    assert await _walk(api, f"{base}&importing_user_public_id={acct.user.id}") == everything
    assert await _walk(api, f"{base}&origins=quay-cr") == []


async def test_project_patch_delete_and_sbom(api: ApiClient, box: SecretBox) -> None:
    async with api.db.sessions() as session, session.begin():
        acct = await factories.account(session)
        hub = await factories.integration(session, box, acct.org)
        project = await factories.scanned_project(
            session, acct.org, hub, "web", "2.0", package_count=4
        )
    api.token = acct.token
    path = f"/rest/orgs/{acct.org.id}/projects/{project.id}"
    patched = await api.call(
        "PATCH",
        path,
        body={
            "data": {
                "type": "project",
                "id": str(project.id),
                "attributes": {
                    "tags": [{"key": "port-web", "value": ""}, {"key": "team", "value": "web"}],
                    "environment": ["backend", "saas"],
                    "test_frequency": "weekly",
                },
                "relationships": {"owner": {"data": {"type": "user", "id": str(acct.user.id)}}},
            }
        },
    )
    assert patched.status == 200
    attributes = patched.json["data"]["attributes"]
    assert attributes["tags"] == [{"key": "port-web", "value": ""}, {"key": "team", "value": "web"}]
    assert attributes["environment"] == ["backend", "saas"]
    assert attributes["settings"]["recurring_tests"]["frequency"] == "weekly"
    assert patched.json["data"]["relationships"]["owner"]["data"]["id"] == str(acct.user.id)
    one = await api.get(f"{path}?expand=target&meta.latest_dependency_total=true")
    assert one.json["data"]["meta"]["latest_dependency_total"]["total"] == 4
    assert (
        one.json["data"]["relationships"]["target"]["data"]["attributes"]["display_name"] == "web"
    )

    sbom = await api.get(f"{path}/sbom?format=cyclonedx1.6%2Bjson")
    assert sbom.status == 200 and sbom.content_type == "application/vnd.cyclonedx+json"
    assert sbom.body == factories.cyclonedx("web:2.0", 4)
    assert (await api.get(f"{path}/sbom?format=spdx")).status == 404
    assert (await api.get(f"{path}/sbom?format=xml")).error()["source"] == {"parameter": "format"}

    assert (await api.call("DELETE", path)).status == 204
    assert (await api.get(path)).status == 404
    listed = await api.get(f"/rest/orgs/{acct.org.id}/projects")
    assert listed.json["data"] == []


async def test_sbom_download_is_what_the_scan_stored(api: ApiClient, box: SecretBox) -> None:
    async with api.db.sessions() as session, session.begin():
        acct = await factories.account(session)
        hub = await factories.integration(session, box, acct.org)
        project = await factories.scanned_project(
            session, acct.org, hub, "alpine", "3.20", package_type=None
        )
        document = json.dumps(
            {"spdxVersion": "SPDX-2.3", "packages": [{"name": "musl"}] * 50}, indent=2
        ).encode()
        scan = await enqueue_scan(session, project)
        await record_success(
            session,
            scan.id,
            ScanOutcome("sha256:" + "c" * 64, "linux/amd64", "apk", 50, sboms={"spdx": document}),
        )
    api.token = acct.token
    answer = await api.get(f"/rest/orgs/{acct.org.id}/projects/{project.id}/sbom?format=spdx")
    assert answer.body == document
    assert answer.content_type == "application/spdx+json"
    assert answer.headers["snyk-scan-id"] == str(scan.id)


async def test_targets_carry_ecr_tags_and_delete_tombstones_projects(
    api: ApiClient, box: SecretBox
) -> None:
    tags = [{"Key": "port-auth-service", "Value": ""}, {"Key": "team", "Value": "identity"}]
    async with api.db.sessions() as session, session.begin():
        acct = await factories.account(session)
        ecr = await factories.integration(session, box, acct.org, "ecr")
        project = await factories.scanned_project(
            session, acct.org, ecr, "auth/api", "1", target_tags=tags
        )
        await factories.scanned_project(session, acct.org, ecr, "auth/api", "2")
        await factories.scanned_project(session, acct.org, ecr, "billing/api", "1")
    api.token = acct.token
    base = f"/rest/orgs/{acct.org.id}/targets"
    listed = await api.get(f"{base}?limit=10")
    assert [t["attributes"]["display_name"] for t in listed.json["data"]] == [
        "auth/api",
        "billing/api",
    ]
    auth = listed.json["data"][0]
    assert auth["attributes"]["tags"] == tags
    assert auth["relationships"]["integration"]["data"]["attributes"]["integration_type"] == "ecr"
    assert auth["relationships"]["organization"]["data"]["id"] == str(acct.org.id)
    prefixed = await api.get(f"{base}?display_name=bill")
    assert [t["attributes"]["display_name"] for t in prefixed.json["data"]] == ["billing/api"]
    assert (await api.call("DELETE", f"{base}/{project.target_id}")).status == 204
    assert (await api.get(f"{base}/{project.target_id}")).status == 404
    remaining = await api.get(f"/rest/orgs/{acct.org.id}/projects")
    assert [p["attributes"]["name"] for p in remaining.json["data"]] == ["billing/api:1"]


async def test_integrations_lifecycle(api: ApiClient, box: SecretBox) -> None:
    async with api.db.sessions() as session, session.begin():
        acct = await factories.account(session)
    api.token = acct.token
    base = f"/rest/orgs/{acct.org.id}/integrations"
    created = await api.call(
        "POST",
        base,
        body={
            "data": {
                "type": "integration",
                "attributes": {
                    "integration_type": "ecr",
                    "profile_name": "prod ECR",
                    "credentials": {
                        "role_arn": "arn:aws:iam::123456789012:role/cr",
                        "region": "eu-west-1",
                    },
                },
            }
        },
    )
    assert created.status == 201
    ident = created.json["data"]["id"]
    assert created.headers["Location"] == f"{base}/{ident}"
    assert created.json["data"]["attributes"]["has_broker"] is False
    assert "broker_token" not in created.json["data"]["attributes"]
    renamed = await api.call(
        "PATCH",
        f"{base}/{ident}",
        body={
            "data": {
                "type": "integration",
                "id": ident,
                "attributes": {"profile_name": "ECR", "is_active": False},
            }
        },
    )
    assert renamed.json["data"]["attributes"]["profile_name"] == "ECR"
    assert renamed.json["data"]["attributes"]["is_active"] is False
    cannot = await api.call(
        "PATCH",
        f"{base}/{ident}",
        body={"data": {"type": "integration", "attributes": {"has_broker": True}}},
    )
    assert cannot.error()["source"] == {"pointer": "/data/attributes/has_broker"}
    listed = await api.get(f"{base}?integration_type=ecr")
    assert [i["id"] for i in listed.json["data"]] == [ident]
    assert (await api.call("DELETE", f"{base}/{ident}")).status == 204
    assert (await api.get(f"{base}/{ident}")).status == 404
    taken = {
        "data": {
            "type": "integration",
            "attributes": {
                "integration_type": "harbor-cr",
                "has_broker": True,
                "broker_token": "same-token-123",
            },
        }
    }
    assert (await api.call("POST", base, body=taken)).status == 201
    clash = await api.call("POST", base, body=taken)
    assert clash.status == 409


async def test_users_orgs_and_v1_orgs(api: ApiClient, box: SecretBox) -> None:
    async with api.db.sessions() as session, session.begin():
        acct = await factories.account(session, "Platform Team")
        await factories.account(session, "Someone Else")
    api.token = acct.token
    user = await api.get(f"/rest/orgs/{acct.org.id}/users/{acct.user.id}?version=2021-09-13~beta")
    assert user.headers["snyk-version-served"] == "2021-06-04~beta"
    assert user.headers["snyk-version-lifecycle-stage"] == "beta"
    assert user.json["data"]["attributes"]["username"] == acct.user.username
    assert user.json["data"]["attributes"]["membership"]["strategy"] == "direct"
    orgs = await api.get("/rest/orgs")
    assert [(o["attributes"]["name"], o["attributes"]["slug"]) for o in orgs.json["data"]] == [
        ("Platform Team", "platform-team")
    ]
    one = await api.get(f"/rest/orgs/{acct.org.id}")
    assert one.json["data"]["id"] == str(acct.org.id)
    v1 = await api.get("/v1/orgs")
    assert [o["slug"] for o in v1.json["orgs"]] == ["platform-team"]


async def test_admins_see_every_org(api: ApiClient, box: SecretBox) -> None:
    async with api.db.sessions() as session, session.begin():
        admin = await factories.account(session, "Admin Org", admin=True)
        other = await factories.account(session, "Other Org")
    api.token = admin.token
    orgs = await api.get("/rest/orgs?limit=100")
    assert {o["id"] for o in orgs.json["data"]} == {str(admin.org.id), str(other.org.id)}
    assert (await api.get(f"/rest/orgs/{other.org.id}/projects")).status == 200


async def test_healthcheck_metrics_and_openapi(api: ApiClient, box: SecretBox) -> None:
    api.token = None
    health = await api.get("/healthcheck")
    assert health.status == 200 and health.json["ok"] is True
    await api.get("/rest/orgs")  # a 401, counted
    metrics = await api.get("/metrics")
    assert (
        'control_plane_requests_total{method="GET",route="/rest/orgs",status="401"} 1.0'
        in metrics.body.decode()
    )
    spec = await api.get("/openapi.json")
    assert "/rest/orgs/{org_id}/projects" in spec.json["paths"]
