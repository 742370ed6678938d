"""Evaluating an import policy against a registry state: pure, no I/O, no clock.

Inputs are what a run has gathered (:class:`Image` per ``repository:tag``, the projects the
sync made before, the tombstones), the policy and its creation time, and ``now``; the answer
is a :class:`Plan`. Semantics (``docs/sync.md`` has one example each):

- a rule selects a set of images; ``And`` intersects its sub-rules' sets, ``Or`` unites them;
  every rule is evaluated on the whole registry state, independently of its siblings;
- an image's time is the registry's push time where given, else the time the control plane
  first observed the tag; an image without a push time that was already there at the
  integration's first listing (``baseline``) is never selected by ImportAllNew, Recent or
  LastNObserved;
- ImportAllNew: time after the policy's creation; Recent: time within ``maxAgeDays`` of now;
  LastNObserved: the ``limitNewestImages`` newest per repository (ties by tag);
- Regex: ``re.search`` of ``repo`` on the repository and ``tag`` on the tag (both when both);
- a selected image with no project is imported; one whose project exists but whose digest
  moved is imported again (re-scanned) — where either digest is unknown, it is not moved;
  one whose project a person deleted is skipped;
- at most ``limit`` imports per run, newest first (then repository, tag): the rest wait;
- with ``delete_images``, every project the sync made whose image is no longer selected (or
  no longer listed) is deleted; without it, nothing is.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from control_plane.sync.policy import (
    And,
    ImportAll,
    ImportAllNew,
    LastNObserved,
    Or,
    Recent,
    Regex,
    Rule,
    SyncPolicy,
)

#: images imported by one run at most (Snyk's limit)
MAX_IMPORTS_PER_RUN = 10_000

Key = tuple[str, str]  # (repository, tag)


@dataclass(frozen=True)
class Image:
    """One ``repository:tag`` as listed now, with what the control plane remembers of it."""

    repository: str
    tag: str
    digest: str | None
    #: the registry's push time, None where the registry gives none
    pushed_at: dt.datetime | None
    #: when the control plane first saw this tag (now, for a tag never seen before)
    first_observed_at: dt.datetime
    #: listed at the integration's very first listing
    baseline: bool = False

    @property
    def key(self) -> Key:
        return (self.repository, self.tag)

    @property
    def time(self) -> dt.datetime:
        return self.pushed_at or self.first_observed_at

    @property
    def dated(self) -> bool:
        """Usable by the time-based rules: a push time, or first seen after the first listing."""
        return self.pushed_at is not None or not self.baseline


@dataclass(frozen=True)
class Imported:
    """A project the sync made earlier, with the digest it was imported (or re-scanned) at."""

    repository: str
    tag: str
    digest: str | None


@dataclass(frozen=True)
class State:
    images: list[Image]
    #: projects the sync made that are still active, by key
    imported: dict[Key, Imported] = field(default_factory=dict)
    #: keys whose project a person deleted
    tombstoned: frozenset[Key] = frozenset()
    #: keys with an active project made by hand: neither imported again nor deleted
    manual: frozenset[Key] = frozenset()


@dataclass(frozen=True)
class Plan:
    #: to import (new project, or digest moved), newest first, at most the limit
    to_import: list[Image]
    #: projects to delete (``delete_images`` only)
    to_delete: list[Imported]
    #: selected, but a person deleted the project
    skipped: list[Image]
    #: selected and new, past the per-run limit: the next run takes them
    deferred: int
    total_processed: int


def _newest_first(image: Image) -> tuple[float, str, str]:
    return (-image.time.timestamp(), image.repository, image.tag)


def select(
    rule: Rule, images: list[Image], *, created_at: dt.datetime, now: dt.datetime
) -> set[Key]:
    """The keys of the images ``rule`` selects."""
    if isinstance(rule, ImportAll):
        return {i.key for i in images}
    if isinstance(rule, ImportAllNew):
        return {i.key for i in images if i.dated and i.time > created_at}
    if isinstance(rule, Regex):
        repo = re.compile(rule.policy.repo) if rule.policy.repo is not None else None
        tag = re.compile(rule.policy.tag) if rule.policy.tag is not None else None
        return {
            i.key
            for i in images
            if (repo is None or repo.search(i.repository)) and (tag is None or tag.search(i.tag))
        }
    if isinstance(rule, Recent):
        since = now - dt.timedelta(days=rule.policy.max_age_days)
        return {i.key for i in images if i.dated and i.time >= since}
    if isinstance(rule, LastNObserved):
        per_repo: dict[str, list[Image]] = defaultdict(list)
        for i in images:
            if i.dated:
                per_repo[i.repository].append(i)
        keep = rule.policy.limit_newest_images
        return {
            i.key for group in per_repo.values() for i in sorted(group, key=_newest_first)[:keep]
        }
    sets = [select(s, images, created_at=created_at, now=now) for s in rule.sub_policies]
    if isinstance(rule, And):
        return set.intersection(*sets)
    assert isinstance(rule, Or)
    return set.union(*sets)


def evaluate(
    policy: SyncPolicy,
    state: State,
    *,
    created_at: dt.datetime,
    now: dt.datetime,
    limit: int = MAX_IMPORTS_PER_RUN,
) -> Plan:
    """What a run of ``policy`` does on ``state``."""
    chosen = select(policy.import_policy, state.images, created_at=created_at, now=now)
    wanted: list[Image] = []
    skipped: list[Image] = []
    for image in sorted((i for i in state.images if i.key in chosen), key=_newest_first):
        if image.key in state.tombstoned:
            skipped.append(image)
            continue
        if image.key in state.manual:
            continue
        before = state.imported.get(image.key)
        moved = before is not None and None not in (image.digest, before.digest)
        if before is None or (moved and before.digest != image.digest):
            wanted.append(image)
    to_delete: list[Imported] = []
    if policy.delete_images:
        to_delete = sorted(
            (p for key, p in state.imported.items() if key not in chosen),
            key=lambda p: (p.repository, p.tag),
        )
    return Plan(
        to_import=wanted[:limit],
        to_delete=to_delete,
        skipped=skipped,
        deferred=max(0, len(wanted) - limit),
        total_processed=len(state.images),
    )


def grouped(items: Iterable[tuple[str, str, str | None]]) -> list[dict[str, object]]:
    """``[{repository, tags: [{tag, observed_at}]}]`` (the dry run's result shape), repositories
    in first-appearance order."""
    groups: dict[str, list[dict[str, object]]] = {}
    for repository, tag, observed in items:
        groups.setdefault(repository, []).append({"tag": tag, "observed_at": observed})
    return [{"repository": r, "tags": tags} for r, tags in groups.items()]
