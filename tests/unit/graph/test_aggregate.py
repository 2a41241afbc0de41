"""GraphAggregator: calls and self time by window, drained once, peers capped; GraphHistory."""

from __future__ import annotations

from pipeline.graph.aggregate import OVERFLOW_PEER, GraphAggregator, GraphHistory
from pipeline.graph.derive import CLIENT, SERVER, GraphSpan, derive
from pipeline.graph.edges import DATABASE, VIRTUAL_NODE, EdgeKey, EdgeStats, OperationKey

S = 1_000_000_000


def trace(t0: int, peer: str = "pg", err: bool = False) -> list[GraphSpan]:
    return [
        GraphSpan(f"r{t0}", "", "front", "GET /", SERVER, t0, 50_000_000, err),
        GraphSpan(
            f"c{t0}", f"r{t0}", "front", "SELECT", CLIENT, t0 + 1, 20_000_000, err, peer, True
        ),
    ]


def test_calls_and_self_time_land_in_their_windows_and_drain_once() -> None:
    agg = GraphAggregator(window_seconds=60)
    for t0 in (1 * S, 2 * S, 61 * S):
        agg.add_spans(trace(t0))
    windows = agg.drain()
    assert [w.window_start_ns for w in windows] == [0, 60 * S]
    db = EdgeKey("front", "pg", DATABASE)
    assert [w.edges[db].calls for w in windows] == [2, 1]
    assert windows[0].self_time[OperationKey("front", "GET /")].self_ns == 2 * 30_000_000
    assert agg.drain() == []


def test_drained_stats_equal_adding_each_call() -> None:
    agg = GraphAggregator(window_seconds=60)
    spans = trace(1 * S, err=True) + trace(2 * S)
    agg.add_spans(spans)
    (window,) = agg.drain()
    expected = EdgeStats()
    for call in derive(spans).calls:
        if call.key == EdgeKey("front", "pg", DATABASE):
            expected.add(call.client_ns, call.server_ns, call.client_error, call.server_error)
    assert window.edges[EdgeKey("front", "pg", DATABASE)] == expected


def test_peers_past_the_cap_count_as_overflow() -> None:
    agg = GraphAggregator(window_seconds=60, max_peers=2)
    for i, peer in enumerate(["a", "b", "c", "d", "a"]):
        agg.add_spans(trace(i * S, peer))
    (window,) = agg.drain()
    servers = {k.server: s.calls for k, s in window.edges.items() if k.connection_type == DATABASE}
    assert servers == {"a": 2, "b": 1, OVERFLOW_PEER: 2}
    assert agg.counts.overflow_peers == 2
    assert EdgeKey("user", "front", VIRTUAL_NODE) in window.edges  # services are not peers


def test_counts_of_what_could_not_be_used() -> None:
    agg = GraphAggregator(window_seconds=60, max_spans_per_trace=1)
    agg.add_spans([*trace(0), GraphSpan("x", "gone", "pay", "Charge", SERVER, 0, 1, False)])
    assert (agg.counts.traces, agg.counts.truncated) == (1, 2)
    agg.add_spans([GraphSpan("x", "gone", "pay", "Charge", SERVER, 0, 1, False)])
    assert agg.counts.unpaired_server == 1


def test_history_merges_copies_and_keeps_the_newest_windows() -> None:
    history = GraphHistory(keep=2)
    agg = GraphAggregator(window_seconds=60)
    increments = []
    for t0 in (0, 60 * S, 120 * S, 121 * S):
        agg.add_spans(trace(t0))
        increments += agg.drain()
    history.add(increments)
    assert [w.window_start_ns for w in history.windows()] == [60 * S, 120 * S]
    merged = history.window(120 * S)
    assert merged is not None
    assert merged.edges[EdgeKey("front", "pg", DATABASE)].calls == 2
    assert increments[2].edges[EdgeKey("front", "pg", DATABASE)].calls == 1  # not modified
    assert history.window(0) is None
