"""Bring the broker to the declarations: ``topics apply`` and a worker's start.

Both create what is missing and then re-read the broker until it shows the change
(metadata lags the admin calls); only ``apply --fix`` changes an existing topic.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.errors import TopicDriftError
from pipeline.topics.admin import TopicAdmin
from pipeline.topics.declarations import INTERNAL_ROLES, TopicDecl
from pipeline.topics.planning import PlanItem, plan


@dataclass(frozen=True)
class ApplyResult:
    """What :func:`apply` did and the plan after it (re-described from the broker)."""

    created: tuple[str, ...]
    fixed: tuple[str, ...]
    final: tuple[PlanItem, ...]


def apply(admin: TopicAdmin, decls: Sequence[TopicDecl], fix: bool = False) -> ApplyResult:
    """Create missing topics, optionally fix drift, then re-describe and re-plan."""
    before = plan(decls, admin.describe(d.name for d in decls))
    missing = [item.decl for item in before if item.action == "create"]
    if missing:
        admin.create(missing)
    fixed: list[str] = []
    if fix:
        fixed = admin.fix([item for item in before if item.action == "drift"])
    final = _wait_settled(admin, decls, {d.name for d in missing} | set(fixed))
    return ApplyResult(tuple(d.name for d in missing), tuple(fixed), tuple(final))


def prepare_worker_topics(admin: TopicAdmin, decls: Sequence[TopicDecl]) -> list[str]:
    """Before a worker starts: create missing internal topics, refuse if others are missing.

    Returns the names created. The user's topics come from ``spanstream topics apply``;
    the Faust changelogs are named after the group, so a worker in a new group creates
    them (and waits until they are in the metadata) before Faust looks for them.
    """
    items = plan(decls, admin.describe(d.name for d in decls))
    missing = [item.decl for item in items if item.action == "create"]
    absent = [d.name for d in missing if d.role not in INTERNAL_ROLES]
    if absent:
        raise TopicDriftError(f"missing topics {absent}: run `spanstream topics apply` first")
    internal = [d for d in missing if d.role in INTERNAL_ROLES]
    if internal:
        admin.create(internal)
        _wait_settled(admin, decls, {d.name for d in internal})
    return [d.name for d in internal]


def _wait_settled(
    admin: TopicAdmin, decls: Sequence[TopicDecl], touched: set[str]
) -> list[PlanItem]:
    """Re-plan until topics just created or fixed show it: metadata lags the admin calls."""
    deadline = time.monotonic() + admin.timeout
    while True:
        final = plan(decls, admin.describe(d.name for d in decls))
        pending = [
            item
            for item in final
            if item.decl.name in touched
            and (item.action == "create" or any(d.fixable for d in item.drifts))
        ]
        if not pending or time.monotonic() > deadline:
            return final
        time.sleep(0.1)
