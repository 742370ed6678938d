"""Catalog clients against our API: pysnyk (PyPI) and seed 000's jq selector (Debian's jq)."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
import snyk

from control_plane.encryption import SecretBox
from tests.control_plane import factories
from tests.control_plane.api_client import ApiClient

SEED_000 = (
    next(Path("/work/shared/seeds").glob("000_*"), None)
    if Path("/work/shared/seeds").exists()
    else None
)

#: seed 000's selector (Port's Snyk integration config), as printed in the product document
SEED_SELECTOR = (
    '.attributes as $attr | ["ecr", "gcr", "docker-hub", "github-cr", '
    '"gitlab-cr"] | contains([$attr.origin]) as $origin_check | ["deb", '
    '"apk", "rpm"] | contains([$attr.type]) as $type_check | $origin_check '
    "and $type_check"
)


def test_the_selector_is_the_one_printed_in_seed_000() -> None:
    if SEED_000 is None:
        pytest.skip("product documents not present")
    text = " ".join(SEED_000.read_text().split())
    assert " ".join(SEED_SELECTOR.split()) in text


async def test_pysnyk_lists_orgs_and_every_project_across_pages(
    api: ApiClient, box: SecretBox
) -> None:
    async with api.db.sessions() as session, session.begin():
        acct = await factories.account(session, "Catalog Org")
        ecr = await factories.integration(session, box, acct.org, "ecr")
        hub = await factories.integration(session, box, acct.org, "docker-hub")
        stored = {}
        kinds = ["deb", "apk", "rpm", "linux"]
        for i in range(230):  # three pages of 100
            project = await factories.scanned_project(
                session,
                acct.org,
                ecr if i % 2 else hub,
                f"team/app{i}",
                f"v{i}",
                package_type=kinds[i % 4],
                importer=acct.user,
            )
            stored[str(project.id)] = (project.name, project.origin, project.type)
    client = snyk.SnykClient(acct.token, url=f"{api.base}/v1", rest_api_url=f"{api.base}/rest")

    def read() -> tuple[list[snyk.models.Organization], list[snyk.models.Project]]:
        orgs = client.organizations.all()
        return orgs, orgs[0].projects.all()

    orgs, projects = await asyncio.to_thread(read)
    assert [(o.id, o.name, o.slug) for o in orgs] == [
        (str(acct.org.id), "Catalog Org", "catalog-org")
    ]
    assert len(projects) == 230
    assert {p.id: (p.name, p.origin, p.type) for p in projects} == stored
    for p in projects:
        counts = p.issueCountsBySeverity
        assert (counts.critical, counts.high, counts.medium, counts.low) == (0, 0, 0, 0)
        assert p.importingUserId == str(acct.user.id)
        assert p.testFrequency == "daily"


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed (apt-get install jq)")
async def test_seed_000_selector_picks_the_os_package_projects_of_the_listed_origins(
    api: ApiClient, box: SecretBox
) -> None:
    async with api.db.sessions() as session, session.begin():
        acct = await factories.account(session)
        by_origin = {
            kind: await factories.integration(session, box, acct.org, kind)
            for kind in (
                "ecr",
                "gcr",
                "docker-hub",
                "github-cr",
                "gitlab-cr",
                "harbor-cr",
                "quay-cr",
            )
        }
        expected = set()
        for origin, integration in by_origin.items():
            for kind in ("deb", "apk", "rpm", "linux", None):
                project = await factories.scanned_project(
                    session, acct.org, integration, f"{origin}/img-{kind}", "1.0", package_type=kind
                )
                if origin not in ("harbor-cr", "quay-cr") and kind in ("deb", "apk", "rpm"):
                    expected.add(str(project.id))
    api.token = acct.token
    items = []
    path = f"/rest/orgs/{acct.org.id}/projects?expand=target&meta.latest_issue_counts=true&limit=10"
    while path:
        answer = await api.get(path)
        assert answer.status == 200
        items += answer.json["data"]
        path = answer.json["links"].get("next")
    assert len(items) == 35
    # jq applies the selector to each input document, as Port applies it to each project
    jq = await asyncio.create_subprocess_exec(
        "jq", "-c", SEED_SELECTOR, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await jq.communicate("\n".join(json.dumps(i) for i in items).encode())
    assert jq.returncode == 0
    verdicts = [json.loads(line) for line in out.decode().split()]
    assert len(verdicts) == len(items)
    selected = [item for item, keep in zip(items, verdicts, strict=True) if keep is True]
    assert {s["id"] for s in selected} == expected
    for item in selected:
        target_id = item["relationships"]["target"]["data"]["id"]
        target = await api.get(f"/rest/orgs/{acct.org.id}/targets/{target_id}")
        repository = item["attributes"]["name"].rsplit(":", 1)[0]
        assert target.json["data"]["attributes"]["display_name"] == repository
        assert item["relationships"]["target"]["data"]["attributes"]["display_name"] == repository


#: the jq docs/catalog.md gives for ECR repository tags on our targets
TARGET_TAGS_JQ = '.attributes.tags | from_entries | keys[] | select(startswith("port-")) | .[5:]'


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed (apt-get install jq)")
async def test_documented_jq_finds_the_services_of_an_ecr_repository(
    api: ApiClient, box: SecretBox
) -> None:
    assert TARGET_TAGS_JQ in (Path(__file__).parents[2] / "docs" / "catalog.md").read_text()
    tags = [
        {"Key": "port-auth-service", "Value": ""},
        {"Key": "team", "Value": "identity"},
        {"Key": "port-login", "Value": "x"},
    ]
    async with api.db.sessions() as session, session.begin():
        acct = await factories.account(session)
        ecr = await factories.integration(session, box, acct.org, "ecr")
        project = await factories.scanned_project(
            session, acct.org, ecr, "auth/api", target_tags=tags
        )
    api.token = acct.token
    target = await api.get(f"/rest/orgs/{acct.org.id}/targets/{project.target_id}")
    jq = await asyncio.create_subprocess_exec(
        "jq", "-r", TARGET_TAGS_JQ, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await jq.communicate(json.dumps(target.json["data"]).encode())
    assert jq.returncode == 0
    assert out.decode().split() == ["auth-service", "login"]
