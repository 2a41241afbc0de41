"""Fuzz decode_message + enrich: whatever the bytes, only DecodeError comes out.

Example counts are bounded and deadlines off so the default suite stays fast;
raise ``FUZZ_EXAMPLES`` for a longer run.
"""

from __future__ import annotations

import base64
import json
import math
import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.enrich import EnrichConfig, Enricher
from pipeline.errors import DecodeError
from pipeline.otlp import REASONS, Decoded, decode_message
from pipeline.otlp.heads import to_span
from pipeline.otlp.samples import (
    SPAN_ID,
    TRACE_ID,
    deep_json_request,
    deep_proto_request,
    proto_request,
    proto_span,
    sample_message,
)
from tests.unit.otlp.equivalence import assert_equivalent

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FIXTURE_JSON = (Path(__file__).parents[1] / "unit/otlp/fixtures/otlp_trace.json").read_bytes()
PROTO_SEEDS = [sample_message(3, 5), proto_request([proto_span(attributes={"a": [1, {"b": 2.5}]})])]
JSON = [("content-type", b"application/json")]
PROTO = [("content-type", b"application/x-protobuf")]
HEADER_CHOICES = st.sampled_from([None, JSON, PROTO])


def outcome(value: bytes, headers: list[tuple[str, bytes]] | None = None) -> Decoded | str:
    """Decode; a DecodeError must carry a documented reason. Anything else escapes."""
    enricher = Enricher(EnrichConfig(max_operations_per_service=5, max_span_attributes=4))
    try:
        return decode_message(value, headers, max_bytes=1 << 20, enricher=enricher)
    except DecodeError as exc:
        assert exc.reason in REASONS, exc.reason
        return exc.reason


def _as_bytes(seed: object) -> bytes:
    return seed if isinstance(seed, bytes) else seed.SerializeToString()  # type: ignore[attr-defined]


@FUZZ
@given(st.binary(max_size=512), HEADER_CHOICES)
def test_random_bytes(value: bytes, headers: list[tuple[str, bytes]] | None) -> None:
    result = outcome(value, headers)
    assert isinstance(result, (Decoded, str))


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 6))):
        position = draw(st.integers(0, max(0, len(data) - 1)))
        action = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        if action == "flip" and data:
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif action == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=8))
        elif action == "delete" and data:
            del data[position]
        elif action == "truncate":
            del data[position:]
    return bytes(data)


@FUZZ
@given(mutated([_as_bytes(seed) for seed in PROTO_SEEDS]))
def test_mutated_proto(value: bytes) -> None:
    result = outcome(value)
    if isinstance(result, Decoded):
        assert all(len(span.trace_id) == 32 and len(span.span_id) == 16 for span in result.spans)


@FUZZ
@given(st.lists(mutated([_as_bytes(s) for s in PROTO_SEEDS]).filter(bool), min_size=1, max_size=4))
def test_mutated_proto_decodes_as_the_python_decoder_did(values: list[bytes]) -> None:
    """The native scan and its Python paths agree with the previous decoder on anything."""
    assert_equivalent(values, EnrichConfig(max_operations_per_service=5, max_span_attributes=4))


# Values the enricher's rules branch on: empty, methods, routes, paths with ids, URLs
# with and without a path, status codes (also non-ASCII digits), rpc/db names.
ENRICH_TEXT = st.sampled_from(
    ["", "GET", "POST", "/users/42", "/users/:id", "/a/b?x=1", "http://h", "https://h:1/c/77",
     "500", "503", "404", "\u0665\u0660\u0663", "grpc", "shop.Cart", "Add", "pg", "SELECT"]
)  # fmt: skip
ENRICH_VALUE = ENRICH_TEXT | st.integers(-1, 600) | st.booleans() | st.none() | st.floats(0, 1)
ENRICH_KEYS = st.sampled_from(
    ["http.request.method", "http.method", "http.route", "url.path", "http.target", "url.full",
     "http.url", "rpc.system", "rpc.service", "rpc.method", "db.system.name", "db.system",
     "db.operation.name", "db.operation", "http.response.status_code", "http.status_code",
     "other"]
)  # fmt: skip
enrich_spans = st.builds(
    lambda name, kind, code, attributes: proto_span(
        name=name, kind=kind, status={"code": code}, attributes=attributes
    ),
    st.sampled_from(["GET /users/42", "", "process job 7", "SELECT orders", "q"]),
    st.integers(0, 6),
    st.integers(0, 3),
    st.dictionaries(ENRICH_KEYS, ENRICH_VALUE, max_size=6),
)


@FUZZ
@given(st.lists(st.lists(enrich_spans, min_size=1, max_size=4), min_size=1, max_size=6))
def test_enrichment_memo_agrees_with_the_python_decoder(messages: list[list[object]]) -> None:
    """Operations and error flags, memoised by the inputs they read, are never stale."""
    values = [proto_request(spans).SerializeToString() for spans in messages]  # type: ignore[arg-type]
    assert_equivalent(values, EnrichConfig(max_operations_per_service=3))


@FUZZ
@given(mutated([FIXTURE_JSON]), HEADER_CHOICES)
def test_mutated_json(value: bytes, headers: list[tuple[str, bytes]] | None) -> None:
    outcome(value, headers)


json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_leaves,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
OTLP_KEYS = [
    "resourceSpans", "scopeSpans", "spans", "resource", "scope", "attributes", "key", "value",
    "traceId", "spanId", "parentSpanId", "kind", "status", "code", "events", "links",
    "stringValue", "intValue", "doubleValue", "boolValue", "bytesValue", "arrayValue",
    "kvlistValue", "values", "startTimeUnixNano", "endTimeUnixNano", "timeUnixNano", "name",
]  # fmt: skip
otlp_like = st.recursive(
    json_leaves | st.sampled_from([TRACE_ID.hex(), SPAN_ID.hex(), "AP8=", "NaN", "1700000000"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(OTLP_KEYS), inner, max_size=5)
    ),
    max_leaves=30,
)


@FUZZ
@given(json_values)
def test_random_json_documents(document: object) -> None:
    outcome(json.dumps(document).encode(), JSON)


@FUZZ
@given(st.dictionaries(st.sampled_from(OTLP_KEYS), otlp_like, max_size=3))
def test_otlp_shaped_json(document: dict[str, object]) -> None:
    outcome(json.dumps(document).encode())


@settings(max_examples=12, deadline=None)
@given(st.integers(min_value=0, max_value=6000))
def test_deep_nesting_in_both_encodings(depth: int) -> None:
    for value in (deep_proto_request(depth), deep_json_request(depth)):
        result = outcome(value)
        assert isinstance(result, Decoded) or result == "too_deep"
        if depth > 100:
            assert result == "too_deep"


attribute_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats()
    | st.text(max_size=16)
    | st.binary(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def _json_value(value: object) -> dict[str, object]:
    if value is None:
        return {}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        if math.isnan(value):
            return {"doubleValue": "NaN"}
        if math.isinf(value):
            return {"doubleValue": "Infinity" if value > 0 else "-Infinity"}
        return {"doubleValue": value}
    if isinstance(value, bytes):
        return {"bytesValue": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {
            "kvlistValue": {
                "values": [{"key": k, "value": _json_value(v)} for k, v in value.items()]
            }
        }
    assert isinstance(value, list)
    return {"arrayValue": {"values": [_json_value(v) for v in value]}}


@FUZZ
@given(st.dictionaries(st.text(max_size=10), attribute_values, max_size=6))
def test_proto_and_json_agree(attributes: dict[str, object]) -> None:
    proto = outcome(proto_request([proto_span(attributes=attributes)]).SerializeToString())
    span = {
        "traceId": TRACE_ID.hex(),
        "spanId": SPAN_ID.hex(),
        "name": "GET /",
        "kind": 2,
        "startTimeUnixNano": str(proto_span().start_time_unix_nano),
        "endTimeUnixNano": str(proto_span().end_time_unix_nano),
        "attributes": [{"key": k, "value": _json_value(v)} for k, v in attributes.items()],
    }
    scope = {"name": "io.example.lib", "version": "1.2.3"}
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "checkout"}}]}
    document = {
        "resourceSpans": [{"resource": resource, "scopeSpans": [{"scope": scope, "spans": [span]}]}]
    }
    from_json = outcome(json.dumps(document).encode())
    assert isinstance(proto, Decoded) and isinstance(from_json, Decoded)
    proto_attributes = [to_span(s).span_attributes for s in proto.spans]
    assert proto_attributes == [to_span(s).span_attributes for s in from_json.spans]
