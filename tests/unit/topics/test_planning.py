"""The pure plan: declarations against the broker's state, drift and problems."""

from __future__ import annotations

import pytest

from pipeline.topics.declarations import TopicDecl
from pipeline.topics.planning import Drift, PlanItem, TopicState, plan, problems

DECL = TopicDecl(
    "t",
    partitions=6,
    replication_factor=1,
    config=(("cleanup.policy", "compact,delete"), ("retention.ms", "1000")),
)
MATCHING = {"cleanup.policy": "delete,compact", "retention.ms": "1000", "segment.ms": "5"}


@pytest.mark.parametrize(
    ("state", "action", "drifts"),
    [
        (None, "create", ()),
        (TopicState("t", 6, 1, MATCHING), "ok", ()),
        (
            TopicState("t", 3, 1, MATCHING),
            "drift",
            (Drift("partitions", "6", "3", fixable=True),),
        ),
        (
            TopicState("t", 8, 1, MATCHING),
            "drift",
            (Drift("partitions", "6", "8", fixable=False),),
        ),
        (
            TopicState("t", 6, 3, MATCHING),
            "drift",
            (Drift("replication_factor", "1", "3", fixable=False),),
        ),
        (
            TopicState("t", 6, 1, {**MATCHING, "retention.ms": "5"}),
            "drift",
            (Drift("retention.ms", "1000", "5", fixable=True),),
        ),
        (
            TopicState("t", 6, 1, {"retention.ms": "1000"}),
            "drift",
            (Drift("cleanup.policy", "compact,delete", "unset", fixable=True),),
        ),
    ],
)
def test_plan_compares_declaration_with_broker_state(
    state: TopicState | None, action: str, drifts: tuple[Drift, ...]
) -> None:
    existing = {} if state is None else {"t": state}
    (item,) = plan([DECL], existing)
    assert (item.action, item.drifts) == (action, drifts)


def test_plan_ignores_undeclared_topics_and_keeps_declaration_order() -> None:
    other = TopicDecl("a", 1, 1)
    existing = {"zz-internal": TopicState("zz-internal", 1, 1, {})}
    assert [i.decl.name for i in plan([DECL, other], existing)] == ["t", "a"]


def test_problems_lists_missing_and_drifted_only() -> None:
    drift = Drift("partitions", "6", "3", fixable=True)
    items = [
        PlanItem(TopicDecl("ok", 1, 1), "ok"),
        PlanItem(TopicDecl("gone", 1, 1), "create"),
        PlanItem(DECL, "drift", (drift,)),
    ]
    assert problems(items) == [
        "'gone' missing",
        "'t' drifted (partitions: expected 6, actual 3 (fixable))",
    ]
