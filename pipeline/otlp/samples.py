"""Builders for OTLP trace messages, for tests, fuzzing and the decode benchmark.

``proto_request`` builds an ``ExportTraceServiceRequest`` from plain Python
values; ``deep_proto_request``/``deep_json_request`` write pathologically
nested AnyValues directly as bytes, deeper than the protobuf Python API can
build or parse.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan

TRACE_ID = bytes(range(1, 17))
SPAN_ID = bytes(range(1, 9))
START_NS = 1_700_000_000_000_000_000


def any_value(value: object) -> AnyValue:
    """A Python value as an ``AnyValue`` (``None`` -> empty value)."""
    if value is None:
        return AnyValue()
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, Mapping):
        out = AnyValue()
        out.kvlist_value.values.extend(key_values(value))
        return out
    if isinstance(value, Sequence):
        out = AnyValue()
        out.array_value.values.extend(any_value(item) for item in value)
        return out
    raise TypeError(f"no AnyValue for {type(value).__name__}")


def key_values(attributes: Mapping[str, object]) -> list[KeyValue]:
    """A mapping as a list of ``KeyValue``."""
    return [KeyValue(key=key, value=any_value(value)) for key, value in attributes.items()]


def proto_span(**fields: Any) -> ProtoSpan:
    """A valid span with overridable fields; ``attributes`` may be a plain dict."""
    values: dict[str, Any] = {
        "trace_id": TRACE_ID,
        "span_id": SPAN_ID,
        "name": "GET /",
        "kind": ProtoSpan.SPAN_KIND_SERVER,
        "start_time_unix_nano": START_NS,
        "end_time_unix_nano": START_NS + 5_000_000,
    }
    values.update(fields)
    if isinstance(values.get("attributes"), Mapping):
        values["attributes"] = key_values(values["attributes"])
    return ProtoSpan(**values)


def proto_request(
    spans: Sequence[ProtoSpan],
    resource: Mapping[str, object] | None = None,
    scope: tuple[str, str] = ("io.example.lib", "1.2.3"),
) -> ExportTraceServiceRequest:
    """One resource (default ``service.name=checkout``) with one scope holding ``spans``."""
    resource_spans = ResourceSpans()
    attributes = {"service.name": "checkout"} if resource is None else resource
    resource_spans.resource.attributes.extend(key_values(attributes))
    scope_spans = ScopeSpans(spans=list(spans))
    scope_spans.scope.name, scope_spans.scope.version = scope
    resource_spans.scope_spans.append(scope_spans)
    return ExportTraceServiceRequest(resource_spans=[resource_spans])


def sample_message(spans: int = 20, attributes: int = 10) -> bytes:
    """One trace: ``spans`` HTTP server spans with ``attributes`` attributes each."""
    out = []
    for index in range(spans):
        attrs: dict[str, object] = {
            "http.request.method": "GET",
            "url.path": f"/users/{index}/orders/9",
            "http.response.status_code": 200,
        }
        attrs.update({f"attr.{n}": f"value-{n}" for n in range(max(0, attributes - 3))})
        out.append(
            proto_span(
                span_id=(index + 1).to_bytes(8, "big"),
                parent_span_id=b"" if index == 0 else (1).to_bytes(8, "big"),
                name=f"GET /users/{index}/orders/9",
                start_time_unix_nano=START_NS + index,
                end_time_unix_nano=START_NS + 5_000_000 + index,
                attributes=attrs,
            )
        )
    return proto_request(out).SerializeToString()


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        low = number & 0x7F
        number >>= 7
        if number:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def deep_proto_request(depth: int) -> bytes:
    """Wire bytes of a request whose one span attribute nests ``depth`` arrays."""
    value = _field(1, b"leaf")  # AnyValue.string_value
    for _ in range(depth):
        value = _field(5, _field(1, value))  # AnyValue.array_value.values[0]
    key_value = _field(1, b"deep") + _field(2, value)
    start = b"\x39" + START_NS.to_bytes(8, "little")  # field 7, fixed64
    span = _field(1, TRACE_ID) + _field(2, SPAN_ID) + _field(5, b"deep") + start
    span += _field(9, key_value)
    return _field(1, _field(2, _field(2, span)))


def deep_json_request(depth: int) -> bytes:
    """An OTLP/JSON request whose one span attribute nests ``depth`` arrays."""
    value = '{"stringValue":"leaf"}'
    prefix = '{"arrayValue":{"values":[' * depth
    suffix = "]}}" * depth
    span = {
        "traceId": TRACE_ID.hex(),
        "spanId": SPAN_ID.hex(),
        "name": "deep",
        "startTimeUnixNano": str(START_NS),
        "attributes": [{"key": "deep", "value": "__VALUE__"}],
    }
    text = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]})
    return text.replace('"__VALUE__"', prefix + value + suffix).encode()
