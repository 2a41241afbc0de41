"""GraphFlusher: drains on its interval, writes both tables, retries an outage with the
same rows and token, exports metrics and history."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from prometheus_client import REGISTRY

from pipeline.clock import ManualClock
from pipeline.errors import SinkUnavailable
from pipeline.graph.aggregate import GraphAggregator
from pipeline.graph.derive import CLIENT, SERVER, GraphSpan
from pipeline.graph.prometheus import ServiceGraphMetrics
from pipeline.graph.shell import GraphFlusher

S = 1_000_000_000


class Store:
    """Records inserts; fails while ``down``."""

    accepts_arrow = False

    def __init__(self) -> None:
        self.down = False
        self.inserts: list[tuple[str, dict[str, Any], str | None]] = []

    def insert(
        self, table: str, columns: Mapping[str, Sequence[Any]], dedup_token: str | None = None
    ) -> int:
        if self.down:
            raise SinkUnavailable("store down")
        self.inserts.append((table, dict(columns), dedup_token))
        return len(next(iter(columns.values())))

    def close(self) -> None:
        pass


def spans(t0: int) -> list[GraphSpan]:
    return [
        GraphSpan(f"r{t0}", "", "front", "GET /", SERVER, t0, 9, False),
        GraphSpan(f"c{t0}", f"r{t0}", "front", "SELECT", CLIENT, t0, 5, False, "pg", True),
    ]


def flusher(store: Store, clock: ManualClock) -> GraphFlusher:
    agg = GraphAggregator(window_seconds=60)
    return GraphFlusher(agg, store, clock, interval=10.0, exported=ServiceGraphMetrics())  # type: ignore[arg-type]


def test_flushes_on_its_interval_into_both_tables_history_and_metrics() -> None:
    store, clock = Store(), ManualClock()
    f = flusher(store, clock)
    f.aggregator.add_spans(spans(1 * S))
    f.tick()
    assert store.inserts == []  # the interval has not passed
    clock.advance(10)
    f.tick(force=True)
    assert [t for t, _, _ in store.inserts] == ["spanstream_service_graph", "spanstream_self_time"]
    assert store.inserts[0][1]["Client"] == ["front", "user"]
    assert len(f.history.windows()) == 1
    assert sum(e.total for e in f.exported._edges.values()) == 2
    before = REGISTRY.get_sample_value("spanstream_graph_traces_total") or 0.0
    f.aggregator.add_spans(spans(2 * S))
    f.tick(force=True)
    assert REGISTRY.get_sample_value("spanstream_graph_traces_total") == before + 1


def test_an_outage_is_retried_with_the_same_rows_and_token() -> None:
    store, clock = Store(), ManualClock()
    f = flusher(store, clock)
    f.aggregator.add_spans(spans(1 * S))
    store.down = True
    f.tick(force=True)
    assert store.inserts == [] and f.sink.pending_rows == 1
    store.down = False
    f.aggregator.add_spans(spans(2 * S))
    f.tick()  # backing off: the retry waits
    assert store.inserts == []
    clock.advance(1)
    f.tick(force=True)
    tokens = [token for _, _, token in store.inserts]
    assert len(store.inserts) == 4 and tokens[0] == tokens[1] != tokens[2] == tokens[3]
    assert store.inserts[0][1]["Calls"] == [1, 1]  # the first batch as it was sealed
