"""Span factory for the window tests: heads, as the aggregator takes them."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pipeline.model import Span, SpanHead
from pipeline.otlp.heads import head_of

NS = 1_000_000_000
SpanFactory = Callable[..., SpanHead]


def make_span(
    ts_s: float,
    ms: float,
    *,
    error: bool = False,
    service: str = "shop",
    operation: str = "GET /cart",
    trace: str = "",
) -> SpanHead:
    """The head of a server span starting at ``ts_s`` seconds lasting ``ms`` milliseconds."""
    ts_ns = round(ts_s * NS)
    return head_of(Span(
        timestamp_ns=ts_ns,
        trace_id=trace or f"{ts_ns:032x}",
        span_id="cd" * 8,
        parent_span_id="",
        trace_state="",
        span_name=operation,
        span_kind="Server",
        service_name=service,
        resource_attributes={},
        scope_name="",
        scope_version="",
        span_attributes={},
        duration_ns=round(ms * 1_000_000),
        status_code="Error" if error else "Unset",
        status_message="",
        operation=operation,
        is_error=error,
    ))  # fmt: skip


@pytest.fixture
def span() -> SpanFactory:
    """The span factory: ``span(ts_s, ms, error=..., service=..., operation=..., trace=...)``."""
    return make_span
