"""Per-window service graph of one worker: decided traces in, increments out (pure).

:class:`GraphAggregator` derives each decided trace's calls and self times
(:mod:`pipeline.graph.derive`) and files them by window (a call by its client span's
start, else its server span's; a self time by its span's start). :meth:`drain` hands
out everything filed since the previous drain as :class:`GraphWindow` increments and
starts afresh: rows are increments, so a window's graph is the sum of its rows, from
any number of drains and workers (see docs/service-graph.md for why this is exact
without a crash).

Cardinality: services are the series services (already capped by the enricher);
uninstrumented peers (database and virtual-node servers) come from span attributes,
so past ``max_peers`` distinct peers new ones count under :data:`OVERFLOW_PEER`.

:class:`GraphHistory` keeps the merged graph of the last few windows for readers in
other threads (root-cause ranking), behind a lock.

>>> from pipeline.graph.derive import SERVER, CLIENT, GraphSpan
>>> agg = GraphAggregator(window_seconds=60)
>>> agg.add_spans([GraphSpan("a", "", "shop", "GET /", SERVER, 0, 9, False),
...                GraphSpan("b", "a", "shop", "SELECT", CLIENT, 1, 5, False, "pg", True)])
>>> [w.window_start_ns for w in agg.drain()], agg.drain()
([0], [])
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pipeline.graph.derive import DEFAULT_MAX_SPANS, GraphSpan, TraceGraph, derive
from pipeline.graph.edges import (
    DIRECT,
    MESSAGING,
    EdgeKey,
    EdgeStats,
    GraphWindow,
    SelfTimeStats,
)
from pipeline.graph.read import graph_spans
from pipeline.model import SpanHead

NS_PER_S = 1_000_000_000
OVERFLOW_PEER = "__overflow__"


@dataclass
class GraphCounts:
    """What the aggregator could not use, cumulative (exported as counters)."""

    traces: int = 0
    unpaired_server: int = 0
    truncated: int = 0
    duplicates: int = 0
    overflow_peers: int = 0


class GraphAggregator:
    """Calls and self times of decided traces, by window, until drained."""

    def __init__(
        self,
        window_seconds: int,
        max_peers: int = 200,
        max_spans_per_trace: int = DEFAULT_MAX_SPANS,
    ) -> None:
        if window_seconds <= 0 or max_peers < 1 or max_spans_per_trace < 1:
            raise ValueError("window_seconds, max_peers and max_spans_per_trace must be > 0")
        self.window_ns = window_seconds * NS_PER_S
        self.max_peers = max_peers
        self.max_spans = max_spans_per_trace
        self.counts = GraphCounts()
        self._peers: set[str] = set()
        self._windows: dict[int, GraphWindow] = {}

    def add_trace(self, heads: Sequence[SpanHead]) -> None:
        """Derive one trace's graph from its heads and file it."""
        self.add_spans(graph_spans(heads))

    def add_spans(self, spans: Sequence[GraphSpan]) -> None:
        """Derive one trace's graph from what the graph reads of its spans, and file it."""
        self.add_graph(derive(spans, self.max_spans))

    def add_graph(self, graph: TraceGraph) -> None:
        """File one trace's calls and self times."""
        counts = self.counts
        counts.traces += 1
        counts.unpaired_server += graph.unpaired_server
        counts.truncated += graph.truncated
        counts.duplicates += graph.duplicates
        for call in graph.calls:
            stats = self._window(call.start_ns).edges
            key = self._capped(call.key)
            edge = stats.get(key)
            if edge is None:
                edge = stats[key] = EdgeStats()
            edge.add(call.client_ns, call.server_ns, call.client_error, call.server_error)
        for own in graph.self_times:
            times = self._window(own.start_ns).self_time
            st = times.get(own.key)
            if st is None:
                st = times[own.key] = SelfTimeStats()
            st.add(own.self_ns, own.error_originated)

    def drain(self) -> list[GraphWindow]:
        """Everything filed since the last drain, by window start; the aggregator is emptied."""
        out = [self._windows[start] for start in sorted(self._windows)]
        self._windows = {}
        return out

    def _window(self, start_ns: int) -> GraphWindow:
        start = start_ns - start_ns % self.window_ns
        window = self._windows.get(start)
        if window is None:
            window = self._windows[start] = GraphWindow(start, start + self.window_ns)
        return window

    def _capped(self, key: EdgeKey) -> EdgeKey:
        """``key``, its server renamed :data:`OVERFLOW_PEER` when it is one peer too many."""
        if key.connection_type in (DIRECT, MESSAGING) or key.server in self._peers:
            return key
        if len(self._peers) < self.max_peers:
            self._peers.add(key.server)
            return key
        self.counts.overflow_peers += 1
        return EdgeKey(key.client, OVERFLOW_PEER, key.connection_type)


class GraphHistory:
    """The merged graph of the newest ``keep`` windows; safe to read from another thread."""

    def __init__(self, keep: int = 60) -> None:
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.keep = keep
        self._lock = threading.Lock()
        self._windows: dict[int, GraphWindow] = {}

    def add(self, increments: Iterable[GraphWindow]) -> None:
        """Merge drained increments (copied: they are not modified)."""
        with self._lock:
            for inc in increments:
                mine = self._windows.get(inc.window_start_ns)
                if mine is None:
                    mine = GraphWindow(inc.window_start_ns, inc.window_end_ns)
                    self._windows[inc.window_start_ns] = mine
                mine.merge(inc)
            for start in sorted(self._windows)[: -self.keep]:
                del self._windows[start]

    def window(self, window_start_ns: int) -> GraphWindow | None:
        """The graph of the window starting at ``window_start_ns`` (shared: do not modify)."""
        with self._lock:
            return self._windows.get(window_start_ns)

    def windows(self) -> list[GraphWindow]:
        """Every window kept, oldest first (shared: do not modify)."""
        with self._lock:
            return [self._windows[s] for s in sorted(self._windows)]
