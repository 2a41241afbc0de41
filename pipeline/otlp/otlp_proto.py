"""``otlp_proto`` records (serialized ``ExportTraceServiceRequest``) -> full spans, in Python.

The hot path does not come through here for every span: :mod:`pipeline.otlp.heads`
scans each record natively and builds a :class:`~pipeline.model.Span` with
:func:`build_span` only for spans of kept traces, and for the rare spans (or
requests) the native scan leaves to Python. This module is the definition of
the column mapping (see ``decode``); parsing uses the protobuf runtime's upb
backend (C), which also validates every record in full.
"""

from __future__ import annotations

from typing import Any, Protocol

from google.protobuf.message import DecodeError as ProtobufDecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan

from pipeline.enrich import Enricher
from pipeline.errors import DecodeError
from pipeline.model import Span, SpanEvent, SpanLink
from pipeline.otlp.anyvalue import go_bytes, go_float, go_json
from pipeline.otlp.ids import KINDS, STATUSES, check_event_time, check_ids, check_times, link_id

_parse = ExportTraceServiceRequest.FromString


class Scope(Protocol):
    """What a span takes from its resource and instrumentation scope."""

    service: str
    resource_attributes: dict[str, str]
    scope_name: str
    scope_version: str
    enricher: Enricher


def parse_request(value: bytes) -> Any:
    """Parse the wire bytes, mapping upb's failures to reason codes.

    upb reports the failure in the message text: its depth limit (100 nested
    messages) as ``Exceeded upb_DecodeOptions_MaxDepth`` and invalid UTF-8 in
    a ``string`` field as ``String field had bad UTF-8``.
    """
    try:
        return _parse(value)
    except ProtobufDecodeError as exc:
        text = str(exc)
        if "MaxDepth" in text:
            raise DecodeError("too_deep", text) from None
        if "UTF-8" in text:
            raise DecodeError("bad_utf8", text) from None
        raise DecodeError("bad_proto", text) from None


def upb_accepts(value: bytes) -> bool:
    """Whether upb parses ``value`` as a request: the reference of ``native.valid``.

    >>> upb_accepts(b""), upb_accepts(b"\\x0a\\x05")
    (True, False)
    """
    try:
        _parse(value)
    except ProtobufDecodeError:
        return False
    return True


def span_fields(
    value: bytes, offset: int, length: int
) -> tuple[dict[str, str], tuple[SpanEvent, ...], tuple[SpanLink, ...], str, str, int, int, str]:
    """The columns of the span at ``value[offset:offset + length]`` that a head lacks.

    ``(attributes, events, links, name, trace_state, kind, status code, status
    message)``, values as :func:`build_span` maps them.
    """
    span = ProtoSpan.FromString(value[offset : offset + length])
    status = span.status
    return (
        attributes(span.attributes),
        _events(span.events),
        _links(span.links),
        span.name,
        span.trace_state,
        span.kind,
        status.code,
        status.message,
    )


def build_span(span: Any, scope: Scope, derived: tuple[str, bool] | None = None) -> Span:
    """One upb ``Span`` message -> an enriched :class:`Span` (raises ``bad_span``).

    ``derived`` is the ``(operation, is_error)`` pair when it is already known
    (the native scan derived it); otherwise the enricher derives it here. The
    steps run in the order the enricher's state depends on: ids and start/end
    times (:mod:`pipeline.otlp.ids`) are checked before deriving, event times
    and links after.
    """
    trace_id, span_id, parent_id = check_ids(span.trace_id, span.span_id, span.parent_span_id)
    start = span.start_time_unix_nano
    end = span.end_time_unix_nano
    check_times(start, end)  # before deriving, like the ids: a rejected span leaves no trace
    name = span.name
    kind = KINDS.get(span.kind, "")
    status = span.status
    status_code = STATUSES.get(status.code, "")
    span_attributes = attributes(span.attributes)
    if derived is None:
        operation, is_error, span_attributes = scope.enricher.derive(
            scope.service, name, kind, status_code, span_attributes
        )
    else:
        operation, is_error = derived
        span_attributes = scope.enricher.cap_attributes(span_attributes)
    events = span.events
    links = span.links
    return Span(
        start,
        trace_id,
        span_id,
        parent_id,
        span.trace_state,
        name,
        kind,
        scope.service,
        scope.resource_attributes,
        scope.scope_name,
        scope.scope_version,
        span_attributes,
        max(0, end - start),
        status_code,
        status.message,
        _events(events) if events else (),
        _links(links) if links else (),
        operation,
        is_error,
        "otlp_proto",
    )


def attributes(key_values: Any) -> dict[str, str]:
    """``repeated KeyValue`` -> ``{key: AsString(value)}`` (last duplicate wins)."""
    out: dict[str, str] = {}
    for kv in key_values:
        value = kv.value
        text = value.string_value
        # Most attributes are strings: skip the oneof lookup for them.
        out[kv.key] = text if text else any_string(value)
    return out


def any_string(value: Any) -> str:
    """One ``AnyValue`` as pcommon ``Value.AsString()`` renders it."""
    which = value.WhichOneof("value")
    if which == "string_value" or which is None:
        return str(value.string_value)
    if which == "int_value":
        return str(value.int_value)
    if which == "bool_value":
        return "true" if value.bool_value else "false"
    if which == "double_value":
        return go_float(value.double_value)
    if which == "bytes_value":
        return go_bytes(value.bytes_value)
    if which in ("array_value", "kvlist_value"):
        return go_json(_raw(value))
    return ""


def _raw(value: Any) -> object:
    """``AnyValue`` -> plain Python tree (for the JSON rendering of nested values).

    Recursion is bounded: upb refuses messages nested deeper than 100 levels.
    """
    which = value.WhichOneof("value")
    if which == "array_value":
        return [_raw(item) for item in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _raw(kv.value) for kv in value.kvlist_value.values}
    if which is None or which == "string_value_strindex":
        return None
    return getattr(value, which)


def _events(events: Any) -> tuple[SpanEvent, ...]:
    return tuple(
        SpanEvent(check_event_time(event.time_unix_nano), event.name, attributes(event.attributes))
        for event in events
    )


def _links(links: Any) -> tuple[SpanLink, ...]:
    return tuple(
        SpanLink(
            link_id(link.trace_id, 16),
            link_id(link.span_id, 8),
            link.trace_state,
            attributes(link.attributes),
        )
        for link in links
    )
