"""What the web console relies on, built through the domain (no browser): console passwords,
the images list's filters and keyset pages, the listing of a registry's images, and the
packages read from a stored SBOM, and names shown as text in a sync preview."""

from __future__ import annotations

import io
import json
import uuid
from html import escape

import aiohttp_jinja2
import pytest
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane import cli
from control_plane.accounts.services import set_password, sign_in
from control_plane.console.app import setup_templates
from control_plane.db import Database
from control_plane.encryption import SecretBox
from control_plane.errors import InvalidInput
from control_plane.integrations.listing import add_listed_images
from control_plane.models import Integration, User
from control_plane.projects.image_list import PAGE_SIZE, ImageQuery, list_images
from control_plane.results.sbom_packages import image_facts
from control_plane.sync.models import SyncRun
from tests.control_plane import factories


async def test_a_password_signs_in_only_its_user_and_is_stored_hashed(db: Database) -> None:
    async with db.sessions() as session, session.begin():
        acct = await factories.account(session)
        await set_password(session, acct.user.username, "correct horse")
        assert await sign_in(session, acct.user.username, "wrong horse") is None
        assert await sign_in(session, "nobody", "correct horse") is None
        principal = await sign_in(session, acct.user.username, "correct horse")
        assert principal is not None and principal.user_id == acct.user.id
        assert principal.token_id is None and acct.org.id in principal.org_ids
        stored = await session.scalar(select(User.password_hash).where(User.id == acct.user.id))
        assert stored is not None and stored.startswith("$argon2id$")
        assert "correct horse" not in stored
        with pytest.raises(InvalidInput, match="at least 8"):
            await set_password(session, acct.user.username, "short")


def test_user_create_reads_the_password_from_stdin(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRBROKER_DATA_DIR", str(tmp_path))
    monkeypatch.setattr("sys.stdin", io.StringIO("a-long-password\n"))
    out, err = io.StringIO(), io.StringIO()
    assert cli.run(["user", "create", "alice", "--admin"], out=out, err=err) == 0, err.getvalue()
    assert "alice" in out.getvalue() and "a-long-password" not in out.getvalue()
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert cli.run(["user", "create", "bob"], out=out, err=err) == 2
    assert "at least 8 characters" in err.getvalue()


async def _org_with_registry(
    session: AsyncSession, box: SecretBox
) -> tuple[factories.Account, Integration]:
    acct = await factories.account(session)
    return acct, await factories.integration(session, box, acct.org)


async def test_the_images_list_pages_by_keyset_filters_and_sorts(
    db: Database, box: SecretBox
) -> None:
    async with db.sessions() as session, session.begin():
        acct, hub = await _org_with_registry(session, box)
        total = PAGE_SIZE + 7
        for n in range(total):
            await factories.scanned_project(
                session,
                acct.org,
                hub,
                f"team/app-{n:03d}",
                package_type="deb" if n % 3 == 0 else None,
                package_count=n,
            )
    async with db.sessions() as session:
        first = await list_images(session, acct.org.id, ImageQuery())
        assert len(first.rows) == PAGE_SIZE and first.next_cursor is not None
        second = await list_images(session, acct.org.id, ImageQuery(after=first.next_cursor))
        assert second.next_cursor is None
        names = [r.name for r in [*first.rows, *second.rows]]
        assert names == sorted(f"team/app-{n:03d}:latest" for n in range(total))
        scanned = await list_images(session, acct.org.id, ImageQuery(status="succeeded"))
        assert {r.name for r in scanned.rows} == {
            f"team/app-{n:03d}:latest" for n in range(total) if n % 3 == 0
        }
        assert all(
            r.status == "succeeded" and r.dependencies == int(r.name[9:12]) for r in scanned.rows
        )
        unscanned = await list_images(
            session, acct.org.id, ImageQuery(status="not-scanned", name="app-00")
        )
        assert {r.name for r in unscanned.rows} == {
            f"team/app-00{n}:latest" for n in range(10) if n % 3
        }
        biggest = await list_images(session, acct.org.id, ImageQuery(sort="-dependencies"))
        assert biggest.rows[0].name == f"team/app-{(total - 1) // 3 * 3:03d}:latest"
        with pytest.raises(InvalidInput, match="status must be one of"):
            await list_images(session, acct.org.id, ImageQuery(status="<b>"))
        with pytest.raises(InvalidInput, match="cursor"):
            await list_images(session, acct.org.id, ImageQuery(after="bm90IGpzb24="))
        with pytest.raises(InvalidInput, match="cursor of this sort"):
            await list_images(
                session, acct.org.id, ImageQuery(sort="-dependencies", after=first.next_cursor)
            )


async def test_listing_adds_unknown_images_once_and_never_for_an_inactive_registry(
    db: Database, box: SecretBox
) -> None:
    async with db.sessions() as session, session.begin():
        acct, hub = await _org_with_registry(session, box)
        images = [("team/a", "1"), ("team/a", "2"), ("team/b", "latest")]
        report = await add_listed_images(session, hub, images)
        assert (report.listed, report.added) == (3, 3)
        again = await add_listed_images(session, hub, [*images, ("team/c", "x")])
        assert (again.listed, again.added) == (4, 1)
        assert hub.last_listed_at is not None
        page = await list_images(session, acct.org.id, ImageQuery(registry=hub.id))
        assert [r.name for r in page.rows] == ["team/a:1", "team/a:2", "team/b:latest", "team/c:x"]
        assert all(r.status is None and r.dependencies is None for r in page.rows)
        hub.is_active = False
        with pytest.raises(InvalidInput, match="inactive: its images are not listed"):
            await add_listed_images(session, hub, [("team/d", "1")])
        other = await list_images(session, acct.org.id, ImageQuery(registry=uuid.uuid4()))
        assert other.rows == []


def test_packages_carry_the_layer_that_introduced_them() -> None:
    prop = lambda k, v: {"name": k, "value": v}  # noqa: E731
    document = {
        "metadata": {
            "component": {
                "name": "demo/app",
                "version": "sha256:abc",
                "properties": [prop("crbroker:image:platform", "linux/arm64")],
            }
        },
        "components": [
            {"type": "operating-system", "name": "debian", "version": "12"},
            {
                "type": "library",
                "name": "curl",
                "version": "7.88.1-10",
                "purl": "pkg:deb/debian/curl@7.88.1-10",
                "licenses": [{"license": {"id": "curl"}}],
                "properties": [
                    prop("crbroker:package:type", "deb"),
                    prop("crbroker:layer:index", "1"),
                    prop("crbroker:layer:diffID", "sha256:def"),
                    prop("crbroker:layer:createdBy", "RUN apt-get install -y curl"),
                ],
            },
        ],
    }
    facts = image_facts(json.dumps(document).encode())
    assert (facts.name, facts.digest, facts.platform, facts.distro) == (
        "demo/app",
        "sha256:abc",
        "linux/arm64",
        "debian 12",
    )
    (curl,) = facts.packages
    assert (curl.name, curl.version, curl.type, curl.licence) == (
        "curl",
        "7.88.1-10",
        "deb",
        "curl",
    )
    assert (curl.layer_index, curl.layer_diff_id) == (1, "sha256:def")
    assert curl.layer_created_by == "RUN apt-get install -y curl"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("/console/images?name=a", "/console/images?name=a"),
        ("https://evil.example/console/", "/console"),
        ("//evil.example/console/", "/console"),
        ("/consolex", "/console"),
        (None, "/console"),
    ],
)
def test_sign_in_returns_only_to_a_console_page(given: object, expected: str) -> None:
    from control_plane.console.signin import _next

    assert _next(given) == expected


def test_a_dry_run_preview_shows_html_in_names_as_text() -> None:
    # docker-registry refuses such names; another registry type's listing may not
    hostile = "<img src=x onerror=alert(1)>"
    app = web.Application()
    setup_templates(app)
    run = SyncRun(
        id=uuid.uuid4(),
        integration_id=uuid.uuid4(),
        status="completed",
        imported=1,
        deleted=1,
        skipped=0,
        result={
            "images_to_import": [
                {"repository": hostile, "tags": [{"tag": "<b>t", "observed_at": None}]}
            ],
            "images_to_delete": [
                {"repository": "r", "tags": [{"tag": hostile, "observed_at": None}]}
            ],
            "total_images_processed": 2,
        },
    )
    html = (
        aiohttp_jinja2.get_env(app).get_template("_sync_preview.html").render(error=None, run=run)
    )
    assert "<img" not in html and "<b>" not in html
    assert f"{escape(hostile)}:&lt;b&gt;t" in html and f"r:{escape(hostile)}" in html
