"""The worker: the ingest thread plus one Faust app for the window stage; wiring only.

Path of a span: input topic -> :class:`~pipeline.ingest.loop.IngestLoop`
(decode, enrich, tail-sample, partials) -> ``otel_traces`` and the partials
topic -> the window stage (:mod:`pipeline.windows.stage`, run by the Faust app
of :mod:`pipeline.faust.app`): merge into the ``windows`` table, close
(``spanstream_red_metrics``, scores, alerts -> ``spanstream_anomalies`` and the
alert topic). Firing alerts flag their operations for tail sampling
(:class:`AnomalyFlags`: the window stage writes, the ingest thread reads).
"""

from __future__ import annotations

import logging
import os
import signal
import threading

from confluent_kafka import Consumer, Producer

from pipeline.clock import SystemClock
from pipeline.enrich import EnrichConfig, Enricher
from pipeline.faust.app import WindowApp
from pipeline.graph.aggregate import GraphAggregator, GraphHistory
from pipeline.graph.prometheus import register as register_graph_metrics
from pipeline.graph.shell import GraphFlusher
from pipeline.ingest.commit import CommitProtocol
from pipeline.ingest.core import IngestCore
from pipeline.ingest.kafka_config import consumer_config, producer_config
from pipeline.ingest.loop import IngestLoop
from pipeline.query import QueryLimits, QueryRunner, open_reader
from pipeline.sampling import (
    AnomalyFlags,
    ExemplarRequests,
    LatencyState,
    TraceBuffer,
    standard_policies,
)
from pipeline.sampling.buffer import DecidedTrace
from pipeline.settings import Settings
from pipeline.sinks.base import BatchingSink
from pipeline.sinks.clickhouse import TraceWriter
from pipeline.slo.spec import SloSet, load_slos
from pipeline.store.base import Store

log = logging.getLogger(__name__)


class Pipeline:
    """Everything one worker runs, built from settings and a store."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        datadir: str = "data/faust",
        slos: SloSet | None = None,
    ) -> None:
        self.settings = settings
        #: The SLO file's SLOs (validated once, at start), or none.
        self.slos = slos if slos is not None else load_slo_file(settings.slo_file)
        self.store = store
        self.clock = SystemClock()
        self.flags = AnomalyFlags()
        self.exemplars = ExemplarRequests(self.clock)
        limits = QueryLimits.of(settings)
        self.queries = QueryRunner(lambda: open_reader(store, limits), limits.timeout_seconds)
        #: the service graph of the traces this worker decides (None: not derived), and
        #: its merged recent windows (root-cause ranking reads them)
        self.graph = (
            GraphAggregator(settings.window_seconds, settings.graph_max_peers)
            if settings.service_graph
            else None
        )
        self.graph_history = GraphHistory()
        self.faust = WindowApp(
            settings,
            store,
            self.clock,
            self.flags,
            self.queries,
            datadir=datadir,
            graph=self.graph_history if self.graph is not None else None,
            slos=self.slos,
        )
        self.app = self.faust.app
        self.faust.beside(self.start_ingest, self.stop)
        self.core = self._ingest_core()
        #: Built by :meth:`start_ingest`: the app (and its agent tests) need no broker before.
        self.loop: IngestLoop | None = None
        self._thread: threading.Thread | None = None
        #: Set when the ingest loop died: the worker then exits non-zero.
        self.ingest_failed = False

    def stop(self) -> None:
        """With the app: a running /query is killed, not waited for; then the ingest loop."""
        self.queries.close()
        self.stop_ingest()

    # -- ingest side ----------------------------------------------------------------------
    def _ingest_core(self) -> IngestCore:
        s = self.settings
        policies = standard_policies(s.baseline_rate, LatencyState(), self.flags, self.exemplars)
        buffer = TraceBuffer(s.decision_wait_seconds, self.clock, policies)
        return IngestCore(
            buffer=buffer,
            enricher=Enricher(
                EnrichConfig(
                    max_services=s.max_services,
                    max_operations_per_service=s.max_operations_per_service,
                )
            ),
            clock=self.clock,
            window_seconds=s.window_seconds,
            max_message_bytes=s.max_message_bytes,
            cut_interval_seconds=s.cut_interval_seconds,
            exemplars=self.exemplars,
            graph=self.graph,
            thresholds=self.slos.thresholds_by_service(),
        )

    def _trace_sink(self, commits: CommitProtocol) -> BatchingSink[DecidedTrace]:
        return BatchingSink(
            "otel_traces",
            TraceWriter(self.store, commits.in_replay_zone),
            _trace_identity,
            max_rows=self.settings.batch_max_traces,
            # Inserts run beside consumption; their rows count against the fetch bound.
            background=True,
        )

    def _ingest_loop(self) -> IngestLoop:
        s = self.settings
        consumer = Consumer(consumer_config(s.kafka_bootstrap, s.group, s.kafka_security))
        commits = CommitProtocol(consumer, s.input_topic)
        return IngestLoop(
            core=self.core,
            commits=commits,
            consumer=consumer,
            producer=Producer(producer_config(s.kafka_bootstrap, s.kafka_security)),
            sink=self._trace_sink(commits),
            input_topic=s.input_topic,
            partials_topic=s.partials_topic,
            dlq_topic=s.dlq_topic,
            flush_interval=s.flush_interval_seconds,
            max_buffered_traces=s.max_buffered_traces,
            partials_partitions=s.partials_partitions,
            dlq_max_value_bytes=s.dlq_max_value_bytes,
            graph=self._graph_flusher(),
        )

    def _graph_flusher(self) -> GraphFlusher | None:
        if self.graph is None:
            return None
        register_graph_metrics()
        return GraphFlusher(
            self.graph,
            self.store,
            self.clock,
            self.settings.graph_flush_seconds,
            self.graph_history,
        )

    def start_ingest(self) -> None:
        self.loop = self._ingest_loop()
        self._thread = threading.Thread(target=self._run_ingest, name="ingest", daemon=True)
        self._thread.start()

    def _run_ingest(self) -> None:
        """Run the loop; if it dies, stop the whole worker rather than idle as a zombie.

        A worker without its ingest loop would keep its partitions and the group
        would never hand them to a healthy worker; exiting lets a supervisor restart
        it, and the restart resumes from the committed marks.
        """
        assert self.loop is not None
        try:
            self.loop.run()
        except BaseException:
            log.critical("ingest loop died; stopping the worker", exc_info=True)
            self.ingest_failed = True
            os.kill(os.getpid(), signal.SIGTERM)

    def stop_ingest(self, timeout: float = 30.0) -> None:
        if self.loop is not None:
            self.loop.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout)


def load_slo_file(path: str) -> SloSet:
    """The SLOs of ``SPANSTREAM_SLO_FILE`` (none when unset); ConfigError when invalid."""
    return load_slos(path) if path else SloSet()


def _trace_identity(trace: DecidedTrace) -> str:
    return trace.trace_id + ":" + ",".join(s.span_id for s in trace.heads)
