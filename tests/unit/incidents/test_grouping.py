"""Alert grouping: one incident per fault, stable ids, confirmation, checked state."""

from __future__ import annotations

import pytest

from pipeline.checked import StateError
from pipeline.incidents.grouping import AlertEvent, IncidentGrouper, incident_id

W = 60
EDGES = {("frontend", "checkout"), ("checkout", "payment"), ("frontend", "catalog")}


def fire(aid: str, service: str, window: int, status: str = "firing") -> AlertEvent:
    return AlertEvent(aid, service, f"{service} op", status, window * W)


def _run(
    batches: list[list[AlertEvent]], **kw: int
) -> tuple[IncidentGrouper, list[tuple[str, str]]]:
    g = IncidentGrouper(W, **kw)
    log = []
    for batch in batches:
        log += [(c.status, c.incident.incident_id) for c in g.observe(batch, EDGES)]
    return g, log


@pytest.mark.parametrize(
    ("batches", "incidents"),
    [
        # a cascade over two windows: callee then callers
        ([[fire("p", "payment", 0)], [fire("c", "checkout", 1), fire("f", "frontend", 1)]], 1),
        # same service, different operation: one incident
        ([[fire("p", "payment", 0), fire("q", "payment", 0)]], 1),
        # two services two hops apart: connected through checkout
        ([[fire("p", "payment", 0), fire("f", "frontend", 0)]], 1),
        # three hops apart (payment - checkout - frontend - catalog): separate incidents
        ([[fire("p", "payment", 0), fire("p2", "payment", 0)],
          [fire("k", "catalog", 1), fire("k2", "catalog", 1)]], 2),
        # too far apart in time: a new incident
        ([[fire("p", "payment", 0), fire("p", "payment", 1)], [],
          [fire("c", "checkout", 9), fire("c", "checkout", 10)]], 2),
    ],
)  # fmt: skip
def test_grouping_rule(batches: list[list[AlertEvent]], incidents: int) -> None:
    _, log = _run(batches)
    assert len({iid for status, iid in log if status == "opened"}) == incidents


def test_a_lone_one_window_alert_opens_no_incident_but_carries_an_id() -> None:
    g, log = _run([[fire("p", "payment", 0)]])
    assert log == [] and g.incident_of("p") == incident_id("p")
    _, log = _run([[fire("p", "payment", 0)], [fire("p", "payment", 1)]])
    assert log == [("opened", incident_id("p"))]


def test_resolves_gap_closes_after_every_alert_has_resolved() -> None:
    opened = [[fire("p", "payment", 0), fire("c", "checkout", 0)]]
    _, log = _run([*opened, [fire("p", "payment", 4, "resolved")], [], [], [], []])
    assert [s for s, _ in log] == ["opened"]  # checkout still fires
    both = [fire("p", "payment", 4, "resolved"), fire("c", "checkout", 4, "resolved")]
    g, log = _run([*opened, both, [], []])
    assert [s for s, _ in log] == ["opened"] and g.open  # quiet for 3 closes only
    g, log = _run([*opened, both, [], [], []])
    assert [s for s, _ in log] == ["opened", "resolved"] and g.open == {}


def test_a_callers_alert_closed_later_still_joins() -> None:
    """A backlog closes the callee's windows (onset to resolution) before the caller's."""
    callee = [fire("p", "payment", 5), fire("p", "payment", 9, "resolved")]
    g, log = _run([callee, [fire("c", "checkout", 5), fire("c", "checkout", 9, "resolved")]])
    assert [s for s, _ in log] == ["opened"]  # one alert window each: confirmed by both
    assert g.incident_of("c") == g.incident_of("p") == incident_id("p")


def test_ids_are_stable_across_replays() -> None:
    batches = [[fire("p", "payment", 0), fire("c", "checkout", 0)], [fire("f", "frontend", 1)]]
    assert _run(batches)[1] == _run(batches)[1]


def test_state_round_trips_and_rejects_garbage() -> None:
    g, _ = _run([[fire("p", "payment", 0), fire("c", "checkout", 0)]])
    restored = IncidentGrouper(W)
    restored.load(g.to_dict())
    assert restored.to_dict() == g.to_dict() and restored.incident_of("c") == incident_id("p")
    for bad in ([], {"x": {}}, {"0" * 16: {"opened_ns": -1}}, {"0" * 16: None}):
        with pytest.raises(StateError):
            IncidentGrouper(W).load(bad)
