"""Span heads (native scan + lazy full spans) against the pre-scan decoder, span for span.

The oracle is ``reference_proto.py``, the Python decoder as it was. For every
input the two must agree on the outcome: the same DecodeError (reason and
detail), or the same full spans (every ``otel_traces`` column, byte for byte),
the same row-size estimates, the same facts sampling and windows read, the same
enricher state afterwards, and the same decisions and window partials.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from pipeline import native
from pipeline.clock import ManualClock
from pipeline.enrich import EnrichConfig, Enricher
from pipeline.generate.messages import Framing, to_messages
from pipeline.generate.schedule import StreamSpec, generate_traces
from pipeline.otlp import decode_message
from pipeline.otlp.heads import head_of
from pipeline.otlp.samples import (
    SPAN_ID,
    TRACE_ID,
    deep_proto_request,
    key_values,
    proto_request,
    proto_span,
    sample_message,
)
from pipeline.sampling import ErrorPolicy, LatencyPolicy, ProbabilisticPolicy, TraceBuffer
from pipeline.windows.partial import PartialAggregator
from tests.unit.otlp.equivalence import assert_equivalent, head_outcome
from tests.unit.otlp.reference_proto import spans_from_proto as reference_spans


def request(*spans: ProtoSpan, service: object = "checkout") -> bytes:
    resource = {} if service is None else {"service.name": service}
    return proto_request(list(spans), resource=resource).SerializeToString()


def generated(encoding_seed: int, count: int, batch_traces: int = 0) -> list[bytes]:
    spec = StreamSpec(seed=encoding_seed, start_ns=1_700_000_000 * 10**9, rate=50.0, count=count)
    framing = Framing("otlp_proto", batch_traces=batch_traces, seed=encoding_seed)
    return [m.value for m in to_messages(generate_traces(spec), framing)]


@pytest.mark.parametrize(("seed", "batch"), [(1, 0), (2, 0), (3, 7)])
def test_generated_traces_decode_identically(seed: int, batch: int) -> None:
    assert_equivalent(generated(seed, 300, batch))


@pytest.mark.skipif(
    not native.ENABLED, reason="the native scan is off (SPANSTREAM_NATIVE=0 or not built)"
)
def test_generated_spans_take_the_native_path_and_build_lazily() -> None:
    heads = [h for v in generated(6, 50) for h in head_outcome(v, Enricher())[1]]
    assert len(heads) > 200
    assert all(h.span is None and h.length > 0 for h in heads)  # no full span built yet


def test_non_canonical_spans_are_built_at_once_by_the_python_path() -> None:
    odd = _wrap_span(proto_span().SerializeToString() + _field(5, 0, b"\x07"))
    (head,) = head_outcome(odd, Enricher())[1]
    assert head.span is not None and head.span.span_name == "GET /"  # the odd field is ignored


def test_enricher_caps_and_bounds_identically() -> None:
    config = EnrichConfig(
        max_span_attributes=4, max_attribute_value_length=6, max_operations_per_service=3
    )
    assert_equivalent(generated(4, 120), config)


def _kv(key: str, **value: Any) -> KeyValue:
    kv = KeyValue(key=key)
    for field, v in value.items():
        setattr(kv.value, field, v)
    return kv


EDGE_SPANS: dict[str, Callable[[], ProtoSpan]] = {
    "empty names": lambda: proto_span(name="", attributes={"": "", "x": ""}),
    "non-string attributes": lambda: proto_span(
        attributes={"i": -(2**63), "b": False, "t": True, "d": 0.1, "n": None, "y": b"\x00\xff"}
    ),
    "nested attributes": lambda: proto_span(attributes={"a": [1, {"b": 2.5, "c": [b"x"]}]}),
    "NaN inside an array": lambda: proto_span(attributes={"a": [float("nan")], "f": 1e21}),
    "relevant keys as ints": lambda: proto_span(
        kind=ProtoSpan.SPAN_KIND_SERVER,
        attributes={"http.method": "GET", "url.path": "/a/1", "http.status_code": 503},
    ),
    "rpc and db": lambda: proto_span(
        name="q",
        attributes={"rpc.system": "grpc", "rpc.service": "S", "rpc.method": 7, "db.system": "pg"},
    ),
    "non-ASCII": lambda: proto_span(name="ünï/42", attributes={"ключ": "значение ✓"}),
    "status error with message": lambda: proto_span(
        status=Status(code=Status.STATUS_CODE_ERROR, message="boom ✗")
    ),
    "kind and status out of range": lambda: proto_span(kind=9, status=Status(code=7)),
    "negative kind": lambda: proto_span(kind=-1),
    "ends before it starts": lambda: proto_span(start_time_unix_nano=10, end_time_unix_nano=5),
    "max timestamps": lambda: proto_span(start_time_unix_nano=0, end_time_unix_nano=2**64 - 1),
    "child with zero parent": lambda: proto_span(parent_span_id=bytes(8), trace_state="a=b"),
}


@pytest.mark.parametrize("name", sorted(EDGE_SPANS))
def test_edge_cases_decode_identically(name: str) -> None:
    assert_equivalent([request(EDGE_SPANS[name]())])


def test_duplicate_keys_keep_first_position_and_last_value() -> None:
    span = proto_span()
    span.attributes.extend([_kv("k", string_value="1"), _kv("j", int_value=2)])
    span.attributes.extend([_kv("k", string_value="longer"), _kv("http.route", string_value="/")])
    span.attributes.extend([_kv("http.route", string_value="/r"), _kv("http.method", bool_value=1)])
    assert_equivalent([request(span)])


def test_events_and_links() -> None:
    span = proto_span()
    event = span.events.add(time_unix_nano=5, name="exception ✓")
    event.attributes.extend(key_values({"a": 1, "b": 2.5, "c": "x"}))
    event.attributes.extend(key_values({"a": "dup"}))
    span.events.add(name="")
    link = span.links.add(trace_id=TRACE_ID, span_id=SPAN_ID, trace_state="k=v")
    link.attributes.extend(key_values({"l": True}))
    span.links.add()  # empty ids are allowed
    span.links.add(trace_id=bytes(16), span_id=bytes(8))  # all zero renders as ""
    assert_equivalent([request(span)])


@pytest.mark.parametrize("service", [None, "", 42, "ünï"])
def test_service_name_missing_or_unusual(service: object) -> None:
    assert_equivalent([request(proto_span(), proto_span(span_id=b"\x02" * 8), service=service)])


@pytest.mark.parametrize(
    "fields",
    [
        {"trace_id": b"\x01" * 15},
        {"trace_id": bytes(16)},
        {"span_id": b""},
        {"span_id": bytes(8)},
        {"parent_span_id": b"\x01" * 3},
    ],
)
def test_bad_ids_fail_identically(fields: dict[str, bytes]) -> None:
    assert_equivalent([request(proto_span(), proto_span(**fields))])


@pytest.mark.parametrize("which", ["trace_id", "span_id"])
def test_bad_link_ids_fail_identically_after_deriving(which: str) -> None:
    span = proto_span(attributes={"http.method": "GET", "http.route": "/new"})
    link = span.links.add(trace_id=TRACE_ID, span_id=SPAN_ID)
    setattr(link, which, b"\x01\x02")
    assert_equivalent([request(span)], EnrichConfig(max_operations_per_service=1))


LAST_NS = (1 << 63) - 1  # 2262-04-11T23:47:16.854775807Z, the last DateTime64(9) instant


@pytest.mark.parametrize(
    ("start", "end", "event", "reason"),
    [
        (1 << 63, (1 << 63) + 5, None, "bad_span"),  # issue #12: stalled every insert
        ((1 << 64) - 1, (1 << 64) - 1, None, "bad_span"),
        (0, 5, None, "bad_span"),  # start unset
        (5, 1 << 63, None, "bad_span"),
        (5, 6, 1 << 63, "bad_span"),
        (LAST_NS, LAST_NS, 0, None),  # the last instant, an event at 0: stored
        (10, 3, None, None),  # end before start: Duration 0
        (10, 0, None, None),  # end unset: Duration 0
    ],
)
def test_times_the_store_cannot_hold_fail_identically(
    start: int, end: int, event: int | None, reason: str | None
) -> None:
    span = proto_span(start_time_unix_nano=start, end_time_unix_nano=end, status={"code": 2})
    if event is not None:
        span.events.add(time_unix_nano=event, name="e")
    value = request(proto_span(span_id=b"\x02" * 8), span)
    assert_equivalent([value])
    outcome = head_outcome(value, Enricher())[0]
    if reason is None:
        assert isinstance(outcome, list) and outcome[1].timestamp_ns == start
        assert outcome[1].duration_ns == max(0, end - start)
    else:
        assert isinstance(outcome, tuple) and outcome[0] == reason


def test_invalid_utf8_in_a_span_that_would_be_dropped_is_still_rejected() -> None:
    value = request(proto_span(name="ok"))
    broken = value.replace(b"\x02ok", b"\x02\xff\xfe")
    assert broken != value
    assert_equivalent([broken])
    assert head_outcome(broken, Enricher())[0][0] == "bad_utf8"  # type: ignore[index]


def test_too_deep_and_empty_requests_fail_identically() -> None:
    assert_equivalent([deep_proto_request(200), proto_request([]).SerializeToString()])


def test_over_cap_attributes_and_values() -> None:
    wide = proto_span(attributes={f"k{i}": "v" for i in range(300)})
    long = proto_span(span_id=b"\x03" * 8, attributes={"k": "x" * 5000, "http.route": "y" * 5000})
    assert_equivalent([request(wide, long)])


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    return bytes([*out, n])


def _field(number: int, wire_type: int, payload: bytes) -> bytes:
    """One field on the wire, written by hand (the protobuf API only writes canonical ones)."""
    tag = _varint(number << 3 | wire_type)
    return tag + (_varint(len(payload)) + payload if wire_type == 2 else payload)


def _wrap_span(span_bytes: bytes) -> bytes:
    scope_spans = _field(2, 2, span_bytes)
    resource_spans = _field(2, 2, scope_spans)
    return _field(1, 2, resource_spans)


@pytest.mark.parametrize(
    "extra",
    [
        _field(5, 0, b"\x07"),  # name with a varint wire type: unknown to upb
        _field(15, 2, b"\x18\x02") + _field(15, 2, b"\x12\x01x"),  # status twice: merged
        _field(9, 2, _field(1, 2, b"k") + _field(2, 2, b"\x18\x05") + _field(2, 2, b"\x0a\x01s")),
        _field(9, 2, _field(1, 2, b"k") + _field(2, 2, b"\x0a\x01a\x18\x05")),  # oneof: last wins
        _field(9, 2, _field(1, 0, b"\x01")),  # key as a varint
        _field(99, 5, b"\x00\x00\x00\x00") + _field(98, 1, bytes(8)),  # unknown fields
        b"\x1b\x08\x01\x1c",  # an unknown group (field 3 as a group)
    ],
)
def test_non_canonical_encodings_decode_identically(extra: bytes) -> None:
    base = proto_span().SerializeToString()
    assert_equivalent([_wrap_span(base + extra), _wrap_span(extra + base)])


def test_unusual_request_layout_decodes_identically() -> None:
    group = b"\x2b\x08\x01\x2c"  # field 5 as a group at the top level
    value = group + request(proto_span()) + group
    assert_equivalent([value, sample_message(3, 2) + group])


def test_kept_spans_and_partials_match_the_reference() -> None:
    """Same decisions and window partials whichever decoder fed the stages."""
    values = generated(5, 400)
    results = []
    for decode in (_decode_with_heads, _decode_with_reference):
        clock = ManualClock()
        policies = [ErrorPolicy(), LatencyPolicy(min_samples=20), ProbabilisticPolicy(0.1)]
        buffer = TraceBuffer(5.0, clock, policies)
        aggregator = PartialAggregator(60, 0)
        enricher = Enricher()
        for offset, value in enumerate(values):
            spans = decode(value, enricher)
            for span in spans:
                aggregator.add(span, offset)
            buffer.add(spans, (0, offset))
            clock.advance(0.05)
        decided = buffer.flush_all()
        kept = [s for t in decided if t.kept for s in t.spans]
        results.append(
            (
                [(t.trace_id, t.decision, t.policy, t.cause) for t in decided],
                kept,
                [p.to_json() for p in aggregator.cut()],
                buffer.stats,
            )
        )
    assert results[0] == results[1]
    assert len(results[0][1]) > 100


def _decode_with_heads(value: bytes, enricher: Enricher) -> list[Any]:
    return list(decode_message(value, None, max_bytes=1 << 24, enricher=enricher).spans)


def _decode_with_reference(value: bytes, enricher: Enricher) -> list[Any]:
    spans = reference_spans(value, enricher)
    return [head_of(s, service=enricher.series_service(s.service_name)) for s in spans]


def test_the_services_bound_holds_identically_on_both_paths() -> None:
    """Seven generated services, three admitted: same series, partials and enricher state."""
    config = EnrichConfig(max_services=3, max_operations_per_service=4)
    values = generated(6, 300)
    # A non-canonical span (the Python path inside a native scan) of a new service ("").
    values.insert(150, _wrap_span(proto_span().SerializeToString() + _field(5, 0, b"\x07")))
    assert_equivalent(values, config)
    partials = []
    for decode in (_decode_with_heads, _reference_series):
        enricher, aggregator = Enricher(config), PartialAggregator(60, 0)
        for offset, value in enumerate(values):
            aggregator.add_record(decode(value, enricher), offset)
        partials.append([p.to_json() for p in aggregator.cut()])
    assert partials[0] == partials[1]
    services = {json.loads(p)["service"] for p in partials[0]}
    assert len(services) == 4 and "__overflow__" in services


def _reference_series(value: bytes, enricher: Enricher) -> list[Any]:
    """The reference decoder's spans keyed, as heads are, by their series service."""
    spans = reference_spans(value, enricher)
    return [head_of(s, service=enricher.series_service(s.service_name)) for s in spans]
