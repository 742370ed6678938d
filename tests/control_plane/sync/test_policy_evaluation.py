"""The policy corpus: every rule type, nesting, the document's five examples, evaluated
against one registry state with push times and one without; the expected import and delete
sets are written out by hand."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from control_plane.errors import InvalidInput
from control_plane.sync.evaluation import Image, Imported, State, evaluate
from control_plane.sync.policy import parse_policy

NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)
CREATED = NOW - dt.timedelta(days=10)  # the policy's creation


def days_ago(n: float) -> dt.datetime:
    return NOW - dt.timedelta(days=n)


#: repository, tag, pushed (days ago), first observed (days ago; 20 = the first listing)
REGISTRY = [
    ("mycompany/web-app", "latest", 1, 20),
    ("mycompany/web-app", "prod-1", 40, 20),
    ("mycompany/web-app", "prod-2", 5, 5),
    ("mycompany/web-app", "1.0", 60, 20),
    ("mycompany/api", "latest", 15, 20),
    ("mycompany/api", "2.0", 3, 3),
    ("nginx", "1.25", 100, 20),
    ("nginx", "latest", 2, 2),
    ("nginx", "prod", 12, 12),
]


def state(*, push_times: bool, **kw: Any) -> State:
    return State(
        [
            Image(
                repository=repo,
                tag=tag,
                digest=f"sha256:{repo}-{tag}",
                pushed_at=days_ago(pushed) if push_times else None,
                first_observed_at=days_ago(seen),
                baseline=seen == 20,
            )
            for repo, tag, pushed, seen in REGISTRY
        ],
        **kw,
    )


def names(images: Any) -> set[str]:
    return {f"{i.repository}:{i.tag}" for i in images}


def policy(rule: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"name": "p", "import_policy": rule, **top}


ALL = {f"{r}:{t}" for r, t, _, _ in REGISTRY}
NEW_PUSHED = {
    "mycompany/web-app:latest",
    "mycompany/web-app:prod-2",
    "mycompany/api:2.0",
    "nginx:latest",
}
NEW_OBSERVED = {"mycompany/web-app:prod-2", "mycompany/api:2.0", "nginx:latest"}
WEB_AND_API_LATEST_PROD = {
    "mycompany/web-app:latest",
    "mycompany/web-app:prod-1",
    "mycompany/web-app:prod-2",
    "mycompany/api:latest",
}

# (name, policy, expected with push times, expected without push times)
CORPUS: list[tuple[str, dict[str, Any], set[str], set[str]]] = [
    ("document: import all", policy({"type": "ImportAll"}), ALL, ALL),
    ("document: import all new", policy({"type": "ImportAllNew"}), NEW_PUSHED, NEW_OBSERVED),
    (
        "document: regex",
        policy(
            {
                "name": "regex policy",
                "type": "Regex",
                "policy": {"tag": "^(latest|prod.*)$", "repo": "^mycompany/.*$"},
            }
        ),
        WEB_AND_API_LATEST_PROD,
        WEB_AND_API_LATEST_PROD,
    ),
    (
        "document: recent 30 days",
        policy({"type": "Recent", "policy": {"maxAgeDays": 30}}),
        ALL - {"mycompany/web-app:prod-1", "mycompany/web-app:1.0", "nginx:1.25"},
        # without push times, what the first listing found is never recent
        {"mycompany/web-app:prod-2", "mycompany/api:2.0", "nginx:latest", "nginx:prod"},
    ),
    (
        "document: last n observed",
        policy({"name": "last n", "type": "LastNObserved", "policy": {"limitNewestImages": 1}}),
        {"mycompany/web-app:latest", "mycompany/api:2.0", "nginx:latest"},
        {"mycompany/web-app:prod-2", "mycompany/api:2.0", "nginx:latest"},
    ),
    (
        "document: complex or / and",
        policy(
            {
                "type": "Or",
                "sub_policies": [
                    {"type": "Regex", "policy": {"tag": "^prod.*"}},
                    {
                        "type": "And",
                        "sub_policies": [
                            {"type": "Regex", "policy": {"tag": "^latest$"}},
                            {"type": "ImportAllNew"},
                        ],
                    },
                ],
            }
        ),
        {
            "mycompany/web-app:prod-1",
            "mycompany/web-app:prod-2",
            "nginx:prod",
            "mycompany/web-app:latest",
            "nginx:latest",
        },
        {"mycompany/web-app:prod-1", "mycompany/web-app:prod-2", "nginx:prod", "nginx:latest"},
    ),
    (
        "regex on the repository only",
        policy({"type": "Regex", "policy": {"repo": "^nginx$"}}),
        {"nginx:1.25", "nginx:latest", "nginx:prod"},
        {"nginx:1.25", "nginx:latest", "nginx:prod"},
    ),
    (
        "last 2 of one repository (and with a regex)",
        policy(
            {
                "type": "And",
                "sub_policies": [
                    {"type": "Regex", "policy": {"repo": "web-app"}},
                    {"type": "LastNObserved", "policy": {"limitNewestImages": 2}},
                ],
            }
        ),
        {"mycompany/web-app:latest", "mycompany/web-app:prod-2"},
        {"mycompany/web-app:prod-2"},
    ),
    (
        "nested three deep",
        policy(
            {
                "type": "And",
                "name": "outer",
                "sub_policies": [
                    {
                        "type": "Or",
                        "sub_policies": [
                            {"type": "Regex", "policy": {"repo": "^nginx"}},
                            {
                                "type": "And",
                                "sub_policies": [
                                    {"type": "Regex", "policy": {"repo": "api"}},
                                    {"type": "Recent", "policy": {"maxAgeDays": 7}},
                                ],
                            },
                        ],
                    },
                    {"type": "Recent", "policy": {"maxAgeDays": 14}},
                ],
            }
        ),
        {"nginx:latest", "nginx:prod", "mycompany/api:2.0"},
        {"nginx:latest", "nginx:prod", "mycompany/api:2.0"},
    ),
]


@pytest.mark.parametrize("push_times", [True, False], ids=["push-times", "no-push-times"])
@pytest.mark.parametrize(
    ("name", "given", "with_push", "without_push"), CORPUS, ids=[c[0] for c in CORPUS]
)
def test_corpus(
    name: str,
    given: dict[str, Any],
    with_push: set[str],
    without_push: set[str],
    push_times: bool,
) -> None:
    plan = evaluate(parse_policy(given), state(push_times=push_times), created_at=CREATED, now=NOW)
    assert names(plan.to_import) == (with_push if push_times else without_push)
    assert plan.to_delete == []  # delete_images is false
    assert plan.total_processed == len(REGISTRY)


@pytest.mark.parametrize("push_times", [True, False])
def test_delete_images_deletes_what_the_sync_made_and_no_longer_matches(push_times: bool) -> None:
    imported = {
        ("nginx", "1.25"): Imported("nginx", "1.25", "sha256:nginx-1.25"),
        ("nginx", "latest"): Imported("nginx", "latest", "sha256:nginx-latest"),
        ("gone", "1"): Imported("gone", "1", "sha256:gone"),
    }
    given = policy(
        {"type": "Regex", "policy": {"repo": "^nginx$", "tag": "latest|prod"}}, delete_images=True
    )
    current = state(push_times=push_times, imported=imported)
    plan = evaluate(parse_policy(given), current, created_at=CREATED, now=NOW)
    assert names(plan.to_delete) == {"nginx:1.25", "gone:1"}
    assert names(plan.to_import) == {"nginx:prod"}  # latest is there already, same digest
    kept = evaluate(
        parse_policy({**given, "delete_images": False}), current, created_at=CREATED, now=NOW
    )
    assert kept.to_delete == []


def test_a_moved_tag_is_imported_again_and_a_tombstone_is_skipped() -> None:
    imported = {("nginx", "latest"): Imported("nginx", "latest", "sha256:old")}
    plan = evaluate(
        parse_policy(policy({"type": "Regex", "policy": {"repo": "^nginx$"}})),
        state(push_times=True, imported=imported, tombstoned=frozenset({("nginx", "prod")})),
        created_at=CREATED,
        now=NOW,
    )
    assert names(plan.to_import) == {"nginx:latest", "nginx:1.25"}
    assert names(plan.skipped) == {"nginx:prod"}


def test_at_most_the_limit_newest_first_in_a_stable_order() -> None:
    everything = parse_policy(policy({"type": "ImportAll"}))
    plan = evaluate(everything, state(push_times=True), created_at=CREATED, now=NOW, limit=3)
    assert [f"{i.repository}:{i.tag}" for i in plan.to_import] == [
        "mycompany/web-app:latest",
        "nginx:latest",
        "mycompany/api:2.0",
    ]
    assert plan.deferred == len(REGISTRY) - 3
    again = evaluate(everything, state(push_times=True), created_at=CREATED, now=NOW, limit=3)
    assert again.to_import == plan.to_import


BAD: list[tuple[dict[str, Any], str, str]] = [
    (policy({"type": "Sometimes"}), "/import_policy/type", "unknown policy type 'Sometimes'"),
    (
        policy({"type": "Regex", "policy": {"tag": "(unclosed"}}),
        "/import_policy/policy/tag",
        "does not compile",
    ),
    (
        policy({"type": "Recent", "policy": {"maxAgeDays": 0}}),
        "/import_policy/policy/maxAgeDays",
        "greater than or equal to 1",
    ),
    (policy({"type": "Or", "sub_policies": []}), "/import_policy/sub_policies", "at least 1"),
    (
        policy({"type": "ImportAll"}, schedule_frequency_hours=1),
        "/schedule_frequency_hours",
        "greater than or equal to 2",
    ),
    (
        policy(
            {
                "type": "And",
                "sub_policies": [
                    {"type": "ImportAll"},
                    {
                        "type": "Or",
                        "sub_policies": [
                            {"type": "LastNObserved", "policy": {"limitNewestImages": "5"}}
                        ],
                    },
                ],
            }
        ),
        "/import_policy/sub_policies/1/sub_policies/0/policy/limitNewestImages",
        "integer",
    ),
    (policy({"type": "Regex", "policy": {}}), "/import_policy/policy", "repo, tag or both"),
    (
        policy({"type": "Regex", "policy": {"tags": "x"}}),
        "/import_policy/policy/tags",
        "unknown member",
    ),
    ({"import_policy": {"type": "ImportAll"}}, "/name", "Field required"),
]


@pytest.mark.parametrize(("given", "pointer", "words"), BAD, ids=[b[1] for b in BAD])
def test_invalid_policies_name_the_json_pointer(
    given: dict[str, Any], pointer: str, words: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_policy(given, "/data/attributes/policy")
    assert caught.value.pointer == "/data/attributes/policy" + pointer
    assert words in caught.value.detail


def test_defaults_and_the_stored_document() -> None:
    parsed = parse_policy(
        policy({"type": "LastNObserved", "name": "n", "policy": {"limitNewestImages": 5}})
    )
    assert parsed.document() == {
        "name": "p",
        "schedule_frequency_hours": 24,
        "delete_images": False,
        "import_policy": {
            "type": "LastNObserved",
            "name": "n",
            "policy": {"limitNewestImages": 5},
        },
    }
