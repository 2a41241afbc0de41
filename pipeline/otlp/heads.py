"""Span heads: what every stage reads of a span, with the full span built only when kept.

Enrichment, tail sampling and window aggregation read eight fields of a span
(:class:`SpanFacts`); only spans of kept traces are stored, and those need every
``otel_traces`` column. Building the full :class:`~pipeline.model.Span` (attribute
maps, events, links) for every span cost ~12 us of Python per span, twenty times
the upb parse, and most spans are dropped. So an ``otlp_proto`` record becomes a
list of :class:`SpanHead` values:

1. upb parses the request (``parse_request``): this validates everything (UTF-8,
   nesting depth, wire format), as before, and gives the resource attributes and
   scopes, decoded in Python once per resource and scope (:class:`ScopeContext`).
2. the native :func:`pipeline.otlp._heads.scan` walks the same bytes and makes one
   head per span: hex ids, start, duration, service, the enricher's
   ``(operation, is_error)`` (memoised, see ``_heads.c``) and the estimated row
   size (:func:`span_size`), plus where the span's bytes are in the record.
3. :func:`to_span` builds the full span from those bytes with
   :func:`~pipeline.otlp.otlp_proto.build_span` when it is needed (a kept trace).

Spans the native scan does not read itself (non-canonical encodings, invalid ids,
attribute maps over the enricher's caps) come back through :func:`_slow_head`,
which builds their full span at once, in the original order of checks, so every
error and every derived value is the one the Python decoder gives. The JSON
decoder builds full spans directly; :func:`head_of` wraps them.
"""

from __future__ import annotations

from typing import Any, Final, Protocol

from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan

from pipeline.enrich import Enricher
from pipeline.model import Span
from pipeline.otlp._heads import SpanHead, scan
from pipeline.otlp.ids import KINDS, STATUSES
from pipeline.otlp.otlp_proto import any_string, attributes, build_span, parse_request

__all__ = ["ScopeContext", "SpanFacts", "SpanHead", "head_of", "heads_from_proto", "to_span"]

#: Derive results memoised per enricher before the memo is cleared (bounds memory).
MEMO_LIMIT: Final = 100_000
# Fixed-width columns (timestamps, ids, duration) of one otel_traces row.
_FIXED_ROW_BYTES: Final = 8 + 32 + 16 + 16 + 8


class SpanFacts(Protocol):
    """The fields of a span that enrichment, sampling and windows read.

    Both :class:`SpanHead` and :class:`~pipeline.model.Span` have them.
    """

    @property
    def trace_id(self) -> str: ...
    @property
    def span_id(self) -> str: ...
    @property
    def parent_span_id(self) -> str: ...
    @property
    def timestamp_ns(self) -> int: ...
    @property
    def duration_ns(self) -> int: ...
    @property
    def service_name(self) -> str: ...
    @property
    def operation(self) -> str: ...
    @property
    def is_error(self) -> bool: ...


class ScopeContext:
    """One (resource, scope) of a request: what its spans share."""

    __slots__ = (
        "base_bytes",
        "enricher",
        "resource_attributes",
        "scope_name",
        "scope_version",
        "service",
    )

    def __init__(self, resource_attributes: dict[str, str], scope: Any, enricher: Enricher):
        self.resource_attributes = resource_attributes
        self.service: str = resource_attributes.get("service.name", "")
        self.scope_name: str = scope.name
        self.scope_version: str = scope.version
        self.enricher = enricher
        #: The part of :func:`span_size` that every span of this scope shares.
        self.base_bytes = (
            _FIXED_ROW_BYTES
            + len(self.service)
            + len(self.scope_name)
            + len(self.scope_version)
            + _map_size(resource_attributes)
        )


def heads_from_proto(value: bytes, enricher: Enricher) -> list[SpanHead]:
    """Decode one ``otlp_proto`` record into span heads (may be empty); raises DecodeError."""
    request = parse_request(value)
    contexts = []
    for resource_spans in request.resource_spans:
        resource_attributes = attributes(resource_spans.resource.attributes)
        contexts.append(
            [
                ScopeContext(resource_attributes, ss.scope, enricher)
                for ss in resource_spans.scope_spans
            ]
        )
    config = enricher.config
    heads = scan(
        value,
        contexts,
        enricher.derive_memo,
        _Deriver(enricher),
        _slow_head,
        _kv_string,
        config.max_span_attributes,
        config.max_attribute_value_length,
        MEMO_LIMIT,
    )
    if heads is None:  # a layout the native scan does not read (e.g. groups): all in Python
        heads = _heads_in_python(request, contexts)
    return heads


def to_span(head: SpanFacts) -> Span:
    """The full enriched span of a head (a :class:`Span` is returned as it is)."""
    if isinstance(head, Span):
        return head
    assert isinstance(head, SpanHead)
    if head.span is not None:
        return head.span
    message = ProtoSpan.FromString(head.value[head.offset : head.offset + head.length])
    return build_span(message, head.ctx, (head.operation, head.is_error))


def head_of(
    span: Span, value: bytes = b"", offset: int = 0, length: int = 0, ctx: Any = None
) -> SpanHead:
    """A head carrying an already built span (JSON records, spans decoded in Python)."""
    return SpanHead(
        span.trace_id,
        span.span_id,
        span.parent_span_id,
        span.timestamp_ns,
        span.duration_ns,
        span.service_name,
        span.operation,
        span.is_error,
        span_size(span),
        value,
        offset,
        length,
        ctx,
        span,
    )


def span_size(span: Span) -> int:
    """Approximate uncompressed bytes of a span's ``otel_traces`` row.

    ``_heads.c`` computes the same sum without building the span; the
    equivalence tests hold the two together.

    >>> span_size(Span(0, "a" * 32, "b" * 16, "", "", "GET", "Server", "api", {},
    ...                "", "", {"k": "vv"}, 1, "Unset", ""))
    100
    """
    size = (
        _FIXED_ROW_BYTES
        + len(span.span_name)
        + len(span.service_name)
        + len(span.span_kind)
        + len(span.status_code)
        + len(span.status_message)
        + len(span.trace_state)
        + len(span.scope_name)
        + len(span.scope_version)
        + _map_size(span.resource_attributes)
        + _map_size(span.span_attributes)
    )
    # Most spans have neither; skip building generators for them.
    if span.events:
        size += sum(8 + len(e.name) + _map_size(e.attributes) for e in span.events)
    if span.links:
        size += sum(48 + len(link.trace_state) for link in span.links)
    return size


def _map_size(attrs: dict[str, str]) -> int:
    return sum(map(len, attrs)) + sum(map(len, attrs.values())) if attrs else 0


class _Deriver:
    """The scan's derive callback: enum codes to the enricher's strings."""

    __slots__ = ("_derive",)

    def __init__(self, enricher: Enricher) -> None:
        self._derive = enricher.derive

    def __call__(
        self, service: str, name: str, kind: int, status: int, attrs: dict[str, str]
    ) -> tuple[str, bool]:
        operation, is_error, _ = self._derive(
            service, name, KINDS.get(kind, ""), STATUSES.get(status, ""), attrs
        )
        return operation, is_error


def _slow_head(value: bytes, offset: int, length: int, ctx: ScopeContext) -> SpanHead:
    """A span the native scan leaves to Python: built in full now (raises ``bad_span``)."""
    message = ProtoSpan.FromString(value[offset : offset + length])
    return head_of(build_span(message, ctx), value, offset, length, ctx)


def _kv_string(raw: bytes) -> str:
    """AsString of an AnyValue that is not a plain string, int or bool."""
    return any_string(AnyValue.FromString(raw))


def _heads_in_python(request: Any, contexts: list[list[ScopeContext]]) -> list[SpanHead]:
    return [
        head_of(build_span(span, ctx))
        for resource_spans, scope_contexts in zip(request.resource_spans, contexts, strict=True)
        for scope_spans, ctx in zip(resource_spans.scope_spans, scope_contexts, strict=True)
        for span in scope_spans.spans
    ]
