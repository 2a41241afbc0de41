"""What the graph reads of span heads: kind and, for client spans, the peer attributes.

A head carries no span kind or attributes (the stages do not need them), so they are
read here from the span's protobuf bytes (one upb parse per span, attributes only of
client and producer spans), or from the span a head already carries (JSON records,
tests). A span whose bytes do not parse (they passed decode, so this is not expected)
reads as ``Unspecified``: it is no side of an edge, but still has self time.
"""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf.message import DecodeError as ProtobufDecodeError
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan

from pipeline.graph.derive import CALLER_KINDS, GRAPH_ATTRIBUTES, GraphSpan, peer_of
from pipeline.model import SpanHead
from pipeline.otlp.ids import KINDS

_WANTED = frozenset(GRAPH_ATTRIBUTES)


def graph_spans(heads: Iterable[SpanHead]) -> list[GraphSpan]:
    """One :class:`GraphSpan` per head."""
    return [graph_span(head) for head in heads]


def graph_span(head: SpanHead) -> GraphSpan:
    """What the graph reads of one head."""
    span = head.span
    if span is not None:
        kind = span.span_kind
        peer, database = peer_of(span.span_attributes) if kind in CALLER_KINDS else ("", False)
    else:
        kind, peer, database = _from_bytes(head.value, head.offset, head.length)
    return GraphSpan(
        head.span_id,
        head.parent_span_id,
        head.service_name,
        head.operation,
        kind,
        head.timestamp_ns,
        head.duration_ns,
        bool(head.is_error),
        peer,
        database,
    )


def _from_bytes(value: bytes, offset: int, length: int) -> tuple[str, str, bool]:
    try:
        proto = ProtoSpan.FromString(value[offset : offset + length])
    except ProtobufDecodeError:
        return "Unspecified", "", False
    kind = KINDS.get(proto.kind, "Unspecified")
    if kind not in CALLER_KINDS:
        return kind, "", False
    attrs = {
        kv.key: kv.value.string_value
        for kv in proto.attributes
        if kv.key in _WANTED and kv.value.WhichOneof("value") == "string_value"
    }
    peer, database = peer_of(attrs)
    return kind, peer, database
