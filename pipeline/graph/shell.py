"""The service graph's shell: drain the aggregator on an interval, write and export it.

Runs on the ingest thread (:meth:`GraphFlusher.tick` from the loop's round). Each flush
drains the aggregator's increments and hands them to the in-process history (read by
root-cause ranking), the Prometheus metrics and a background batching sink that inserts
them into ``spanstream_service_graph`` and ``spanstream_self_time``. A failed insert is
retried by the sink (same rows, same token: ClickHouse drops a retry that did land);
meanwhile new increments wait in the sink, so an outage costs memory, not data, until
the worker stops.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence

from pipeline import metrics
from pipeline.clock import Clock
from pipeline.errors import SinkUnavailable
from pipeline.graph.aggregate import GraphAggregator, GraphCounts, GraphHistory
from pipeline.graph.edges import GraphWindow
from pipeline.graph.prometheus import SERVICE_GRAPH, ServiceGraphMetrics
from pipeline.graph.rows import EDGES_TABLE, SELF_TIME_TABLE, edge_columns, self_time_columns
from pipeline.sinks.base import BatchingSink
from pipeline.sinks.clickhouse import table_writer
from pipeline.store.base import Store

log = logging.getLogger(__name__)


class GraphFlusher:
    """Drains ``aggregator`` every ``interval`` seconds into the history, metrics and store."""

    def __init__(
        self,
        aggregator: GraphAggregator,
        store: Store,
        clock: Clock,
        interval: float,
        history: GraphHistory | None = None,
        exported: ServiceGraphMetrics = SERVICE_GRAPH,
    ) -> None:
        self.aggregator = aggregator
        self.clock = clock
        self.interval = interval
        self.history = history if history is not None else GraphHistory()
        self.exported = exported
        self._last = clock.now()
        self._flushes = 0
        # Unique per process: two flushes with equal rows must not share a dedup token.
        self._run = uuid.uuid4().hex
        self._reported = GraphCounts()
        self._retry_at = float("-inf")
        self.sink: BatchingSink[GraphWindow] = BatchingSink(
            "service_graph", _writer(store), self._identity, background=True
        )

    def tick(self, force: bool = False) -> None:
        """Drain when the interval has passed and write in the background (``force``: drain
        now and write everything, waiting; a failure then leaves the rest unwritten)."""
        now = self.clock.now()
        if self.sink.writing:
            self._write(background=True)  # finishes the write if it is done, else waits
        if force or now - self._last >= self.interval:
            self._last = now
            self._drain()
        if force:
            while self.sink.pending_rows and self._write(background=False):
                pass
            if self.sink.pending_rows:
                log.warning("stopping with %d graph increments unwritten", self.sink.pending_rows)
        elif self.sink.pending_rows and not self.sink.writing and now >= self._retry_at:
            self._write(background=True)

    def _drain(self) -> None:
        increments = self.aggregator.drain()
        self._export_counts()
        if increments:
            self._flushes += 1
            self.history.add(increments)
            self.exported.add(increments)
            self.sink.extend(increments)

    def _write(self, background: bool) -> bool:
        """One batch (or the end of the one in flight); False after a failure."""
        try:
            if background and self.sink.writing:
                self.sink.poll()
            else:
                self.sink.flush(background=background)
        except SinkUnavailable as exc:
            self._retry_at = self.clock.now() + exc.retry_after
            log.warning("service graph insert failed, retry in %.1fs: %s", exc.retry_after, exc)
            return False
        return True

    def _identity(self, window: GraphWindow) -> str:
        return f"{self._run}:{self._flushes}:{window.window_start_ns}"

    def _export_counts(self) -> None:
        counts, seen = self.aggregator.counts, self._reported
        metrics.GRAPH_TRACES.inc(counts.traces - seen.traces)
        metrics.GRAPH_UNPAIRED.inc(counts.unpaired_server - seen.unpaired_server)
        metrics.GRAPH_TRUNCATED.inc(counts.truncated - seen.truncated)
        metrics.GRAPH_PEER_OVERFLOW.inc(counts.overflow_peers - seen.overflow_peers)
        metrics.GRAPH_LATE.inc(counts.late_spans - seen.late_spans)
        self._reported = GraphCounts(**vars(counts))


def _writer(store: Store) -> Callable[[Sequence[GraphWindow], str], None]:
    """Both tables' rows of a batch, each insert under the batch's token."""
    edges = table_writer(store, EDGES_TABLE, edge_columns)
    own = table_writer(store, SELF_TIME_TABLE, self_time_columns)

    def write(rows: Sequence[GraphWindow], token: str) -> None:
        with_edges = [w for w in rows if w.edges]
        if with_edges:
            edges(with_edges, token)
        with_self_time = [w for w in rows if w.self_time]
        if with_self_time:
            own(with_self_time, token)

    return write
