"""The service graph as Prometheus metrics, named as the Collector's servicegraph connector.

``traces_service_graph_request_total`` and ``..._request_failed_total`` (counters),
``traces_service_graph_request_server_seconds`` and ``..._request_client_seconds``
(histograms over :data:`~pipeline.graph.histogram.BOUNDS_S`), labelled ``client``,
``server`` and ``connection_type``, so Grafana's service graph and dashboards built on
the connector work unchanged. Cumulative since the worker started; each worker exports
its own share of the calls (sum over ``instance`` as for several connectors).

Cardinality: at most ``max_series`` label sets; the calls of later new edges count
under ``client="__overflow__", server="__overflow__"`` (same connection type).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator
from typing import Final

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import REGISTRY, CollectorRegistry

from pipeline.graph.edges import EdgeKey, GraphWindow
from pipeline.graph.histogram import BOUNDS_S, buckets

OVERFLOW: Final = "__overflow__"
LABELS: Final = ("client", "server", "connection_type")
_LE: Final = (*(str(b) for b in BOUNDS_S), "+Inf")


class _Edge:
    __slots__ = ("client", "client_sum", "failed", "server", "server_sum", "total")

    def __init__(self) -> None:
        self.total = self.failed = 0
        self.client = [0] * (len(BOUNDS_S) + 1)
        self.server = [0] * (len(BOUNDS_S) + 1)
        self.client_sum = self.server_sum = 0.0


class ServiceGraphMetrics:
    """Cumulative per-edge counts and histograms, fed by drained increments; a collector."""

    def __init__(self, max_series: int = 2000) -> None:
        self.max_series = max_series
        self._lock = threading.Lock()
        self._edges: dict[EdgeKey, _Edge] = {}

    def add(self, increments: Iterable[GraphWindow]) -> None:
        """Add the calls of drained increments."""
        with self._lock:
            for window in increments:
                for key, stats in window.edges.items():
                    edge = self._edge(key)
                    edge.total += stats.calls
                    edge.failed += stats.failed
                    for side, sketch in (("client", stats.client), ("server", stats.server)):
                        counts, total_s = buckets(sketch)
                        mine = getattr(edge, side)
                        for i, n in enumerate(counts):
                            mine[i] += n
                        setattr(edge, f"{side}_sum", getattr(edge, f"{side}_sum") + total_s)

    def _edge(self, key: EdgeKey) -> _Edge:
        edge = self._edges.get(key)
        if edge is None:
            if len(self._edges) >= self.max_series:
                key = EdgeKey(OVERFLOW, OVERFLOW, key.connection_type)
                edge = self._edges.get(key)
            if edge is None:
                edge = self._edges[key] = _Edge()
        return edge

    def collect(self) -> Iterator[Metric]:
        """The four metric families (called by the registry on every scrape)."""
        total = CounterMetricFamily(
            "traces_service_graph_request", "Requests between two nodes", labels=LABELS
        )
        failed = CounterMetricFamily(
            "traces_service_graph_request_failed",
            "Failed requests between two nodes",
            labels=LABELS,
        )
        server = HistogramMetricFamily(
            "traces_service_graph_request_server_seconds",
            "Time for a request between two nodes as seen from the server",
            labels=LABELS,
        )
        client = HistogramMetricFamily(
            "traces_service_graph_request_client_seconds",
            "Time for a request between two nodes as seen from the client",
            labels=LABELS,
        )
        with self._lock:
            for key, edge in sorted(self._edges.items()):
                labels = [key.client, key.server, key.connection_type]
                total.add_metric(labels, edge.total)
                failed.add_metric(labels, edge.failed)
                server.add_metric(labels, _cumulative(edge.server), edge.server_sum)
                client.add_metric(labels, _cumulative(edge.client), edge.client_sum)
        yield from (total, failed, server, client)


def _cumulative(counts: list[int]) -> list[tuple[str, float]]:
    out, running = [], 0
    for le, n in zip(_LE, counts, strict=True):
        running += n
        out.append((le, float(running)))
    return out


#: The worker's service graph metrics, served with every other metric.
SERVICE_GRAPH = ServiceGraphMetrics()


def register(registry: CollectorRegistry = REGISTRY) -> None:
    """Serve :data:`SERVICE_GRAPH` from ``registry`` (once; again is a no-op)."""
    with contextlib.suppress(ValueError):  # already registered
        registry.register(SERVICE_GRAPH)
