"""The plan: declarations against what the broker has, per topic ``create``, ``ok`` or ``drift``.

Pure (no I/O): :class:`~pipeline.topics.admin.TopicAdmin` reads the broker's
:class:`TopicState` and applies the plan.

>>> decl = TopicDecl("otlp_spans", 6, 1, (("retention.ms", "86400000"),))
>>> [item.action for item in plan([decl], {})]
['create']
>>> state = TopicState("otlp_spans", 3, 1, {"retention.ms": "86400000"})
>>> item = plan([decl], {"otlp_spans": state})[0]
>>> item.action, item.drifts[0].describe()
('drift', 'partitions: expected 6, actual 3 (fixable)')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pipeline.topics.declarations import TopicDecl, normalize

Action = Literal["create", "ok", "drift"]


@dataclass(frozen=True)
class TopicState:
    """What the broker has for one topic: partition count, replicas, effective config."""

    name: str
    partitions: int
    replication_factor: int
    config: Mapping[str, str]


@dataclass(frozen=True)
class Drift:
    """One difference between declaration and broker; ``fixable`` by ``apply --fix``."""

    field: str
    expected: str
    actual: str
    fixable: bool

    def describe(self) -> str:
        """``field: expected X, actual Y`` plus whether ``--fix`` can repair it."""
        how = "fixable" if self.fixable else "not fixable in place"
        return f"{self.field}: expected {self.expected}, actual {self.actual} ({how})"


@dataclass(frozen=True)
class PlanItem:
    """What to do with one declared topic."""

    decl: TopicDecl
    action: Action
    drifts: tuple[Drift, ...] = ()


def plan(decls: Sequence[TopicDecl], existing: Mapping[str, TopicState]) -> list[PlanItem]:
    """Compare each declaration with the broker's state; topics not declared are ignored."""
    items = []
    for decl in decls:
        state = existing.get(decl.name)
        if state is None:
            items.append(PlanItem(decl, "create"))
            continue
        drifts = tuple(_drifts(decl, state))
        items.append(PlanItem(decl, "drift" if drifts else "ok", drifts))
    return items


def _drifts(decl: TopicDecl, state: TopicState) -> list[Drift]:
    drifts = []
    if decl.partitions != state.partitions:
        # Kafka can add partitions but never remove them.
        grow = decl.partitions > state.partitions
        drifts.append(Drift("partitions", str(decl.partitions), str(state.partitions), grow))
    if decl.replication_factor != state.replication_factor:
        drifts.append(
            Drift(
                "replication_factor",
                str(decl.replication_factor),
                str(state.replication_factor),
                fixable=False,
            )
        )
    for key, expected in decl.config:
        actual = state.config.get(key)
        if actual is None or normalize(key, actual) != normalize(key, expected):
            drifts.append(Drift(key, expected, "unset" if actual is None else actual, True))
    return drifts


def problems(items: Sequence[PlanItem]) -> list[str]:
    """One short phrase per missing or drifted topic, for a one-line error.

    >>> problems([PlanItem(TopicDecl("a", 1, 1), "create")])
    ["'a' missing"]
    """
    out = []
    for item in items:
        if item.action == "create":
            out.append(f"{item.decl.name!r} missing")
        elif item.action == "drift":
            fields = ", ".join(d.describe() for d in item.drifts)
            out.append(f"{item.decl.name!r} drifted ({fields})")
    return out
