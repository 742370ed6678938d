"""A registry's sync policy on its view page: edit, preview (a dry run, by htmx), save.

The same sync services as ``/rest/orgs/{org}/container_import/{integration}/policy``: Save is
its ``POST`` (create or replace, runs at once; the view is in
:mod:`control_plane.console.registries`, as a refusal renders the whole view page), Preview
its ``POST .../dry_run``, read back like ``GET .../dry_run/{job_id}`` until the scheduler has
completed it. The form splits the policy into its top-level members (name, schedule,
delete_images) and the import rule as JSON; a bad one is refused naming the JSON pointer of
the member at fault.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.api.container_import import WAKE
from control_plane.console.app import DB_SESSION, ORG, PREFIX, after_commit, path_id, render
from control_plane.errors import InvalidInput, NotFound
from control_plane.models import Integration
from control_plane.sync import services
from control_plane.sync.models import SyncPolicyRow
from control_plane.sync.policy import SyncPolicy, parse_policy

Form = MultiDictProxy[Any]

#: what the form shows for a registry without a policy
DEFAULT_RULE: dict[str, Any] = {"type": "ImportAllNew", "name": "new tags"}


def _not_json(name: str) -> object:
    raise ValueError(f"{name} is not a JSON value")


@dataclass(frozen=True)
class PolicyForm:
    name: str
    schedule_frequency_hours: str
    delete_images: bool
    import_policy: str

    @classmethod
    def of(cls, document: dict[str, Any]) -> PolicyForm:
        return cls(
            name=str(document.get("name", "")),
            schedule_frequency_hours=str(document.get("schedule_frequency_hours", 24)),
            delete_images=bool(document.get("delete_images", False)),
            import_policy=json.dumps(document.get("import_policy", DEFAULT_RULE), indent=2),
        )

    @classmethod
    def posted(cls, form: Form) -> PolicyForm:
        return cls(
            name=str(form.get("policy_name") or "").strip(),
            schedule_frequency_hours=str(form.get("schedule_frequency_hours") or "").strip(),
            delete_images=form.get("delete_images") == "on",
            import_policy=str(form.get("import_policy") or ""),
        )

    def policy(self) -> SyncPolicy:
        """The policy, or InvalidInput naming the JSON pointer of the member at fault."""
        try:
            rule = json.loads(self.import_policy, parse_constant=_not_json)
        except RecursionError:
            raise InvalidInput(
                "not JSON this form takes: nested too deeply", pointer="/import_policy"
            ) from None
        except ValueError as exc:  # also NaN / Infinity, and 4300+ digit numbers
            raise InvalidInput(f"not JSON: {exc}", pointer="/import_policy") from None
        try:
            hours = int(self.schedule_frequency_hours)
        except ValueError:
            raise InvalidInput(
                "a whole number of hours", pointer="/schedule_frequency_hours"
            ) from None
        document = {
            "name": self.name,
            "schedule_frequency_hours": hours,
            "delete_images": self.delete_images,
            "import_policy": rule,
        }
        return parse_policy(document)


async def sync_values(
    session: AsyncSession, registry: Integration, form: PolicyForm | None = None
) -> dict[str, Any]:
    """What the view page's sync section shows: the stored policy, and the form."""
    try:
        row: SyncPolicyRow | None = await services.get_policy(session, registry.org_id, registry.id)
    except NotFound:
        row = None
    if form is None:
        document = row.document if row is not None else {"name": f"{registry.profile_name} sync"}
        form = PolicyForm.of(document)
    return {"policy": row, "policy_form": form, "policy_error": None}


def wake_scheduler(request: web.Request) -> None:
    """Once committed, tell this process's sync scheduler a run is waiting."""
    wake = request.config_dict.get(WAKE)
    if wake is not None:
        after_commit(request, wake)


async def preview(request: web.Request) -> web.Response:
    """htmx: start a dry run of the form's policy; the answer polls until it is done."""
    ident = path_id(request, "registry")
    form = PolicyForm.posted(await request.post())
    try:
        policy = form.policy()
        run = await services.create_dry_run(request[DB_SESSION], request[ORG], ident, policy)
    except InvalidInput as exc:
        return render(request, "_sync_preview.html", {"error": exc, "run": None})
    wake_scheduler(request)
    return render(request, "_sync_preview.html", {"error": None, "run": run})


async def preview_progress(request: web.Request) -> web.Response:
    """htmx: the dry run's state (the API's ``GET .../dry_run/{job_id}``)."""
    ident = path_id(request, "registry")
    job = path_id(request, "dry run job", "job")
    run = await services.get_run(request[DB_SESSION], request[ORG], ident, job, kind="dry_run")
    return render(request, "_sync_preview.html", {"error": None, "run": run})


def add_routes(router: web.UrlDispatcher) -> None:
    base = f"{PREFIX}/registries/{{id}}/sync-policy"
    router.add_post(f"{base}/dry-run", preview)
    router.add_get(f"{base}/dry-run/{{job}}", preview_progress)
