"""The worker: the ingest thread plus one Faust app for the window stage; wiring only.

Path of a span: input topic -> :class:`~pipeline.ingest.loop.IngestLoop`
(decode, enrich, tail-sample, partials) -> ``otel_traces`` and the partials
topic -> the ``assemble`` agent (merge into the ``windows`` table) -> the
``close`` timer (closed windows -> ``spanstream_red_metrics``, scores,
alerts -> ``spanstream_anomalies`` and the alert topic).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Sequence
from typing import Any

import faust
from confluent_kafka import Consumer, KafkaException, Producer

from pipeline import metrics
from pipeline.alerts import Alert
from pipeline.clock import SystemClock
from pipeline.enrich import EnrichConfig, Enricher
from pipeline.errors import ServiceUnavailable, SinkUnavailable, SpanstreamError
from pipeline.ingest.core import DeadLetter, IngestCore
from pipeline.ingest.kafka_config import SESSION_TIMEOUT_MS, consumer_config, producer_config
from pipeline.ingest.loop import KAFKA_RETRY_SECONDS, IngestLoop, dlq_headers
from pipeline.judge import WindowJudge
from pipeline.kafka_client import faust_kwargs
from pipeline.partials_gaps import STALL_CHECK_SECONDS, StallWatch, settle_read_back
from pipeline.partials_log import KafkaPartialsLog, PartialsLog, Record
from pipeline.query import QueryBusy, QueryLimits, QueryRefused, QueryRunner, open_reader
from pipeline.sampling import (
    AnomalyFlags,
    ExemplarRequests,
    LatencyState,
    TraceBuffer,
    standard_policies,
)
from pipeline.sampling.buffer import DecidedTrace
from pipeline.sampling.counters import per_service
from pipeline.settings import Settings
from pipeline.sinks.base import BatchingSink
from pipeline.sinks.clickhouse import (
    ANOMALIES_TABLE,
    METRICS_TABLE,
    anomaly_columns,
    stored_span_ids,
    table_writer,
    trace_arrays,
    trace_columns,
    window_columns,
)
from pipeline.store.base import Store, accepts_arrow
from pipeline.tables import OwnedView
from pipeline.web_guard import WebGuard, middleware
from pipeline.windows.assembler import WindowAssembler
from pipeline.windows.continuity import PartitionContinuity
from pipeline.windows.hold import Hold
from pipeline.windows.partial import Partial
from pipeline.windows.series import ClosedWindow

log = logging.getLogger(__name__)


class Pipeline:
    """Everything one worker runs, built from settings and a store."""

    def __init__(self, settings: Settings, store: Store, *, datadir: str = "data/faust") -> None:
        self.settings = settings
        self.store = store
        self.clock = SystemClock()
        self.flags = AnomalyFlags()
        self.exemplars = ExemplarRequests(self.clock)
        self.judge = WindowJudge()
        self.lock = asyncio.Lock()
        limits = QueryLimits.of(settings)
        self.queries = QueryRunner(lambda: open_reader(store, limits), limits.timeout_seconds)
        self._late_counted = 0
        self._faust_app(datadir)
        self.core = self._ingest_core()
        self.sink = self._trace_sink(self.core)
        #: Built by :meth:`start_ingest`: the app (and its agent tests) need no broker before.
        self.loop: IngestLoop | None = None
        self._thread: threading.Thread | None = None
        #: Set when the ingest loop died: the worker then exits non-zero.
        self.ingest_failed = False

    # -- Faust side ---------------------------------------------------------------------
    def _faust_app(self, datadir: str) -> None:
        s = self.settings
        app = faust.App(
            s.windows_app_id,
            **faust_kwargs(s.kafka_bootstrap, s.kafka_security),
            store="memory://",
            datadir=datadir,
            topic_partitions=s.partials_partitions,
            table_standby_replicas=0,
            producer_acks=-1,
            # Same failover time as the ingest consumer (Faust's default is 60 s).
            broker_session_timeout=SESSION_TIMEOUT_MS / 1000,
            broker_heartbeat_interval=3.0,
            web_port=s.web_port,
            web_bind=s.web_bind,
            # Every route (ours and Faust's own) passes the token and Host check first.
            web_application_options={"middlewares": [middleware(WebGuard.of(s))]},
            topic_allow_declare=True,
            # No Faust codec on anything read from Kafka (json would also rebuild any
            # registered model a payload names): every topic and table is raw bytes.
            key_serializer="raw",
            value_serializer="raw",
        )
        self.app = app  # the table views below ask it which partitions this worker owns
        raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
        self.partials_topic = app.topic(s.partials_topic, key_type=bytes, value_type=bytes, **raw)
        self.alerts_topic = app.topic(s.alert_topic, key_type=bytes, value_type=bytes, **raw)
        self.dlq_topic = app.topic(s.dlq_topic, key_type=bytes, value_type=bytes, **raw)
        n = s.partials_partitions
        # Raw bytes in and out: a changelog record is untrusted, so no Faust codec (json
        # with model reconstruction) runs on it; the views decode and check (tables.py).
        table_opts: dict[str, Any] = {
            "partitions": n,
            "use_partitioner": True,
            "key_type": bytes,
            "value_type": bytes,
        }
        self.windows = app.Table("windows", **table_opts)
        self.detectors = app.Table("detectors", **table_opts)
        self.window_view = OwnedView(self.windows, n, self._owned, "windows")
        self.detector_view = OwnedView(self.detectors, n, self._owned, "detectors")
        self.assembler = WindowAssembler(
            s.window_seconds,
            s.allowed_lateness_seconds,
            self.clock,
            idle_close_seconds=idle_close_seconds(s.window_seconds),
            store=self.window_view,
        )
        app.agent(self.partials_topic, name="assemble")(self._assemble)
        self.continuity = PartitionContinuity()
        #: Built on first need (a skipped partial, a partition's first record): no broker before.
        self.partials_log: PartialsLog | None = None
        app.on_partitions_assigned.connect(self._on_assigned)
        self.stalls = StallWatch(s.partials_topic)
        app.timer(STALL_CHECK_SECONDS)(self._settle_stalled)
        app.timer(1.0)(self._close)
        app.service(_ingest_service(self))

        # Faust binds a page handler as a View method (view, request); a bound method
        # would lose ``view``, so a plain function forwards to it.
        async def query_page(view: Any, request: Any) -> Any:
            return await self._query_page(view, request)

        app.page("/query")(query_page)
        self._owned_before: set[int] = set()

    def _owned(self) -> set[int]:
        actives = self.app.assignor.assigned_actives()
        return {tp.partition for tp in actives if tp.topic == self.settings.partials_topic}

    def _settled(self) -> bool:
        """False while Faust rebalances or recovers tables; reload series after a change."""
        if self.app.rebalancing or self.app.in_recovery:
            return False
        owned = self._owned()
        if owned != self._owned_before:
            self._owned_before = owned
            self.assembler.reload()
            log.info("window stage owns partials partitions %s", sorted(owned))
        return True

    async def _assemble(self, stream: Any) -> Any:
        # Acks are manual: Faust acks the event in hand when its stream is closed (a
        # stopping worker cancels this agent, e.g. while it waits for the lock held by
        # a close writing to ClickHouse), merged or not, and the stop then commits it.
        # Acked only once merged, a partial cut short stays uncommitted and the next
        # owner of its partition merges it (or, if its table write landed, skips it).
        manual = stream.noack()
        async for event in manual.events():
            record = Record.of_faust(event.message)
            read_back = await self._skipped_before(record)
            for skipped in read_back:
                await self._take_in(skipped)
            if not await settle_read_back(self.app, event.message, read_back):
                # A rebalance since the fetch: unless Faust delivers the range again from
                # its commit, the next record shows the jump again, in this generation.
                self.continuity.forget(record.partition)
            series = await self._take_in(record)
            await manual.ack(event)
            if series is not None:
                yield series

    async def _on_assigned(self, _app: Any, /, *args: Any, signal: Any, **_: Any) -> None:
        """Faust's signal after each rebalance, with this worker's whole assignment."""
        (assigned,) = args
        topic = self.settings.partials_topic
        self.continuity.assigned({tp.partition for tp in assigned if tp.topic == topic})

    async def _skipped_before(self, record: Record) -> list[Record]:
        """Records of this partition the consumer skipped before ``record``, read directly."""
        p = record.partition
        if not self.continuity.expecting(p):
            try:
                committed = await asyncio.to_thread(self._partials_log().committed, p)
            except KafkaException as exc:  # untracked until a later record's lookup works
                log.warning("%s[%d]: committed offset not known: %s", record.topic, p, exc)
                committed = None
            if committed is not None:
                self.continuity.expect(p, committed)
        skipped = self.continuity.observe(p, record.offset)
        if not skipped:
            return []
        log.warning(
            "%s[%d]: offsets %d-%d were skipped by the consumer; reading them directly",
            record.topic,
            p,
            skipped.start,
            skipped.stop - 1,
        )
        metrics.PARTIALS_REREAD.inc(len(skipped))
        while True:  # the record in hand waits, unacked: nothing after the gap commits
            try:
                return await asyncio.to_thread(self._partials_log().read, p, skipped)
            except (KafkaException, ServiceUnavailable) as exc:
                log.warning("re-reading %s[%d] failed, retrying: %s", record.topic, p, exc)
                await asyncio.sleep(KAFKA_RETRY_SECONDS)

    async def _settle_stalled(self) -> None:
        await self.stalls.settle(self.app.consumer, self.continuity.next_offset)

    def _partials_log(self) -> PartialsLog:
        if self.partials_log is None:
            s = self.settings
            self.partials_log = KafkaPartialsLog(
                s.kafka_bootstrap, s.partials_topic, s.windows_app_id, security=s.kafka_security
            )
        return self.partials_log

    async def _take_in(self, record: Record) -> tuple[str, str] | None:
        """Merge one partial (its series) or apply one Hold marker (None)."""
        try:
            if Hold.is_hold(record.value):
                marker = Hold.from_json(record.value)
                async with self.lock:
                    if self.assembler.hold(marker):
                        log.info(
                            "input partition %d paused upstream: its windows wait for it",
                            marker.source_partition,
                        )
                return None
            partial = Partial.from_json(record.value)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:  # e.g. a tombstone
            await self._dead_letter_partial(record, exc)
            return None
        async with self.lock:
            try:
                self.assembler.merge(partial)
                return partial.series
            except ValueError as exc:  # raised before merging: another window size
                refused = exc
        await self._dead_letter_partial(record, refused)
        return None

    async def _dead_letter_partial(self, record: Record, exc: Exception) -> None:
        """A value no worker could have written: to the DLQ, counted, never merged."""
        log.error(
            "dead-lettering %s[%d]@%d: bad_partial: %s",
            record.topic,
            record.partition,
            record.offset,
            exc,
        )
        letter = DeadLetter(
            record.partition, record.offset, record.key, record.value, [], "bad_partial", str(exc)
        )
        headers = dlq_headers(record.topic, letter)
        delivery = await self.dlq_topic.send(key=record.key, value=record.value, headers=headers)
        await delivery
        metrics.DLQ_RECORDS.labels("bad_partial").inc()

    async def _close(self) -> None:
        async with self.lock:
            self._count_late()
            if not self._settled():
                return
            try:
                # Table changes (closed windows, detector and episode state) land only after
                # every effect of the close is durable: windows and anomalies in ClickHouse,
                # alerts acked by Kafka. A crash or failure before that closes the same
                # windows again; the retry writes the same rows under the same tokens and
                # republishes the same alert ids and versions (at least once).
                with self.window_view.staged(), self.detector_view.staged():
                    closed = self.assembler.close_ready()
                    if closed:
                        await asyncio.to_thread(self._write_windows, closed)
                        await self._publish(self._judge(closed))
            except SinkUnavailable as exc:
                log.warning("closed windows or their alerts not written, retrying: %s", exc)
                metrics.INSERT_RETRIES.labels("window_close").inc()
                self.assembler.reload()
            except Exception:
                # A bug, not an outage; still, the series in memory were closed in place:
                # reload them from the table (unchanged) or the windows would be lost. The
                # timer goes on (an exception would end it for good) and retries.
                log.exception("closing windows failed, retrying")
                metrics.INSERT_RETRIES.labels("window_close").inc()
                self.assembler.reload()

    def _count_late(self) -> None:
        """Export the assembler's late-span count (a plain int it keeps) as a counter."""
        late = self.assembler.late_spans
        if late > self._late_counted:
            metrics.LATE_SPANS.inc(late - self._late_counted)
            self._late_counted = late

    def _write_windows(self, closed: Sequence[ClosedWindow]) -> None:
        write = table_writer(self.store, METRICS_TABLE, window_columns)
        write(closed, _window_token(closed))
        metrics.WINDOWS_CLOSED.inc(len(closed))
        newest = max(w.window_end_ns for w in closed)
        metrics.WINDOW_LAG.set(time.time() - newest / 1e9)

    def _judge(self, closed: Sequence[ClosedWindow]) -> list[Alert]:
        alerts = self.judge.judge(closed, self.detector_view)
        window_ns = self.settings.window_seconds * 1_000_000_000
        for alert in alerts:
            if alert.status == "firing":
                w = alert.window
                self.flags.flag(w.service, w.operation, w.window_end_ns + 2 * window_ns)
        return alerts

    async def _publish(self, alerts: Sequence[Alert]) -> None:
        """Anomalies table, then the alert topic, waiting for Kafka's ack of each message."""
        if not alerts:
            return
        write = table_writer(self.store, ANOMALIES_TABLE, anomaly_columns)
        await asyncio.to_thread(write, alerts, "alerts-" + _alert_token(alerts))
        published = [a for a in alerts if a.publish]
        try:
            pending = [
                await self.alerts_topic.send(
                    key=a.window.service.encode(), value=json.dumps(a.to_message()).encode()
                )
                for a in published
            ]
            for delivery in pending:
                await delivery
        except Exception as exc:  # any send failure: retry the whole close
            raise SinkUnavailable(f"alert topic: {exc}") from exc
        for alert in published:
            metrics.ALERTS.labels(alert.status, alert.finding.severity).inc()
            log.info("alert %s v%d: %s", alert.alert_id, alert.version, alert.summary)

    async def _query_page(self, web: Any, request: Any) -> Any:
        from pipeline.store.base import QueryError

        sql = request.query.get("sql", "")
        try:
            body = await self.queries.run(sql)
        except (QueryRefused, QueryError) as exc:
            return web.json({"error": str(exc)}, status=400)
        except (QueryBusy, ServiceUnavailable) as exc:
            return web.json({"error": str(exc)}, status=503)
        return web.bytes(body, content_type="application/json")

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
        )

    def _trace_sink(self, core: IngestCore) -> BatchingSink[DecidedTrace]:
        return BatchingSink(
            "otel_traces",
            self._span_writer(core),
            _trace_identity,
            max_rows=self.settings.batch_max_traces,
            on_written=lambda traces: _written(core, traces),
            # Inserts run beside consumption; their rows count against the fetch bound.
            background=True,
        )

    def _ingest_loop(self) -> IngestLoop:
        s = self.settings
        return IngestLoop(
            core=self.core,
            consumer=Consumer(consumer_config(s.kafka_bootstrap, s.group, s.kafka_security)),
            producer=Producer(producer_config(s.kafka_bootstrap, s.kafka_security)),
            sink=self.sink,
            input_topic=s.input_topic,
            partials_topic=s.partials_topic,
            dlq_topic=s.dlq_topic,
            flush_interval=s.flush_interval_seconds,
            max_buffered_traces=s.max_buffered_traces,
            partials_partitions=s.partials_partitions,
            dlq_max_value_bytes=s.dlq_max_value_bytes,
        )

    def _span_writer(self, core: IngestCore) -> Any:
        to_columns = trace_arrays if accepts_arrow(self.store) else trace_columns
        insert = table_writer(self.store, "otel_traces", to_columns)

        def write(traces: Sequence[DecidedTrace], token: str) -> None:
            replayed = [t.trace_id for t in traces if core.in_replay_zone(t)]
            try:
                stored = stored_span_ids(self.store, replayed) if replayed else set()
            except SpanstreamError as exc:  # back off and retry, like a failed insert
                raise SinkUnavailable(f"replay check on otel_traces failed: {exc}") from exc
            spans = [s for t in traces for s in t.heads if (s.trace_id, s.span_id) not in stored]
            if spans:
                insert(spans, token)

        return write

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


def _ingest_service(pipeline: Pipeline) -> type[faust.Service]:
    class IngestThread(faust.Service):
        """Runs the ingest loop beside the Faust app and stops it with the app."""

        async def on_start(self) -> None:
            pipeline.start_ingest()

        async def on_stop(self) -> None:
            # A running /query is killed, not waited for: SIGTERM stops the worker at once.
            await asyncio.to_thread(pipeline.queries.close)
            await asyncio.to_thread(pipeline.stop_ingest)

    return IngestThread


def idle_close_seconds(window_seconds: int) -> float:
    """How long a silent input partition holds the window watermark back.

    At least one window (the assembler's default), and at least twice the group
    session timeout: a worker killed without leaving the group keeps its input
    partitions until the broker times its session out, and its partitions' spans
    must not turn late meanwhile.

    >>> idle_close_seconds(60), idle_close_seconds(10)
    (60.0, 30.0)
    """
    return max(float(window_seconds), 2 * SESSION_TIMEOUT_MS / 1000)


def _trace_identity(trace: DecidedTrace) -> str:
    return trace.trace_id + ":" + ",".join(s.span_id for s in trace.heads)


def _written(core: IngestCore, traces: Sequence[DecidedTrace]) -> None:
    for trace in traces:
        core.resolve(list(trace.refs))
        for service, (n, _) in per_service(trace.heads).items():
            metrics.SPANS_KEPT.labels(service, trace.policy or "").inc(n)


def _window_token(closed: Sequence[ClosedWindow]) -> str:
    import hashlib

    digest = hashlib.blake2b(json.dumps([w.to_dict() for w in closed]).encode(), digest_size=8)
    return f"windows-{len(closed)}-{digest.hexdigest()}"


def _alert_token(alerts: Sequence[Alert]) -> str:
    return ",".join(f"{a.alert_id}:{a.version}" for a in alerts)[:200]
