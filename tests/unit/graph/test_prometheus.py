"""ServiceGraphMetrics: the servicegraph connector's names and labels, cumulative, capped."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from pipeline.graph.edges import DATABASE, EdgeKey, EdgeStats, GraphWindow
from pipeline.graph.prometheus import OVERFLOW, ServiceGraphMetrics


def window(*keys: EdgeKey, ms: int = 3) -> GraphWindow:
    w = GraphWindow(0, 60)
    for key in keys:
        w.edges[key] = EdgeStats()
        w.edges[key].add(ms * 1_000_000, ms * 1_000_000, False, key.client == "b")
    return w


def scrape(m: ServiceGraphMetrics) -> dict[str, float]:
    registry = CollectorRegistry()
    registry.register(m)
    out = {}
    for line in generate_latest(registry).decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_names_labels_and_cumulative_buckets() -> None:
    m = ServiceGraphMetrics()
    db = EdgeKey("a", "pg", DATABASE)
    m.add([window(db), window(db, ms=30)])
    got = scrape(m)
    labels = 'client="a",connection_type="database",server="pg"'
    assert got[f"traces_service_graph_request_total{{{labels}}}"] == 2
    assert got[f"traces_service_graph_request_failed_total{{{labels}}}"] == 0
    server = "traces_service_graph_request_server_seconds"
    bucket = f'{server}_bucket{{client="a",connection_type="database",le="%s",server="pg"}}'
    assert [got[bucket % le] for le in ("0.002", "0.004", "0.05", "+Inf")] == [0, 1, 2, 2]
    assert got[f"{server}_count{{{labels}}}"] == 2
    assert abs(got[f"{server}_sum{{{labels}}}"] - 0.033) < 0.001
    assert f"traces_service_graph_request_client_seconds_count{{{labels}}}" in got


def test_series_past_the_cap_count_under_overflow() -> None:
    m = ServiceGraphMetrics(max_series=1)
    m.add([window(EdgeKey("a", "b"), EdgeKey("b", "c"), EdgeKey("c", "d"))])
    got = scrape(m)
    total = {k: v for k, v in got.items() if k.startswith("traces_service_graph_request_total")}
    assert total == {
        'traces_service_graph_request_total{client="a",connection_type="",server="b"}': 1,
        f'traces_service_graph_request_total{{client="{OVERFLOW}",connection_type="",'
        f'server="{OVERFLOW}"}}': 2,
    }
    failed = f'traces_service_graph_request_failed_total{{client="{OVERFLOW}",connection_type=""'
    assert got[failed + f',server="{OVERFLOW}"}}'] == 1
