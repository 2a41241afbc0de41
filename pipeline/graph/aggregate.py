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
from typing import Any

from pipeline.graph.derive import (
    DEFAULT_MAX_SPANS,
    USER,
    GraphSpan,
    PeerReader,
    SpanLike,
    TraceGraph,
    stored_peer,
)
from pipeline.graph.edges import (
    DIRECT,
    MESSAGING,
    EdgeKey,
    EdgeStats,
    GraphWindow,
    OperationKey,
    SelfTimeStats,
)
from pipeline.graph.fold import Originated, SelfValues, fold
from pipeline.graph.histogram import sketch_of
from pipeline.graph.read import read_peer
from pipeline.model import SpanHead

NS_PER_S = 1_000_000_000
OVERFLOW_PEER = "__overflow__"
#: ``v > 0`` as a C call (per self time, at each drain).
_POSITIVE = (0).__lt__


@dataclass
class GraphCounts:
    """What the aggregator could not use, cumulative (exported as counters)."""

    traces: int = 0
    unpaired_server: int = 0
    truncated: int = 0
    duplicates: int = 0
    overflow_peers: int = 0
    late_spans: int = 0


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
        #: (window start, client, server, type) -> its accumulator; a name past the peer
        #: cap is an alias of its overflow edge's accumulator
        self._edges: dict[tuple[int, str, str, str], _EdgeAcc] = {}
        #: (window start, service, operation) -> self times; -> spans originating an error
        self._self_values: SelfValues = {}
        self._originated: Originated = {}

    def add_decided(self, heads: Sequence[SpanHead], late: bool) -> None:
        """A decided trace; a late fragment (spans after its decision) is only counted."""
        if late:
            self.counts.late_spans += len(heads)
        else:
            self.add_trace(heads)

    def add_trace(self, heads: Sequence[SpanHead]) -> None:
        """Derive one trace's graph from its heads and file it (:func:`fold`: one pass)."""
        self._add_folded(heads, read_peer)

    def add_spans(self, spans: Sequence[GraphSpan]) -> None:
        """Derive one trace's graph from what the graph reads of its spans, and file it."""
        self._add_folded(spans, stored_peer)

    def _add_folded(self, spans: Sequence[SpanLike], peer: PeerReader) -> None:
        f = fold(spans, self.max_spans, peer, self.window_ns, self._self_values, self._originated)
        self._count(f.unpaired_server, f.truncated, f.duplicates)
        self._file_calls(f.calls)

    def add_graph(self, graph: TraceGraph) -> None:
        """File one trace's calls and self times, as :func:`derive` made them.

        Counts add up at once; durations are kept in lists and become sketches in
        :meth:`drain` (one pass per list instead of a sketch update per value).
        """
        self._count(graph.unpaired_server, graph.truncated, graph.duplicates)
        self._file_calls(graph.calls)
        values, originated, window_ns = self._self_values, self._originated, self.window_ns
        for own in graph.self_times:
            start = own[2]
            at = (start - start % window_ns, own[0], own[1])
            values.setdefault(at, []).append(own[3])
            if own[4]:
                originated[at] = originated.get(at, 0) + 1

    def _count(self, unpaired_server: int, truncated: int, duplicates: int) -> None:
        counts = self.counts
        counts.traces += 1
        counts.unpaired_server += unpaired_server
        counts.truncated += truncated
        counts.duplicates += duplicates

    def _file_calls(self, calls: Iterable[tuple[Any, ...]]) -> None:
        """File calls (``Call`` fields, by position: this loop runs per call)."""
        counts, edges, window_ns = self.counts, self._edges, self.window_ns
        for call in calls:
            start = call[3]
            slot = (start - start % window_ns, call[0], call[1], call[2])
            acc = edges.get(slot)
            if acc is None:
                acc = self._edge_slot(slot)
            if acc.overflow:
                counts.overflow_peers += 1
            acc.calls += 1
            client_error, server_error = call[6], call[7]
            if client_error:
                acc.client_errors += 1
            if server_error:
                acc.server_errors += 1
            if client_error or server_error:
                acc.failed += 1
            if call[4] is not None:
                acc.client.append(call[4])
            if call[5] is not None:
                acc.server.append(call[5])

    def drain(self) -> list[GraphWindow]:
        """Everything filed since the last drain, by window start; the aggregator is emptied."""
        windows: dict[int, GraphWindow] = {}

        def window(start: int) -> GraphWindow:
            w = windows.get(start)
            if w is None:
                w = windows[start] = GraphWindow(start, start + self.window_ns)
            return w

        for slot, acc in self._edges.items():
            if slot[1:] == acc.names:  # not an overflowing name's alias
                window(slot[0]).edges[acc.key] = acc.stats()
        originated = self._originated
        for at, values in self._self_values.items():
            start, service, operation = at
            stats = _self_stats(values, originated.get(at, 0))
            window(start).self_time[OperationKey(service, operation)] = stats
        self._edges, self._self_values, self._originated = {}, {}, {}
        return [windows[start] for start in sorted(windows)]

    def _edge_slot(self, slot: tuple[int, str, str, str]) -> _EdgeAcc:
        """The accumulator of a new (window, client, server, type): its capped edge's."""
        start, client, server, kind = slot
        key = self._capped(EdgeKey(client, server, kind))
        names = (key.client, key.server, key.connection_type)
        acc = self._edges.get((start, *names))
        if acc is None:
            acc = self._edges[(start, *names)] = _EdgeAcc(key, overflow=key.server != server)
        self._edges[slot] = acc
        return acc

    def _capped(self, key: EdgeKey) -> EdgeKey:
        """``key``, its server renamed :data:`OVERFLOW_PEER` when it is one peer too many.

        Peers are the servers of database and virtual-node edges, except the services
        that ``user`` (an uninstrumented caller) calls.
        """
        if key.connection_type in (DIRECT, MESSAGING) or key.client == USER:
            return key
        if key.server in self._peers:
            return key
        if len(self._peers) < self.max_peers:
            self._peers.add(key.server)
            return key
        return EdgeKey(key.client, OVERFLOW_PEER, key.connection_type)


class _EdgeAcc:
    """One edge's calls in one window until drained: counts, and durations in lists.

    ``overflow``: the calls filed here name a peer past the cap (counted per call).
    """

    __slots__ = (
        "calls",
        "client",
        "client_errors",
        "failed",
        "key",
        "names",
        "overflow",
        "server",
        "server_errors",
    )

    def __init__(self, key: EdgeKey, overflow: bool) -> None:
        self.key = key
        self.names = (key.client, key.server, key.connection_type)
        self.overflow = overflow
        self.calls = self.failed = self.client_errors = self.server_errors = 0
        self.client: list[int] = []
        self.server: list[int] = []

    def stats(self) -> EdgeStats:
        """The :class:`EdgeStats` of what was added (as adding each call to one)."""
        e = EdgeStats()
        e.calls, e.failed = self.calls, self.failed
        e.client_errors, e.server_errors = self.client_errors, self.server_errors
        e.client, e.server = sketch_of(self.client), sketch_of(self.server)
        return e


def _self_stats(values: list[int], originated: int) -> SelfTimeStats:
    """The :class:`SelfTimeStats` of these self times (as adding each span to one)."""
    st = SelfTimeStats()
    st.spans, st.errors_originated = len(values), originated
    st.self_ns = sum(filter(_POSITIVE, values))  # negative self times count as 0
    st.sketch = sketch_of(values)
    return st


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
