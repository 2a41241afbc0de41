"""Kafka record values and a core wired like the worker's, shared by the ingest tests."""

from __future__ import annotations

from opentelemetry.proto.trace.v1.trace_pb2 import Status

from pipeline.clock import ManualClock
from pipeline.enrich import Enricher
from pipeline.ingest.core import IngestCore
from pipeline.otlp.samples import START_NS, proto_request, proto_span
from pipeline.sampling import (
    AnomalyFlags,
    ExemplarRequests,
    LatencyState,
    TraceBuffer,
    standard_policies,
)

WAIT = 5.0
CUT_INTERVAL = 1.0
MS = 1_000_000


def tid(i: int) -> str:
    """A valid 32-hex trace id for an integer."""
    return f"{i + 1:032x}"


def record(*trace_ids: str, error: bool = True, service: str = "checkout", ms: int = 5) -> bytes:
    """An OTLP protobuf request with one server span per trace id.

    Errors by default: the error policy keeps them, so a test knows the decision.
    """
    status = Status(code=Status.STATUS_CODE_ERROR) if error else Status()
    spans = [
        proto_span(
            trace_id=bytes.fromhex(trace_id),
            span_id=(i + 1).to_bytes(8, "big"),
            status=status,
            start_time_unix_nano=START_NS,
            end_time_unix_nano=START_NS + ms * MS,
        )
        for i, trace_id in enumerate(trace_ids)
    ]
    return proto_request(spans, resource={"service.name": service}).SerializeToString()


def make_core(
    clock: ManualClock, baseline_rate: float = 0.0, enricher: Enricher | None = None
) -> IngestCore:
    """An IngestCore with the standard policies, a real TraceBuffer and ``clock``."""
    exemplars = ExemplarRequests(clock)
    policies = standard_policies(baseline_rate, LatencyState(), AnomalyFlags(), exemplars)
    return IngestCore(
        buffer=TraceBuffer(WAIT, clock, policies),
        enricher=enricher or Enricher(),
        clock=clock,
        window_seconds=60,
        max_message_bytes=1_000_000,
        cut_interval_seconds=CUT_INTERVAL,
        exemplars=exemplars,
    )
