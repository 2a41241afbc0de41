"""The incident step: alerts tagged, records made, state saved and checked on the way back."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.alerts import Alert, Finding, WindowRef
from pipeline.graph.edges import EdgeKey, EdgeStats, GraphWindow, OperationKey, SelfTimeStats
from pipeline.incidents.desk import RANK_WINDOWS, STATE_KEY, STATE_VERSION, IncidentDesk
from pipeline.incidents.grouping import incident_id
from pipeline.incidents.rootcause import Baselines
from pipeline.incidents.signals import ops_of

W = 60 * 1_000_000_000
MS = 1_000_000


def _window(i: int, charge_ms: float) -> GraphWindow:
    g = GraphWindow(i * W, (i + 1) * W)
    g.edges[EdgeKey("checkout", "payment")] = EdgeStats()
    for key, ms in (
        (OperationKey("payment", "Charge"), charge_ms),
        (OperationKey("checkout", "Place"), 3.0),
    ):
        st = g.self_time[key] = SelfTimeStats()
        for _ in range(50):
            st.add(int(ms * MS), False)
    return g


class Graph:
    def __init__(self) -> None:
        self.kept: list[GraphWindow] = []

    def windows(self) -> list[GraphWindow]:
        return self.kept[-10:]


def warmed() -> tuple[IncidentDesk, Graph, dict[str, Any]]:
    """A desk whose baselines learnt five normal windows (0-4)."""
    graph, state = Graph(), dict[str, Any]()
    desk = IncidentDesk(W, graph)
    for i in range(5):
        graph.kept.append(_window(i, 8.0))
        assert desk.process([], [i * W], state) == ([], [])
    return desk, graph, state


def alert(aid: str, service: str, i: int, status: str = "firing", version: int = 1) -> Alert:
    finding = Finding(0.9, "critical", (("p99_ms", 90.0, 10.0),), "robust")
    ref = WindowRef(service, "op", i * W, (i + 1) * W)
    return Alert(aid, version, status, ref, i * W, finding, f"{service} slow", True)


def test_alerts_carry_their_incident_and_the_record_names_the_root() -> None:
    desk, graph, state = warmed()
    graph.kept.append(_window(5, 80.0))
    tagged, records = desk.process(
        [alert("a" * 16, "checkout", 5), alert("b" * 16, "payment", 5)], [5 * W], state
    )
    assert {a.incident_id for a in tagged} == {incident_id("a" * 16)}
    (record,) = records
    assert record.status == "opened" and record.candidates[0].service == "payment"
    assert "self time 5.5x baseline" in record.summary  # its window and the one before
    assert tagged[0].to_message()["incident_id"] == incident_id("a" * 16)
    # a second desk (a restarted worker) continues from the saved state
    resolved = [
        alert("a" * 16, "checkout", 9, "resolved", 2),
        alert("b" * 16, "payment", 9, "resolved", 2),
    ]
    tagged, records = IncidentDesk(W, graph).process(resolved, [9 * W], state)
    assert records == [] and {a.incident_id for a in tagged} == {incident_id("a" * 16)}
    quiet = [IncidentDesk(W, graph).process([], [i * W], state)[1] for i in (10, 11, 12)]
    assert [[r.status for r in rs] for rs in quiet] == [[], [], ["resolved"]]
    assert quiet[2][0].updated_ns == 13 * W  # the end of the quiet window that closed it


@pytest.mark.parametrize(
    "bad",
    ["x", {"v": 9, "grouper": {}, "baselines": [], "pending": []},
     {"v": 2, "grouper": [], "baselines": [], "pending": []},
     {"v": 2, "grouper": {}, "baselines": [[1]], "pending": []},
     {"v": 2, "grouper": {}, "baselines": [], "pending": [[0, 1]]},
     {"v": 2, "grouper": {}, "baselines": []},
     {"v": 3, "grouper": {}, "baselines": [], "pending": [], "ranked": [["a", 0]]},
     {"v": 3, "grouper": {}, "baselines": [], "pending": [], "ranked": [["a", 0, [7]]]},
     {"v": 3, "grouper": {}, "baselines": [], "pending": []}],
)  # fmt: skip
def test_a_bad_state_is_rejected_and_grouping_starts_over(bad: object) -> None:
    desk = IncidentDesk(W, Graph())
    state: dict[str, Any] = {STATE_KEY: bad}
    tagged, records = desk.process([alert("c" * 16, "payment", 0)], [0], state)
    assert records == [] and tagged[0].incident_id == incident_id("c" * 16)
    assert state[STATE_KEY]["v"] == STATE_VERSION


def test_without_a_graph_incidents_still_group() -> None:
    desk, state = IncidentDesk(W), dict[str, Any]()
    _, records = desk.process(
        [alert("d" * 16, "payment", 0), alert("e" * 16, "payment", 0)], [0], state
    )
    assert [(r.status, r.candidates) for r in records] == [("opened", ())]


def test_a_graph_window_that_arrives_after_its_close_is_still_learnt_once() -> None:
    """Graph data follows the trace decisions, which may come after the window closed."""
    graph, state = Graph(), dict[str, Any]()
    desk = IncidentDesk(W, graph)
    desk.process([], [0, W], state)  # windows 0 and 1 close before their graph data
    graph.kept.extend([_window(0, 8.0), _window(1, 16.0)])
    desk.process([], [2 * W], state)
    assert list(desk.pending) == [W, 2 * W]  # 0 learnt: a newer graph window (1) is in
    IncidentDesk(W, graph).process([], [3 * W], state)  # restarted: nothing newer yet
    graph.kept.append(_window(2, 8.0))
    last = IncidentDesk(W, graph)
    last.process([], [4 * W], state)
    assert list(last.pending) == [2 * W, 3 * W, 4 * W]
    expected = Baselines()
    expected.learn(ops_of([_window(0, 8.0)]))
    expected.learn(ops_of([_window(1, 16.0)]))
    assert last.baselines.to_dict() == expected.to_dict()  # each window learnt once


def test_windows_closed_under_an_incident_are_never_learnt() -> None:
    graph, state = Graph(), dict[str, Any]()
    desk = IncidentDesk(W, graph)
    desk.process([alert("a" * 16, "payment", 0), alert("b" * 16, "checkout", 0)], [0], state)
    graph.kept.extend([_window(0, 80.0), _window(1, 8.0)])
    desk.process([alert("a" * 16, "payment", 1, version=2)], [W], state)
    assert desk.baselines.ops == {}  # window 0 closed under the incident: not normal


def test_a_backlog_close_learns_the_windows_before_the_incident_it_opens() -> None:
    """One close of many windows (a backlog): those before the first alert are normal."""
    graph, state = Graph(), dict[str, Any]()
    graph.kept.extend([*(_window(i, 8.0) for i in range(5)), _window(5, 80.0), _window(6, 80.0)])
    desk = IncidentDesk(W, graph)
    alerts = [alert("a" * 16, "checkout", 5), alert("b" * 16, "payment", 5)]
    _, (record,) = desk.process(alerts, [i * W for i in range(7)], state)
    expected = Baselines()
    for i in range(5):
        expected.learn(ops_of([_window(i, 8.0)]))
    assert desk.baselines.to_dict() == expected.to_dict()
    assert record.status == "opened" and record.candidates[0].service == "payment"


def test_an_incident_ranked_before_its_graph_is_ranked_again_once_the_graph_passes() -> None:
    desk, graph, state = warmed()
    alerts = [alert("a" * 16, "checkout", 5), alert("b" * 16, "payment", 5)]
    _, (opened,) = desk.process(alerts, [5 * W], state)  # window 5's graph is not in yet
    assert opened.candidates == ()
    graph.kept.append(_window(5, 80.0))
    assert IncidentDesk(W, graph).process([], [6 * W], state)[1] == []  # 5 is the newest
    graph.kept.append(_window(6, 80.0))
    _, (updated,) = IncidentDesk(W, graph).process([], [7 * W], state)  # the graph passed 5
    assert (updated.status, updated.incident.version) == ("updated", 2)
    assert updated.candidates[0].service == "payment"
    graph.kept.append(_window(7, 80.0))
    assert IncidentDesk(W, graph).process([], [8 * W], state)[1] == []  # ranked on it once


def test_a_state_saved_before_ranking_was_tracked_still_loads() -> None:
    state: dict[str, Any] = {}
    IncidentDesk(W, Graph()).process([alert("a" * 16, "payment", 0)], [0], state)
    old = {k: v for k, v in state[STATE_KEY].items() if k != "ranked"} | {"v": 2}
    tagged, _ = IncidentDesk(W, Graph()).process(
        [alert("f" * 16, "payment", 1)], [W], {STATE_KEY: old}
    )
    assert tagged[0].incident_id == incident_id("a" * 16)  # joined the stored incident


def test_a_long_incident_is_ranked_on_its_last_firing_windows() -> None:
    """Two faults chained into one incident: the record names the one firing now."""
    desk, graph, state = warmed()
    first = [alert("a" * 16, "payment", 5), alert("b" * 16, "payment", 5)]
    graph.kept.append(_window(5, 80.0))
    graph.kept.append(_window(6, 80.0))
    _, (opened,) = desk.process(first, [5 * W], state)
    assert opened.candidates[0].service == "payment"
    published = []
    for i in range(6, 6 + RANK_WINDOWS):  # payment recovers, checkout's own time grows
        slow = _window(i + 1, 8.0)
        slow.self_time[OperationKey("checkout", "Place")] = st = SelfTimeStats()
        for _ in range(50):
            st.add(40 * MS, False)
        graph.kept.append(slow)
        published += desk.process([alert("c" * 16, "checkout", i)], [i * W], state)[1]
    assert published[-1].candidates[0].service == "checkout"
    assert desk.span(published[-1].incident) == ((i - RANK_WINDOWS + 1) * W, (i + 1) * W)
