"""Span heads: what every stage reads of a span, with the full span built only when kept.

Enrichment, tail sampling and window aggregation read eight fields of a span
(:class:`~pipeline.model.SpanHead`); only spans of kept traces are stored, and those need every
``otel_traces`` column. Building the full :class:`~pipeline.model.Span` (attribute
maps, events, links) for every span cost ~12 us of Python per span, twenty times
the upb parse, and most spans are dropped. So an ``otlp_proto`` record becomes a
list of :class:`~pipeline.model.SpanHead` values (natives, see :mod:`pipeline.native`):

1. the record is validated (UTF-8, nesting depth, wire format) as upb would:
   natively by :func:`pipeline.native.valid`, which vouches only for bytes
   upb must accept (``_validate.h``), else by upb itself (``parse_request``),
   whose verdict and error text stand; the parsed message is then dropped.
2. the native :func:`pipeline.native.scan` walks the same bytes: one
   :class:`ScopeContext` per resource and scope (resource attributes, scope name
   and version), and one head per span: hex ids, start, duration, the enricher's
   ``(operation, is_error, series service)`` (memoised, see ``_heads.c``) and the
   estimated row size (:func:`span_size`), plus where the span's bytes are.
3. :func:`to_span` builds the full span when one is needed (the stored columns
   are read natively by :func:`head_columns`, without it): upb parses the span's
   bytes again (:func:`~pipeline.otlp.otlp_proto.span_fields`) for the attribute
   map, events and links, and the columns are put together here.

Spans the native scan does not read itself (non-canonical encodings, invalid ids,
attribute maps over the enricher's caps) come back through :func:`_slow_head`,
which builds their full span at once, in the original order of checks, so every
error and every derived value is the one the Python decoder gives. The JSON
decoder builds full spans directly; :func:`head_of` wraps them.
"""

from __future__ import annotations

from typing import Any, Final
from weakref import WeakKeyDictionary

from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan

from pipeline import native
from pipeline.enrich import Enricher
from pipeline.model import Span, SpanHead
from pipeline.otlp.ids import KIND_NUMBERS, KINDS, STATUSES
from pipeline.otlp.otlp_proto import (
    any_string,
    attributes,
    build_span,
    parse_request,
    span_fields,
)

__all__ = [
    "ScopeContext",
    "head_buffers",
    "head_columns",
    "head_of",
    "heads_from_proto",
    "no_scan",
    "to_span",
]

#: Derive results (and scope contexts) cached per enricher before the cache is
#: cleared: bounds memory whatever the span names and resources.
MEMO_LIMIT: Final = 100_000
# Fixed-width columns (timestamps, ids, duration) of one otel_traces row.
_FIXED_ROW_BYTES: Final = 8 + 32 + 16 + 16 + 8


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

    def __init__(
        self,
        resource_attributes: dict[str, str],
        scope_name: str,
        scope_version: str,
        enricher: Enricher,
        map_bytes: int | None = None,
    ) -> None:
        self.resource_attributes = resource_attributes
        self.service = resource_attributes.get("service.name", "")
        self.scope_name = scope_name
        self.scope_version = scope_version
        self.enricher = enricher
        if map_bytes is None:
            map_bytes = _map_size(resource_attributes)
        #: The part of :func:`span_size` that every span of this scope shares.
        self.base_bytes = (
            _FIXED_ROW_BYTES + len(self.service) + len(scope_name) + len(scope_version) + map_bytes
        )


def heads_from_proto(value: bytes, enricher: Enricher) -> list[SpanHead]:
    """Decode one ``otlp_proto`` record into span heads (may be empty); raises DecodeError.

    upb parses the record only when :func:`~pipeline.native.valid` cannot vouch
    for it (its verdict and error then stand) or the native scan gives up.
    """
    request = None if native.valid(value) else parse_request(value)
    state = _scanners.get(enricher)
    if state is None:
        state = _scanners[enricher] = _Scanner(enricher)
    config = enricher.config
    heads: list[SpanHead] | None = native.scan(
        value,
        state.make_context,
        state.contexts,
        state.derive_memo,
        state.derive,
        _slow_head,
        _kv_string,
        config.max_span_attributes,
        config.max_attribute_value_length,
        MEMO_LIMIT,
    )
    if heads is None:  # a layout the native scan does not read (e.g. groups): all in Python
        heads = _heads_in_python(parse_request(value) if request is None else request, enricher)
    return heads


def no_scan(value: bytes, *_: Any) -> None:
    """The reference of the native scan: none, every record decodes in Python.

    The native scan's heads are those :func:`_heads_in_python` makes (the
    equivalence tests hold them equal); ``None`` is its answer for a layout it
    leaves to Python.
    """


def to_span(head: SpanHead) -> Span:
    """The full enriched span of a head: the one it carries, else read from its bytes."""
    if head.span is not None:
        return head.span
    ctx: ScopeContext = head.ctx
    span_attributes, events, links, name, trace_state, kind, status, message = span_fields(
        head.value, head.offset, head.length
    )
    # The column mapping of otlp_proto.build_span, from the scanned values.
    return Span(
        head.timestamp_ns,
        head.trace_id,
        head.span_id,
        head.parent_span_id,
        trace_state,
        name,
        KINDS.get(kind, ""),
        ctx.service,
        ctx.resource_attributes,
        ctx.scope_name,
        ctx.scope_version,
        # Uncapped on purpose: the scan sends spans over the enricher's caps to the
        # Python path, so cap_attributes would return this very dict.
        span_attributes,
        head.duration_ns,
        STATUSES.get(status, ""),
        message,
        events,
        links,
        head.operation,
        head.is_error,
        "otlp_proto",
    )


def head_columns(heads: list[SpanHead]) -> dict[str, list[Any]]:
    """``otel_traces`` columns of heads the native scan made (``span is None``).

    The same values as ``span_columns(map(to_span, heads))``, read in one native
    pass from the records' bytes without a Span per head.
    """
    found: dict[str, list[Any]] = native.columns(heads, _kv_string, KINDS, STATUSES)
    return found


def head_buffers(heads: list[SpanHead]) -> dict[str, tuple[Any, ...]]:
    """:func:`head_columns` as native Arrow buffers (``pipeline/otlp/_arrow.h``).

    :func:`pipeline.store.arrow.from_layout` makes each an array. Raises
    OverflowError when a column passes Arrow's int32 offsets (split the heads).
    """
    found: dict[str, tuple[Any, ...]] = native.arrow_columns(heads, _kv_string, KINDS, STATUSES)
    return found


def head_of(
    span: Span,
    value: bytes = b"",
    offset: int = 0,
    length: int = 0,
    ctx: Any = None,
    service: str | None = None,
) -> SpanHead:
    """A head carrying an already built span: how a :class:`Span` becomes what the stages read.

    JSON records, spans the native scan leaves to Python, and tests come this way.

    ``service`` is the series service (``Enricher.series_service``), the span's own
    by default; the span itself keeps its real one for storage.
    """
    return native.SpanHead(
        span.trace_id,
        span.span_id,
        span.parent_span_id,
        span.timestamp_ns,
        span.duration_ns,
        span.service_name if service is None else service,
        span.operation,
        span.is_error,
        span_size(span),
        value,
        offset,
        length,
        ctx,
        span,
        KIND_NUMBERS.get(span.span_kind, 0),
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


class _Scanner:
    """What the native scan keeps between records of one enricher, and its callbacks.

    ``derive_memo`` maps the inputs Enricher.derive reads to its
    ``(operation, is_error, series service)``: sound because an answer, once given,
    never changes (operation sets only grow, an admitted service stays admitted, and
    a full set or the services bound stays full).
    ``contexts`` maps the bytes of a (resource, scope) to its ScopeContext.
    """

    __slots__ = ("contexts", "derive_memo", "enricher")

    def __init__(self, enricher: Enricher) -> None:
        self.enricher = enricher
        self.derive_memo: dict[bytes, tuple[str, bool, str]] = {}
        self.contexts: dict[bytes, ScopeContext] = {}

    def make_context(
        self, resource_attributes: dict[str, str], name: str, version: str, map_bytes: int
    ) -> ScopeContext:
        return ScopeContext(resource_attributes, name, version, self.enricher, map_bytes)

    def derive(
        self, service: str, name: str, kind: int, status: int, attrs: dict[str, str]
    ) -> tuple[str, bool, str]:
        enricher = self.enricher
        operation, is_error, _ = enricher.derive(
            service, name, KINDS.get(kind, ""), STATUSES.get(status, ""), attrs
        )
        return operation, is_error, enricher.series_service(service)


# Enrichers are few and long-lived; their scan state goes with them.
_scanners: WeakKeyDictionary[Enricher, _Scanner] = WeakKeyDictionary()


def _slow_head(value: bytes, offset: int, length: int, ctx: ScopeContext) -> SpanHead:
    """A span the native scan leaves to Python: built in full now (raises ``bad_span``)."""
    message = ProtoSpan.FromString(value[offset : offset + length])
    span = build_span(message, ctx)
    return head_of(span, value, offset, length, ctx, ctx.enricher.series_service(ctx.service))


def _kv_string(raw: bytes) -> str:
    """AsString of an AnyValue that is not a plain string, int or bool."""
    return any_string(AnyValue.FromString(raw))


def _heads_in_python(request: Any, enricher: Enricher) -> list[SpanHead]:
    heads: list[SpanHead] = []
    for resource_spans in request.resource_spans:
        resource_attributes = attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope
            ctx = ScopeContext(resource_attributes, scope.name, scope.version, enricher)
            for span in scope_spans.spans:
                built = build_span(span, ctx)  # derives first: admits the service
                heads.append(head_of(built, service=enricher.series_service(ctx.service)))
    return heads
