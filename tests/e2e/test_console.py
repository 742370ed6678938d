"""The web console in a real browser (Playwright driving Debian's chromium) against the real
stack: ``crbroker-server`` with its co-located agent in front of Debian's docker-registry with
password auth, and, for a brokered registry, our broker client and its agent.

The tests run in order on one server and one signed-in browser page: set up a registry (a
wrong password first), list its images, scan one, download its SBOM and PDF, scan again,
deactivate the registry; then what is refused (no session, no CSRF token) and how hostile
names are shown; last, the registry's sync policy: refused naming the field, previewed by a dry
run of the real registry, saved.

Screenshots of the registries list, the images list and an image page are written to
``$CRBROKER_SCREENSHOTS`` when that is set (``make screenshots`` writes them to docs/).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from deploy import stack as st
from deploy.control_plane_client import ControlPlaneClient
from tests.e2e.conftest import (
    AGENT_MAX_ACTIVE,
    REGISTRY_PASSWORD,
    REGISTRY_USER,
    Registry,
    agent_env,
    start_control_plane_with_agent,
)
from tests.support.images import Layer, build_image, os_release, push

pytestmark = [pytest.mark.registry, pytest.mark.timeout(300)]

if TYPE_CHECKING:
    from playwright import sync_api
else:
    sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ADMIN_PASSWORD = "console-" + secrets.token_hex(8)
#: a repository name a browser would run if it were rendered as HTML
HOSTILE = "<img/src=x/onerror=alert(1)>:t<b>g"
DONE = 120_000  # ms a scan may take in these tests
IMPORT_ADVISORIES = (
    "import sys; from control_plane.advisories import cli; sys.exit(cli.run(sys.argv[1:]))"
)


@dataclass
class Console:
    server: st.CrbrokerServer
    api: ControlPlaneClient
    org: str
    url: str
    page: sync_api.Page
    browser: sync_api.Browser
    #: what earlier tests created, for later ones
    state: dict[str, str]


def _shot(page: sync_api.Page, name: str) -> None:
    where = os.environ.get("CRBROKER_SCREENSHOTS")
    if where:
        Path(where).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(where) / name), full_page=True)


@pytest.fixture(scope="module")
def console(registry: Registry, e2e_dir: Path) -> Iterator[Console]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (make deps)")
    workdir = e2e_dir / "console"
    admin_token = "adm-" + secrets.token_hex(16)
    stoppers: list[Callable[[], None]] = []
    try:
        direct_agent, server = start_control_plane_with_agent(
            workdir,
            {"CRBROKER_ADMIN_TOKEN": admin_token, "CRBROKER_ADMIN_PASSWORD": ADMIN_PASSWORD},
        )
        stoppers += [direct_agent.stop, server.stop]
        api = ControlPlaneClient(server.api_url, admin_token)
        playwright = sync_api.sync_playwright().start()
        stoppers.append(playwright.stop)
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        stoppers.append(browser.close)
        page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        page.set_default_timeout(30_000)
        yield Console(server, api, api.default_org(), server.api_url, page, browser, {})
        assert REGISTRY_PASSWORD not in server.log_text()
        assert ADMIN_PASSWORD not in server.log_text()
    finally:
        for stop in reversed(stoppers):
            stop()


def _sign_in(page: sync_api.Page, url: str) -> None:
    page.goto(f"{url}/console/registries")
    assert "/console/sign-in" in page.url
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/console/registries$"))


def test_1_sign_in_and_set_up_a_registry_testing_a_wrong_password_first(
    console: Console, registry: Registry
) -> None:
    page = console.page
    page.goto(f"{console.url}/console/sign-in")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", "not-the-password")
    page.click("button[type=submit]")
    assert "Wrong user name or password" in page.inner_text("main")
    _sign_in(page, console.url)
    page.click("text=Set up new")
    page.fill("input[name=name]", "e2e registry")
    page.select_option("select[name=type]", "generic-cr")
    page.fill("input[name=host]", registry.running.url)
    page.fill("input[name=username]", REGISTRY_USER)
    page.fill("input[name=password]", "wrong-" + secrets.token_hex(4))
    page.click("text=Test it")
    failed = page.locator("#check-result.error")
    failed.wait_for()
    message = failed.inner_text()
    assert "Connection failed" in message and "credentials-refused" in message, message
    page.fill("input[name=password]", REGISTRY_PASSWORD)
    page.click("text=Test it")
    passed = page.locator("#check-result.ok")
    passed.wait_for()
    assert "Connection OK" in passed.inner_text()
    page.click("text=Set up now")
    page.wait_for_url(re.compile(r".*/console/registries/[0-9a-f-]{36}$"))
    console.state["registry"] = page.url.rsplit("/", 1)[1]
    assert page.inner_text("h1") == "e2e registry"
    page.click("text=Refresh status")
    assert "Status: OK" in page.inner_text(".notice")
    assert REGISTRY_PASSWORD not in page.content()


def test_2_update_images_list_then_scan_one_without_a_reload(
    console: Console, registry: Registry, tmp_path: Path
) -> None:
    page = console.page
    page.goto(f"{console.url}/console/registries/{console.state['registry']}")
    page.click("text=Update images list")
    expected = {*(s.reference for s in registry.images), registry.big.reference}
    assert f"Listed {len(expected)} images, {len(expected)} new." in page.inner_text(".notice")
    page.goto(f"{console.url}/console/images")
    rows = page.locator("#images tbody tr")
    listed = {
        rows.nth(i).locator("td").nth(0).inner_text(): rows.nth(i).locator("td").nth(4).inner_text()
        for i in range(rows.count())
    }
    assert set(listed) == expected
    assert set(listed.values()) == {"not scanned"}

    sample = next(s for s in registry.images if s.packages)
    page.click(f"#images a:text-is('{sample.reference}')")
    page.wait_for_url(re.compile(r".*/console/images/[0-9a-f-]{36}$"))
    console.state["image"] = page.url.rsplit("/", 1)[1]
    page.evaluate("window.__notReloaded = true")
    page.click("text=Run scan")
    page.wait_for_function(
        "document.querySelector('#scan-status')?.innerText.includes('done')", timeout=DONE
    )
    assert page.evaluate("window.__notReloaded") is True
    packages = page.locator("#packages tbody tr")
    assert packages.count() == len(sample.packages)
    names = {packages.nth(i).locator("td").nth(0).inner_text() for i in range(packages.count())}
    assert names == set(sample.packages)
    layers = page.locator("#packages td.layer").all_inner_texts()
    assert all(re.match(r"#\d+", text) for text in layers), layers
    assert page.inner_text("#package-count") == str(len(sample.packages))

    with page.expect_download() as cdx:
        page.click("text=SBOM (CycloneDX)")
    document = json.loads(Path(cdx.value.path()).read_text())
    assert {c["name"] for c in document["components"] if c.get("purl")} == set(sample.packages)
    with page.expect_download() as spdx:
        page.click("text=SBOM (SPDX)")
    assert json.loads(Path(spdx.value.path()).read_text())["spdxVersion"].startswith("SPDX-")
    with page.expect_download() as pdf:
        page.click("text=PDF report")
    saved = tmp_path / "report.pdf"
    shutil.copy(pdf.value.path(), saved)
    from pypdf import PdfReader

    text = "\n".join(p.extract_text() for p in PdfReader(saved).pages)
    assert sample.reference in text
    assert re.search(rf"Packages\s*{len(sample.packages)}\b", text), text[:500]


def test_3_a_second_scan_joins_the_history_and_an_inactive_registry_is_not_listed(
    console: Console,
) -> None:
    page = console.page
    page.goto(f"{console.url}/console/images/{console.state['image']}")
    page.click("text=Run scan")
    page.wait_for_function(
        "document.querySelectorAll('#history tbody tr').length === 2"
        " && document.querySelector('#scan-status')?.innerText.includes('done')",
        timeout=DONE,
    )
    statuses = page.locator("#history tbody tr td:nth-child(4)").all_inner_texts()
    assert statuses == ["done", "done"]
    assert page.locator("#history tbody tr td:nth-child(2)").all_inner_texts() == ["admin"] * 2
    page.goto(f"{console.url}/console/images")
    _shot(page, "console-images.png")

    page.goto(f"{console.url}/console/registries/{console.state['registry']}/edit")
    page.uncheck("input[name=is_active]")
    page.click("text=Save")
    page.wait_for_url(re.compile(r".*/console/registries/[0-9a-f-]{36}$"))
    assert "no (its images are not listed)" in page.inner_text("dl.facts")
    assert "Sync is off while this registry is inactive" in page.inner_text("#sync")
    page.click("text=Preview (dry run)")
    assert "inactive: it is not listed or synced" in page.locator("#policy-error").inner_text()
    page.click("text=Update images list")
    assert "inactive: its images are not listed" in page.inner_text("main")
    page.goto(f"{console.url}/console/registries")
    row = page.locator("#registries tbody tr", has_text="e2e registry")
    assert row.locator("td").nth(3).inner_text() == "no"


def test_3b_a_brokered_registry_shows_its_token_once_and_its_client(
    console: Console, registry: Registry, e2e_dir: Path
) -> None:
    page = console.page
    page.goto(f"{console.url}/console/registries/new")
    page.fill("input[name=name]", "brokered registry")
    page.check("input[name=connection][value=broker]")
    page.fill("input[name=host]", registry.running.url)
    page.click("text=Set up now")
    token = page.inner_text("#broker-token pre").removeprefix("BROKER_TOKEN=").strip()
    assert re.fullmatch(r"[0-9a-f-]{36}", token)
    assert "not connected" in page.inner_text("#broker-client")
    workdir = e2e_dir / "console-client"
    agent, client = st.start_agent_and_client(
        workdir,
        token=token,
        server_url=console.server.url,
        registry=registry.cr_env,
        startup=st.Startup(ready=(200, 500)),
        max_active=AGENT_MAX_ACTIVE,
        agent_env=agent_env(),
    )
    try:
        st.wait_for_connection(console.server.url, token)
        page.goto(f"{console.url}/console/registries")
        page.click("#registries a:text-is('brokered registry')")
        page.wait_for_url(re.compile(r".*/console/registries/[0-9a-f-]{36}$"))
        assert "connected" in page.inner_text("#broker-client")
        assert "not connected" not in page.inner_text("#broker-client")
        assert token not in page.content()  # shown once, at creation only
        page.click("text=Refresh status")
        assert "Status: OK" in page.inner_text(".notice")
        page.goto(f"{console.url}/console/registries")
        _shot(page, "console-registries.png")
    finally:
        client.stop()
        agent.stop()


def test_3c_vulnerabilities_show_once_advisories_are_imported(
    console: Console, tmp_path: Path
) -> None:
    from tests.control_plane.advisories import feeds

    record = feeds.osv("CONSOLE-1", "Debian:12", "bash", fixed="5.2.15-9", cvss=feeds.CVSS_CRITICAL)
    feed = feeds.write_json(tmp_path / "console-1.json", record)
    database = console.server.env["CRBROKER_DATA_DIR"] + "/control-plane.db"
    # another process, as an operator runs the import (the browser's loop runs in this one)
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_ADVISORIES, "import", str(feed)],
        env={**os.environ, "DATABASE_URL": f"sqlite:///{database}"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "re-matched 1 latest scans" in done.stdout, done.stdout
    page = console.page
    page.goto(f"{console.url}/console/images/{console.state['image']}")
    row = page.locator("#vulnerabilities tbody tr")
    assert row.count() == 1
    cells = row.locator("td").all_inner_texts()
    assert cells[:3] == ["CONSOLE-1", "critical", "bash"] and cells[4] == "5.2.15-9", cells
    _shot(page, "console-image.png")
    page.goto(f"{console.url}/console/images?name=debian")
    assert page.locator("#images .sev.critical").first.inner_text() == "1"
    with page.expect_download() as pdf:
        page.goto(f"{console.url}/console/images/{console.state['image']}")
        page.click("text=PDF report")
    from pypdf import PdfReader

    saved = tmp_path / "report.pdf"
    shutil.copy(pdf.value.path(), saved)
    text = "\n".join(p.extract_text() for p in PdfReader(saved).pages)
    assert "CONSOLE-1" in text and "critical: 1" in text


def test_4_no_session_redirects_a_form_without_csrf_is_refused_html_is_text(
    console: Console,
) -> None:
    fresh = console.browser.new_context()
    try:
        anonymous = fresh.new_page()
        anonymous.goto(f"{console.url}/console/images")
        assert re.search(r"/console/sign-in\?next=%2Fconsole%2Fimages$", anonymous.url)
        answer = anonymous.request.post(
            f"{console.url}/console/registries/{console.state['registry']}/delete"
        )
        assert "/console/sign-in" in answer.url or answer.status == 403
    finally:
        fresh.close()

    page = console.page
    registry = console.state["registry"]
    refused = page.request.post(
        f"{console.url}/console/registries/{registry}/delete", form={"x": "1"}, max_redirects=0
    )
    assert refused.status == 403
    assert "CSRF" in refused.text()
    page.goto(f"{console.url}/console/registries/{registry}")
    assert page.inner_text("h1") == "e2e registry"  # still there

    dialogs: list[str] = []

    def dismiss(dialog: sync_api.Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    page.goto(f"{console.url}/console/registries/{registry}/edit")
    page.check("input[name=is_active]")
    page.click("text=Save")
    page.wait_for_url(re.compile(r".*/console/registries/[0-9a-f-]{36}$"))
    job = console.api.import_image(console.org, registry, HOSTILE)
    console.api.wait_import(job)
    page.goto(f"{console.url}/console/images?name=onerror")
    cell = page.locator("#images tbody tr td a").first
    assert cell.inner_text() == HOSTILE
    assert page.locator("#images img").count() == 0 and page.locator("#images b").count() == 0
    cell.click()
    assert page.inner_text("#image-name") == HOSTILE
    assert page.locator("main img").count() == 0
    assert dialogs == []


SYNC_RULE = {"type": "Regex", "name": "console tags", "policy": {"repo": "^console-sync/"}}


def test_5_a_sync_policy_is_refused_naming_its_field_previewed_by_a_dry_run_and_saved(
    console: Console, registry: Registry
) -> None:
    # two tags with no project yet, the only ones SYNC_RULE selects
    for tag in ("v1", "v2"):
        files = {"etc/os-release": os_release("alpine", "3.20.0"), "etc/sync": tag.encode()}
        push(
            registry.running.url,
            "console-sync/app",
            build_image([Layer(files)]),
            tag=tag,
            username=REGISTRY_USER,
            password=REGISTRY_PASSWORD,
        )
    page = console.page
    dialogs: list[str] = []

    def record(dialog: sync_api.Dialog) -> None:
        dialogs.append(dialog.message)
        with contextlib.suppress(sync_api.Error):  # test 4's listener may have dismissed it
            dialog.dismiss()

    page.on("dialog", record)
    view = f"{console.url}/console/registries/{console.state['registry']}"
    try:
        page.goto(view)
        assert "No sync policy" in page.inner_text("#sync-state")
        assert json.loads(page.input_value("textarea[name=import_policy]"))["type"]
        page.fill("input[name=policy_name]", HOSTILE)
        bad = {
            "type": "Regex",
            "colour": "red",
            "policy": {"repo": "^console-sync/", "tag": "[v", "digest": "sha256:1"},
        }
        page.fill("textarea[name=import_policy]", json.dumps(bad))
        page.click("text=Preview (dry run)")
        error = page.locator("#policy-error")
        assert "/import_policy/policy/tag" in error.inner_text()
        assert "does not compile" in error.inner_text()
        # every fault at once, in the order typed, each line starting with its pointer
        lines = [line.strip() for line in error.locator("p").all_inner_texts()]
        assert [line.split(":")[0] for line in lines] == [
            "/import_policy/colour",
            "/import_policy/policy/tag",
            "/import_policy/policy/digest",
        ], lines
        assert lines[0].endswith("unknown member") and lines[2].endswith("unknown member")

        # Save re-renders the page, the form as typed, the error naming the member (HTML
        # echoed from the policy is text)
        page.fill("textarea[name=import_policy]", json.dumps({"type": HOSTILE}))
        page.click("text=Save policy")
        assert "/import_policy/type" in page.inner_text("#policy-error")
        assert HOSTILE in page.inner_text("#policy-error")
        assert page.input_value("input[name=policy_name]") == HOSTILE
        assert "No sync policy" in page.inner_text("#sync-state")  # nothing stored

        page.fill("textarea[name=import_policy]", json.dumps(SYNC_RULE))
        page.click("text=Preview (dry run)")
        page.locator("#dry-run-import").wait_for(timeout=60_000)
        shown = page.locator("#dry-run-import tbody td:first-child").all_inner_texts()
        assert sorted(shown) == ["console-sync/app:v1", "console-sync/app:v2"]
        assert "a run would import 2 and delete 0" in page.inner_text("#dry-run-summary")
        page.fill("input[name=policy_name]", "console tags, nightly")  # for the screenshot
        _shot(page, "console-registry-sync.png")
        page.fill("input[name=policy_name]", HOSTILE)
        assert console.api.projects(console.org, names_start_with="console-sync") == []

        page.fill("input[name=schedule_frequency_hours]", "6")
        page.click("text=Save policy")
        page.wait_for_url(re.compile(r".*/console/registries/[0-9a-f-]{36}\?notice=.*"))
        assert "saved" in page.inner_text(".notice")
        page.goto(view)
        assert json.loads(page.input_value("textarea[name=import_policy]")) == SYNC_RULE
        assert page.input_value("input[name=policy_name]") == HOSTILE
        assert page.input_value("input[name=schedule_frequency_hours]") == "6"
        assert HOSTILE in page.inner_text("#sync-state")
        path = f"/rest/orgs/{console.org}/container_import/{console.state['registry']}/policy"
        _, _, stored = console.api.call("GET", path, query={"version": "2025-09-17"})
        policy = stored["data"]["attributes"]["policy"]
        assert policy == {
            "name": HOSTILE,
            "schedule_frequency_hours": 6,
            "delete_images": False,
            "import_policy": SYNC_RULE,
        }
        assert page.locator("#sync img").count() == 0 and page.locator("#sync b").count() == 0
        assert dialogs == []
    finally:
        page.remove_listener("dialog", record)
