"""Spans -> OTLP ``ExportTraceServiceRequest`` bytes, as the Collector's kafka exporter writes them.

One ``ResourceSpans`` per service (resource) and one ``ScopeSpans`` per
instrumentation scope inside it. ``otlp_proto`` is the protobuf wire format
(same bytes as ``TracesData``); ``otlp_json`` is the OTLP/JSON mapping:
lowerCamelCase keys, enums as integers, 64-bit integers as strings and trace
and span ids as lowercase hex (not protobuf JSON's base64).

>>> import random
>>> from pipeline.generate.traces import TraceFactory
>>> trace = TraceFactory(random.Random(1)).build(1_700_000_000 * 10**9)
>>> req = build_request([(trace, trace.spans)])
>>> sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans) == len(trace.spans)
True
>>> doc = json.loads(encode(req, "otlp_json"))
>>> doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] == trace.trace_id_hex
True
>>> parse_otlp_json(encode(req, "otlp_json")) == req
True
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span

from pipeline.generate.attrs import Attrs, AttrValue
from pipeline.generate.traces import GenSpan, Trace

ENCODINGS = ("otlp_proto", "otlp_json")
CONTENT_TYPES = {"otlp_proto": "application/x-protobuf", "otlp_json": "application/json"}
_ID_FIELDS = ("traceId", "spanId", "parentSpanId")


_KV_CACHE: dict[tuple[str, type, AttrValue], KeyValue] = {}
_KV_CACHE_MAX = 50_000


def _key_value(key: str, value: AttrValue) -> KeyValue:
    kv = KeyValue(key=key)
    # bool before int: bool is an int subclass.
    if isinstance(value, bool):
        kv.value.bool_value = value
    elif isinstance(value, int):
        kv.value.int_value = value
    elif isinstance(value, float):
        kv.value.double_value = value
    else:
        kv.value.string_value = value
    return kv


def _set_attributes(target: Any, attributes: Attrs) -> None:
    """Append ``attributes`` to a repeated ``KeyValue`` field with their OTLP value types."""
    # Most (key, value) pairs repeat across spans; building a KeyValue is the
    # encoder's main cost, so reuse them (extend copies). The type is part of
    # the cache key because True == 1.
    kvs = []
    for key, value in attributes.items():
        ckey = (key, type(value), value)
        kv = _KV_CACHE.get(ckey)
        if kv is None:
            if len(_KV_CACHE) >= _KV_CACHE_MAX:
                _KV_CACHE.clear()
            kv = _KV_CACHE[ckey] = _key_value(key, value)
        kvs.append(kv)
    target.extend(kvs)


def _fill_span(out: Span, span: GenSpan) -> None:
    out.trace_id = span.trace_id
    out.span_id = span.span_id
    out.parent_span_id = span.parent_span_id
    out.name = span.name
    out.kind = span.kind  # type: ignore[assignment]
    out.start_time_unix_nano = span.start_ns
    out.end_time_unix_nano = span.end_ns
    _set_attributes(out.attributes, span.attributes)
    if span.status_code:
        out.status.code = span.status_code  # type: ignore[assignment]
        out.status.message = span.status_message
    for event in span.events:
        ev = out.events.add(time_unix_nano=event.time_ns, name=event.name)
        _set_attributes(ev.attributes, event.attributes)
    for link in span.links:
        out.links.add(trace_id=link.trace_id, span_id=link.span_id)


def build_request(parts: Iterable[tuple[Trace, Sequence[GenSpan]]]) -> ExportTraceServiceRequest:
    """One request holding ``parts`` (trace, some of its spans), grouped by service and scope."""
    req = ExportTraceServiceRequest()
    # A resource is a service instance: traces batched together share it.
    by_resource: dict[tuple[str, str], ResourceSpans] = {}
    by_scope: dict[tuple[str, str, tuple[str, str]], Any] = {}
    for trace, spans in parts:
        for span in spans:
            rkey = (span.service, str(trace.resources[span.service]["service.instance.id"]))
            rs = by_resource.get(rkey)
            if rs is None:
                rs = by_resource[rkey] = req.resource_spans.add()
                _set_attributes(rs.resource.attributes, trace.resources[span.service])
            skey = (*rkey, span.scope)
            ss = by_scope.get(skey)
            if ss is None:
                ss = by_scope[skey] = rs.scope_spans.add()
                ss.scope.name, ss.scope.version = span.scope
            _fill_span(ss.spans.add(), span)
    return req


def _hex_ids(span: dict[str, Any], convert: Callable[[str], str]) -> None:
    for name in _ID_FIELDS:
        if name in span:
            span[name] = convert(span[name])
    for link in span.get("links", ()):
        for name in ("traceId", "spanId"):
            if name in link:
                link[name] = convert(link[name])


def _walk_spans(doc: dict[str, Any], convert: Callable[[str], str]) -> None:
    for rs in doc.get("resourceSpans", ()):
        for ss in rs.get("scopeSpans", ()):
            for span in ss.get("spans", ()):
                _hex_ids(span, convert)


def _b64_to_hex(value: str) -> str:
    return base64.b64decode(value).hex()


def _hex_to_b64(value: str) -> str:
    return base64.b64encode(bytes.fromhex(value)).decode("ascii")


def encode(req: ExportTraceServiceRequest, encoding: str) -> bytes:
    """Serialize ``req`` as ``otlp_proto`` or ``otlp_json``."""
    if encoding == "otlp_proto":
        return bytes(req.SerializeToString())
    doc = json_format.MessageToDict(req, use_integers_for_enums=True)
    _walk_spans(doc, _b64_to_hex)
    return json.dumps(doc, separators=(",", ":")).encode()


def parse_otlp_json(data: bytes) -> ExportTraceServiceRequest:
    """Parse OTLP/JSON (hex ids) back into a request (for tests and round trips)."""
    doc = json.loads(data)
    _walk_spans(doc, _hex_to_b64)
    req = ExportTraceServiceRequest()
    json_format.ParseDict(doc, req)
    return req
