"""The projects endpoints in Snyk's shapes, on SQLite and PostgreSQL."""

from __future__ import annotations

from control_plane.encryption import SecretBox
from tests.control_plane import factories
from tests.control_plane.api_client import ApiClient


async def test_projects_page_renders_stored_projects_with_target_expanded(
    api: ApiClient, box: SecretBox
) -> None:
    async with api.db.sessions() as session, session.begin():
        acct = await factories.account(session)
        hub = await factories.integration(session, box, acct.org)
        project = await factories.scanned_project(
            session, acct.org, hub, "library/debian", "12", importer=acct.user, package_count=88
        )
    api.token = acct.token
    answer = await api.get(
        f"/rest/orgs/{acct.org.id}/projects?expand=target&meta.latest_issue_counts=true"
        "&meta.latest_dependency_total=true&limit=100"
    )
    assert answer.status == 200
    assert answer.content_type == "application/vnd.api+json"
    assert answer.headers["snyk-version-served"] == "2024-05-31"
    [item] = answer.json["data"]
    assert item["id"] == str(project.id)
    assert item["attributes"]["name"] == "library/debian:12"
    assert item["attributes"]["type"] == "deb"
    assert item["attributes"]["origin"] == "docker-hub"
    assert item["attributes"]["target_reference"] == "12"
    target = item["relationships"]["target"]["data"]
    assert target["id"] == str(project.target_id)
    assert target["attributes"]["display_name"] == "library/debian"
    assert item["relationships"]["organization"]["data"]["id"] == str(acct.org.id)
    assert item["relationships"]["importer"]["data"]["id"] == str(acct.user.id)
    assert item["meta"]["latest_issue_counts"] == {
        "critical": 0,
        "high": 0,
        "medium": 0,
        "low": 0,
        "updated_at": None,
    }
    assert item["meta"]["latest_dependency_total"]["total"] == 88
    assert "next" not in answer.json["links"]
