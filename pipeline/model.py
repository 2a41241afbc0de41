"""Values that flow between the stages: a span as the stages read it, as it is stored, and
where it came from.

Two span types, one story:

* :class:`SpanHead` is what every stage reads (enrichment's results, sampling,
  windows, volume counters): ids, times, the series service, the operation, the
  error flag and the estimated row size, plus where the span's bytes are. The
  decoders make one per span; the stages take nothing else.
* :class:`Span` is the stored row: exactly the columns of the Collector ClickHouse
  exporter's ``otel_traces`` table, plus the few fields spanstream derives in
  ``enrich`` (normalized operation, error flag, ingest encoding). Only kept spans
  become one (:func:`pipeline.otlp.heads.to_span`); a Span built another way (the
  JSON decoder, tests) becomes a head by :func:`pipeline.otlp.heads.head_of`.

Nothing here talks to Kafka or ClickHouse.

Kind and status strings follow the current Collector ClickHouse exporter
(``traceutil.SpanKindStr`` / ``StatusCodeStr``): ``Server``, ``Client``,
``Producer``, ``Consumer``, ``Internal``, ``Unspecified`` and ``Unset``,
``Ok``, ``Error``. Older exporter versions wrote ``SPAN_KIND_SERVER`` and
``STATUS_CODE_ERROR``; queries written for those need adjusting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SPAN_KINDS = ("Unspecified", "Internal", "Server", "Client", "Producer", "Consumer")
STATUS_CODES = ("Unset", "Ok", "Error")


@dataclass(frozen=True, slots=True)
class SpanEvent:
    """One span event, as a row of the ``Events`` nested column."""

    timestamp_ns: int
    name: str
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SpanLink:
    """One span link, as a row of the ``Links`` nested column."""

    trace_id: str
    span_id: str
    trace_state: str = ""
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Span:
    """One span, column-for-column the Collector's ``otel_traces`` row.

    ``trace_id``/``span_id``/``parent_span_id`` are lowercase hex (32/16/16
    chars, parent empty for a root). ``timestamp_ns`` is the start time in Unix
    nanoseconds and ``duration_ns`` the end minus start.
    """

    timestamp_ns: int
    trace_id: str
    span_id: str
    parent_span_id: str
    trace_state: str
    span_name: str
    span_kind: str
    service_name: str
    resource_attributes: dict[str, str]
    scope_name: str
    scope_version: str
    span_attributes: dict[str, str]
    duration_ns: int
    status_code: str
    status_message: str
    events: tuple[SpanEvent, ...] = ()
    links: tuple[SpanLink, ...] = ()
    # Derived by enrich; not otel_traces columns.
    operation: str = ""
    is_error: bool = False
    encoding: str = ""

    @property
    def end_ns(self) -> int:
        return self.timestamp_ns + self.duration_ns


@dataclass(frozen=True, slots=True)
class SourceRef:
    """Where a record came from, for dead-letter headers, logs and dedup tokens."""

    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


class SpanHead:
    """What the stages read of one span, and where its bytes are (read-only).

    The native extension defines the type the pipeline uses
    (``pipeline.native.SpanHead``); this class is its Python definition, used
    without the extension. ``service_name`` is the series service
    (``Enricher.series_service``); ``row_bytes`` the estimated ``otel_traces`` row
    size; ``value[offset:offset + length]`` the span's protobuf bytes under ``ctx``
    (a ``pipeline.otlp.heads.ScopeContext``), or ``span`` the Span already built.
    ``kind`` is the OTLP ``Span.SpanKind`` number (0 unspecified, 2 server, 3 client, ...).
    """

    __slots__ = (
        "ctx",
        "duration_ns",
        "is_error",
        "kind",
        "length",
        "offset",
        "operation",
        "parent_span_id",
        "row_bytes",
        "service_name",
        "span",
        "span_id",
        "timestamp_ns",
        "trace_id",
        "value",
    )

    def __init__(
        self,
        trace_id: str,
        span_id: str,
        parent_span_id: str,
        timestamp_ns: int,
        duration_ns: int,
        service_name: str,
        operation: str,
        is_error: bool,
        row_bytes: int,
        value: bytes,
        offset: int,
        length: int,
        ctx: Any,
        span: Span | None,
        kind: int = 0,
    ) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_span_id = parent_span_id
        self.timestamp_ns = timestamp_ns
        self.duration_ns = duration_ns
        self.service_name = service_name
        self.operation = operation
        self.is_error = is_error
        self.row_bytes = row_bytes
        self.value = value
        self.offset = offset
        self.length = length
        self.ctx = ctx
        self.span = span
        self.kind = kind
