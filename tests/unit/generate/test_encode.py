"""OTLP encodings: proto and OTLP/JSON round trips, hex ids, grouping."""

from __future__ import annotations

import json
import random
import re

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from pipeline.generate.encode import build_request, encode, parse_otlp_json
from pipeline.generate.traces import Trace, TraceFactory

HEX32, HEX16 = re.compile(r"^[0-9a-f]{32}$"), re.compile(r"^[0-9a-f]{16}$")


def _trace(seed: int = 3, error_rate: float = 0.2) -> Trace:
    return TraceFactory(random.Random(seed), base_error_rate=error_rate).build(
        1_714_521_600 * 10**9
    )


def test_groups_one_resource_per_service_and_one_scope_per_scope() -> None:
    trace = _trace()
    req = build_request([(trace, trace.spans)])
    services = [
        next(kv.value.string_value for kv in rs.resource.attributes if kv.key == "service.name")
        for rs in req.resource_spans
    ]
    assert sorted(services) == sorted({s.service for s in trace.spans})
    for rs in req.resource_spans:
        scopes = [(ss.scope.name, ss.scope.version) for ss in rs.scope_spans]
        assert len(scopes) == len(set(scopes))


def test_proto_round_trip_preserves_every_span() -> None:
    trace = _trace()
    data = encode(build_request([(trace, trace.spans)]), "otlp_proto")
    req = ExportTraceServiceRequest.FromString(data)
    # Same wire bytes as TracesData (field 1 repeated ResourceSpans).
    assert TracesData.FromString(data).SerializeToString() == data
    got = {s.span_id: s for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans}
    assert len(got) == len(trace.spans)
    for span in trace.spans:
        out = got[span.span_id]
        assert out.trace_id == trace.trace_id and out.parent_span_id == span.parent_span_id
        assert (out.start_time_unix_nano, out.end_time_unix_nano) == (span.start_ns, span.end_ns)
        assert out.name == span.name and out.kind == span.kind
        assert out.status.code == span.status_code
        assert len(out.attributes) == len(span.attributes)
        assert [e.name for e in out.events] == [e.name for e in span.events]


def test_typed_attribute_values() -> None:
    trace = _trace()
    req = build_request([(trace, trace.spans)])
    kvs = {
        kv.key: kv.value
        for rs in req.resource_spans
        for ss in rs.scope_spans
        for s in ss.spans
        for kv in s.attributes
    }
    assert kvs["http.request.method"].WhichOneof("value") == "string_value"
    assert kvs["server.port"].WhichOneof("value") == "int_value"


def test_json_uses_hex_ids_camel_case_int_enums_and_string_int64() -> None:
    trace = _trace()
    doc = json.loads(encode(build_request([(trace, trace.spans)]), "otlp_json"))
    spans = [s for rs in doc["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]
    assert len(spans) == len(trace.spans)
    for span in spans:
        assert HEX32.match(span["traceId"]) and HEX16.match(span["spanId"])
        assert "parentSpanId" not in span or HEX16.match(span["parentSpanId"])
        assert isinstance(span["kind"], int)
        assert isinstance(span["startTimeUnixNano"], str)
        for link in span.get("links", []):
            assert HEX32.match(link["traceId"]) and HEX16.match(link["spanId"])
    assert {s["traceId"] for s in spans} == {trace.trace_id_hex}


def test_json_round_trip_equals_the_proto_request() -> None:
    trace = _trace(seed=9)
    req = build_request([(trace, trace.spans)])
    assert parse_otlp_json(encode(req, "otlp_json")) == req
