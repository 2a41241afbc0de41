"""Values that flow between the stages: a decoded span and where it came from.

A :class:`Span` carries exactly the columns of the Collector ClickHouse
exporter's ``otel_traces`` table, plus the few fields spanstream derives in
``enrich`` (normalized operation, error flag, ingest encoding). Stages take and
return these frozen values; nothing here talks to Kafka or ClickHouse.

Kind and status strings follow the current Collector ClickHouse exporter
(``traceutil.SpanKindStr`` / ``StatusCodeStr``): ``Server``, ``Client``,
``Producer``, ``Consumer``, ``Internal``, ``Unspecified`` and ``Unset``,
``Ok``, ``Error``. Older exporter versions wrote ``SPAN_KIND_SERVER`` and
``STATUS_CODE_ERROR``; queries written for those need adjusting.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
