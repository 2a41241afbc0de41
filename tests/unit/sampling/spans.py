"""Span and trace builders shared by the sampling tests: heads, as the sampler takes them."""

from __future__ import annotations

from pipeline.model import Span, SpanHead
from pipeline.otlp.heads import head_of
from pipeline.sampling.policy import TraceData

MS = 1_000_000


def span(
    trace: str = "a" * 32,
    span_id: str = "1" * 16,
    parent: str = "",
    service: str = "api",
    operation: str = "GET /",
    duration_ms: float = 10.0,
    error: bool = False,
    start_ns: int = 0,
) -> SpanHead:
    """The head of a minimal enriched span; only the fields sampling reads vary."""
    return head_of(Span(
        timestamp_ns=start_ns,
        trace_id=trace,
        span_id=span_id,
        parent_span_id=parent,
        trace_state="",
        span_name=operation,
        span_kind="Server",
        service_name=service,
        resource_attributes={},
        scope_name="",
        scope_version="",
        span_attributes={},
        duration_ns=int(duration_ms * MS),
        status_code="Error" if error else "Unset",
        status_message="",
        operation=operation,
        is_error=error,
    ))  # fmt: skip


def trace_of(*spans: SpanHead, trace_id: str = "a" * 32) -> TraceData:
    """A TraceData holding ``spans``."""
    return TraceData(trace_id, list(spans))


def tid(i: int) -> str:
    """A distinct, valid 32-hex trace id for an integer."""
    return f"{i:032x}"
