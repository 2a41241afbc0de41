"""In-process references, no Kafka: the same messages through the parse, the decoder, the core.

Three rates on the messages the ceiling read: ``FromString`` alone, the
pipeline's ``decode_message`` (decode + enrich), and :class:`IngestCore` as the
worker runs it (decode, enrich, tail sampling, window partials and cuts, the
done-offset tracking of the commit protocol and the ``otel_traces`` columns of
kept traces), on a manual clock. The
gap between the core and the worker is what Kafka, the window stage, the store
and the process around them cost.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

#: Simulated processing time per message for the core's clock: 2,000 messages/s.
_CLOCK_STEP_S = 0.0005
#: Cuts and decisions are handled every this many messages, as a loop's tick would.
_TICK_EVERY = 50


def in_process_rates(values: Sequence[bytes], passes: int = 3) -> dict[str, float]:
    """spans/s of FromString, of decode_message and of the ingest core on ``values``."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    from pipeline.enrich import Enricher
    from pipeline.otlp.decode import decode_message

    parse = ExportTraceServiceRequest.FromString
    enricher = Enricher()
    spans = sum(
        len(decode_message(v, None, max_bytes=1 << 24, enricher=enricher).spans) for v in values
    )

    def best(fn: Callable[[], object]) -> float:
        times = []
        for _ in range(passes):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return spans / min(times) if values else 0.0

    def decode_all() -> None:
        for v in values:
            decode_message(v, None, max_bytes=1 << 24, enricher=enricher)

    return {
        "messages": float(len(values)),
        "from_string_spans_per_s": round(best(lambda: [parse(v) for v in values]), 1),
        "decode_message_spans_per_s": round(best(decode_all), 1),
        "ingest_core_spans_per_s": round(best(lambda: run_core(values)), 1),
    }


def run_core(values: Sequence[bytes], partitions: int = 6, graph: bool | None = None) -> int:
    """Feed ``values`` through a fresh ingest core until all is decided; returns kept spans.

    ``graph``: derive the service graph as the worker does (default: as
    ``SPANSTREAM_SERVICE_GRAPH`` says), drained every tick.
    """
    from pipeline.clock import ManualClock
    from pipeline.enrich import Enricher
    from pipeline.graph.aggregate import GraphAggregator
    from pipeline.ingest.core import IngestCore
    from pipeline.ingest.progress import Progress
    from pipeline.ingest.tracker import MessageTracker
    from pipeline.sampling import (
        AnomalyFlags,
        ExemplarRequests,
        LatencyState,
        TraceBuffer,
        standard_policies,
    )
    from pipeline.sinks.clickhouse import trace_columns

    clock = ManualClock()
    exemplars = ExemplarRequests(clock)
    policies = standard_policies(0.05, LatencyState(), AnomalyFlags(), exemplars)
    core = IngestCore(
        buffer=TraceBuffer(5.0, clock, policies),
        enricher=Enricher(),
        clock=clock,
        window_seconds=60,
        max_message_bytes=1 << 24,
        exemplars=exemplars,
        graph=GraphAggregator(60) if _graph_on(graph) else None,
    )
    tracker = MessageTracker()
    for p in range(partitions):
        core.assign(p, Progress())
    kept = 0

    def tick() -> int:
        core.due_cuts()
        stored = 0
        for trace in core.decided():
            if trace.kept:
                stored += len(trace_columns(trace.heads)["SpanId"])
            tracker.resolve(trace.refs)
        if core.graph is not None:
            core.graph.drain()
        return stored

    for offset, value in enumerate(values):
        _, traces = core.on_record(offset % partitions, offset, None, value, ())
        tracker.track(offset % partitions, offset, traces)
        clock.advance(_CLOCK_STEP_S)
        if offset % _TICK_EVERY == _TICK_EVERY - 1:
            kept += tick()
    clock.advance(core.buffer.decision_wait + 1)
    return kept + tick()


def _graph_on(graph: bool | None) -> bool:
    if graph is not None:
        return graph
    from pipeline.settings import load_settings

    return load_settings().service_graph
