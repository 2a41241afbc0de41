"""edges: keys and stats round-trip through JSON, merge exactly, reject bad input."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.checked import StateError
from pipeline.graph.edges import (
    DATABASE,
    EdgeKey,
    EdgeStats,
    GraphWindow,
    OperationKey,
    SelfTimeStats,
)


def edge(*calls: tuple[int | None, int | None, bool, bool]) -> EdgeStats:
    e = EdgeStats()
    for call in calls:
        e.add(*call)
    return e


CALLS = [(5_000_000, 4_000_000, False, False), (9_000_000, None, True, False), (1, 2, False, True)]


def test_merge_of_any_split_equals_one_accumulator() -> None:
    for cut in range(len(CALLS) + 1):
        merged = edge(*CALLS[:cut])
        merged.merge(edge(*CALLS[cut:]))
        assert merged == edge(*CALLS)


def test_failed_counts_a_call_once_when_both_sides_err() -> None:
    e = edge((1, 1, True, True))
    assert (e.calls, e.failed, e.client_errors, e.server_errors) == (1, 1, 1, 1)


def test_key_round_trip_and_invalid_connection_type() -> None:
    key = EdgeKey("a", "pg", DATABASE)
    assert EdgeKey.from_list(key.to_list()) == key
    with pytest.raises(ValueError, match="connection_type"):
        EdgeKey("a", "b", "carrier pigeon")


BAD_KEYS: list[Any] = [None, ["a", "b"], ["a", "b", "x"], ["a", 1, ""], ["a" * 2000, "b", ""]]


@pytest.mark.parametrize("value", BAD_KEYS)
def test_bad_keys_are_rejected(value: Any) -> None:
    with pytest.raises(StateError):
        EdgeKey.from_list(value)


def mutate(d: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**d, **changes}


GOOD = edge(*CALLS).to_dict()
BAD_STATS: dict[str, Any] = {
    "not an object": [],
    "missing key": {k: v for k, v in GOOD.items() if k != "failed"},
    "failed over calls": mutate(GOOD, failed=4),
    "negative calls": mutate(GOOD, calls=-1),
    "bool count": mutate(GOOD, calls=True),
    "more latencies than calls": mutate(GOOD, calls=1, failed=1, client_errors=1, server_errors=1),
    "bad sketch": mutate(GOOD, client={"n": 1}),
}


@pytest.mark.parametrize("data", BAD_STATS.values(), ids=BAD_STATS.keys())
def test_bad_edge_stats_are_rejected(data: Any) -> None:
    with pytest.raises(StateError):
        EdgeStats.from_dict(data)


def test_self_time_round_trip_and_checks() -> None:
    st = SelfTimeStats()
    st.add(3_000_000, True)
    st.add(-5, False)
    assert (st.spans, st.self_ns, st.errors_originated) == (2, 3_000_000, 1)
    assert SelfTimeStats.from_dict(st.to_dict()) == st
    with pytest.raises(StateError):
        SelfTimeStats.from_dict(mutate(st.to_dict(), spans=3))
    with pytest.raises(StateError):
        SelfTimeStats.from_dict(mutate(st.to_dict(), errors_originated=5))


def test_graph_window_merge_callers_and_callees() -> None:
    w = GraphWindow(0, 60)
    w.edges[EdgeKey("front", "pay")] = edge(CALLS[0])
    other = GraphWindow(0, 60)
    other.edges[EdgeKey("front", "pay")] = edge(CALLS[1])
    other.edges[EdgeKey("check", "pay")] = edge(CALLS[2])
    other.self_time[OperationKey("pay", "Charge")] = SelfTimeStats()
    w.merge(other)
    assert w.edges[EdgeKey("front", "pay")].calls == 2
    assert (w.callers("pay"), w.callees("front")) == (["check", "front"], ["pay"])
    assert OperationKey("pay", "Charge") in w.self_time
    with pytest.raises(ValueError):
        w.merge(GraphWindow(60, 120))
