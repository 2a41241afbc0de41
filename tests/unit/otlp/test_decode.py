"""decode_message: reason codes, column mapping for both encodings, encoding choice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from pipeline.enrich import EnrichConfig, Enricher
from pipeline.errors import DecodeError
from pipeline.model import Span, SpanEvent, SpanLink
from pipeline.otlp import PROTOBUF_BACKEND, REASONS, decode_message
from pipeline.otlp.decode import choose_encoding
from pipeline.otlp.heads import to_span
from pipeline.otlp.samples import (
    SPAN_ID,
    TRACE_ID,
    deep_json_request,
    deep_proto_request,
    key_values,
    proto_request,
    proto_span,
)

FIXTURE = Path(__file__).parent / "fixtures" / "otlp_trace.json"
MAX = 1 << 20


def decode(value: bytes | None, headers: list[tuple[str, bytes]] | None = None) -> list[Span]:
    spans = decode_message(value, headers, max_bytes=MAX, enricher=Enricher()).spans
    return [to_span(head) for head in spans]


def reason_of(value: bytes | None, max_bytes: int = MAX) -> str:
    with pytest.raises(DecodeError) as caught:
        decode_message(value, None, max_bytes=max_bytes, enricher=Enricher())
    return caught.value.reason


def proto_bytes(**span_fields: object) -> bytes:
    return proto_request([proto_span(**span_fields)]).SerializeToString()


def fixture_proto() -> bytes:
    """The same trace as the JSON fixture, as otlp_proto."""
    event = ProtoSpan.Event(
        time_unix_nano=1_700_000_000_100_000_000,
        name="retry",
        attributes=key_values({"attempt": 2}),
    )
    link = ProtoSpan.Link(
        trace_id=bytes.fromhex("a1a2a3a4a5a6a7a8a9aaabacadaeafb0"),
        span_id=bytes.fromhex("b1b2b3b4b5b6b7b8"),
        trace_state="k=v",
        attributes=key_values({"link.kind": "follows"}),
    )
    span = proto_span(
        trace_id=bytes.fromhex("0102030405060708090a0b0c0d0e0f10"),
        span_id=bytes.fromhex("1112131415161718"),
        parent_span_id=bytes.fromhex("2122232425262728"),
        trace_state="vendor=1",
        name="GET /users/42",
        start_time_unix_nano=1_700_000_000_000_000_000,
        end_time_unix_nano=1_700_000_000_250_000_000,
        attributes={
            "http.request.method": "GET",
            "http.route": "/users/{id}",
            "http.response.status_code": 503,
            "ratio": 0.25,
            "blob": b"\x00\xff",
            "tags": ["a", 1],
            "ctx": {"z": True, "a": 1.5},
            "empty": None,
        },
        events=[event],
        links=[link],
        status=Status(code=Status.STATUS_CODE_ERROR, message="upstream unavailable"),
    )
    resource = {"service.name": "checkout", "host.cores": 8, "deployment.canary": False}
    return proto_request([span], resource=resource).SerializeToString()


def expected_fixture_span(encoding: str) -> Span:
    return Span(
        timestamp_ns=1_700_000_000_000_000_000,
        trace_id="0102030405060708090a0b0c0d0e0f10",
        span_id="1112131415161718",
        parent_span_id="2122232425262728",
        trace_state="vendor=1",
        span_name="GET /users/42",
        span_kind="Server",
        service_name="checkout",
        resource_attributes={
            "service.name": "checkout",
            "host.cores": "8",
            "deployment.canary": "false",
        },
        scope_name="io.example.lib",
        scope_version="1.2.3",
        span_attributes={
            "http.request.method": "GET",
            "http.route": "/users/{id}",
            "http.response.status_code": "503",
            "ratio": "0.25",
            "blob": "AP8=",
            "tags": '["a",1]',
            "ctx": '{"a":1.5,"z":true}',
            "empty": "",
        },
        duration_ns=250_000_000,
        status_code="Error",
        status_message="upstream unavailable",
        events=(SpanEvent(1_700_000_000_100_000_000, "retry", {"attempt": "2"}),),
        links=(
            SpanLink(
                "a1a2a3a4a5a6a7a8a9aaabacadaeafb0",
                "b1b2b3b4b5b6b7b8",
                "k=v",
                {"link.kind": "follows"},
            ),
        ),
        operation="GET /users/{id}",
        is_error=True,
        encoding=encoding,
    )


def test_protobuf_backend_is_upb() -> None:
    assert PROTOBUF_BACKEND == "upb"


@pytest.mark.parametrize(
    ("encoding", "payload"),
    [("otlp_proto", fixture_proto), ("otlp_json", FIXTURE.read_bytes)],
)
def test_column_mapping_matches_exporter(encoding: str, payload: object) -> None:
    value = payload()  # type: ignore[operator]
    decoded = decode_message(value, None, max_bytes=MAX, enricher=Enricher())
    assert decoded.encoding == encoding
    assert decoded.bytes == len(value)
    assert [to_span(h) for h in decoded.spans] == [expected_fixture_span(encoding)]


def test_snake_case_json_keys_decode_like_camel_case() -> None:
    text = FIXTURE.read_text()
    for camel, snake in [
        ("resourceSpans", "resource_spans"),
        ("scopeSpans", "scope_spans"),
        ("traceId", "trace_id"),
        ("spanId", "span_id"),
        ("parentSpanId", "parent_span_id"),
        ("startTimeUnixNano", "start_time_unix_nano"),
        ("stringValue", "string_value"),
        ("kvlistValue", "kvlist_value"),
    ]:
        text = text.replace(f'"{camel}"', f'"{snake}"')
    assert decode(text.encode()) == [expected_fixture_span("otlp_json")]


def test_json_enum_names_and_numbers_as_strings_accepted() -> None:
    doc = json.loads(FIXTURE.read_text())
    span = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    span["kind"] = "SPAN_KIND_CLIENT"
    span["status"]["code"] = "STATUS_CODE_OK"
    span["endTimeUnixNano"] = "1700000000250000000"
    (decoded,) = decode(json.dumps(doc).encode())
    assert (decoded.span_kind, decoded.status_code, decoded.duration_ns) == (
        "Client",
        "Ok",
        250_000_000,
    )


@pytest.mark.parametrize(
    ("fields", "column", "expected"),
    [
        ({"parent_span_id": b""}, "parent_span_id", ""),
        ({"parent_span_id": bytes(8)}, "parent_span_id", ""),
        ({"kind": 0}, "span_kind", "Unspecified"),
        ({"kind": 1}, "span_kind", "Internal"),
        ({"kind": 3}, "span_kind", "Client"),
        ({"kind": 4}, "span_kind", "Producer"),
        ({"kind": 5}, "span_kind", "Consumer"),
        ({"kind": 9}, "span_kind", ""),
        ({"status": Status(code=Status.STATUS_CODE_OK)}, "status_code", "Ok"),
        ({}, "status_code", "Unset"),
        ({"end_time_unix_nano": 1}, "duration_ns", 0),
        ({"end_time_unix_nano": 0}, "duration_ns", 0),
    ],
)
def test_proto_column_cases(fields: dict[str, object], column: str, expected: object) -> None:
    (span,) = decode(proto_bytes(**fields))
    assert getattr(span, column) == expected


@pytest.mark.parametrize(
    ("resource", "service"),
    [({}, ""), ({"service.name": 7}, "7"), ({"other": "x"}, "")],
)
def test_service_name_from_resource(resource: dict[str, object], service: str) -> None:
    value = proto_request([proto_span()], resource=resource).SerializeToString()
    (span,) = decode(value)
    assert span.service_name == service


def test_spans_of_several_resources_and_scopes_keep_their_own_values() -> None:
    first = proto_request([proto_span(name="a")], resource={"service.name": "one"})
    second = proto_request([proto_span(name="b"), proto_span(name="c")], scope=("s2", "v2"))
    first.resource_spans[0].resource.attributes[0].value.string_value = "one"
    first.resource_spans.extend(second.resource_spans)
    spans = decode(first.SerializeToString())
    assert [(s.span_name, s.service_name, s.scope_name) for s in spans] == [
        ("a", "one", "io.example.lib"),
        ("b", "checkout", "s2"),
        ("c", "checkout", "s2"),
    ]


LONE_SURROGATE = (
    b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"' + TRACE_ID.hex().encode()
)
LONE_SURROGATE += b'","spanId":"' + SPAN_ID.hex().encode() + b'","name":"\\ud800"}]}]}]}'


REASON_CASES: list[tuple[bytes | None, str]] = [
    (None, "empty"),
    (b"", "empty"),
    (b"\x0a\x05abc", "bad_proto"),
    (b"\xff\xff\xff", "bad_proto"),
    (b"{not json", "bad_json"),
    (b'{"resourceSpans": 5}', "bad_json"),
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": 3}]}]}]}', "bad_json"),
    (deep_proto_request(60), "too_deep"),
    (deep_proto_request(5000), "too_deep"),
    (deep_json_request(60), "too_deep"),
    (deep_json_request(5000), "too_deep"),
    (b'{"resourceSpans": [], "x": "\xff"}', "bad_utf8"),
    (LONE_SURROGATE, "bad_utf8"),
    (proto_request([]).SerializeToString(), "no_spans"),
    (b'{"resourceSpans": []}', "no_spans"),
    (b"{}", "no_spans"),
    (proto_bytes(trace_id=b"\x01" * 15), "bad_span"),
    (proto_bytes(trace_id=bytes(16)), "bad_span"),
    (proto_bytes(span_id=b"\x01" * 7), "bad_span"),
    (proto_bytes(span_id=b""), "bad_span"),
    (proto_bytes(parent_span_id=b"\x01" * 3), "bad_span"),
    (proto_bytes(links=[ProtoSpan.Link(trace_id=b"\x01" * 5)]), "bad_span"),
    (
        b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz","spanId":"01"}]}]}]}',
        "bad_span",
    ),
]


@pytest.mark.parametrize(("value", "reason"), REASON_CASES)
def test_reason_codes(value: bytes | None, reason: str) -> None:
    assert reason_of(value) == reason


def test_invalid_utf8_in_proto_string_is_bad_utf8() -> None:
    value = proto_bytes(name="@@marker@@").replace(b"@@marker@@", b"\xff\xfe@marker@@")
    assert reason_of(value) == "bad_utf8"


def test_too_large_is_checked_before_parsing() -> None:
    assert reason_of(b"\xff" * 101, max_bytes=100) == "too_large"
    assert reason_of(b"\xff" * 100, max_bytes=100) == "bad_proto"


def test_every_documented_reason_is_exercised() -> None:
    covered = {reason for _, reason in REASON_CASES} | {"too_large"}
    assert covered == set(REASONS)


@pytest.mark.parametrize(
    ("value", "headers", "encoding"),
    [
        (b"{}", None, "otlp_json"),
        (b" \n\t{}", [], "otlp_json"),
        (b"\x0a\x00", None, "otlp_proto"),
        (b"\x0a\x00", [("content-type", b"application/json")], "otlp_json"),
        (b"{}", [("Content-Type", b"application/x-protobuf")], "otlp_proto"),
        (b"{}", [("CONTENT-TYPE", b"Application/JSON; charset=utf-8")], "otlp_json"),
        (b"{}", [("content-type", b"text/plain")], "otlp_json"),
        (b"\x0a\x00", [("x-other", b"application/json")], "otlp_proto"),
        (b"{}", [("content-type", b"")], "otlp_json"),
        (b"\n{" + bytes(123), None, "otlp_proto"),
        (b"\n{" + bytes(123) + b"\n\x00", None, "otlp_proto"),
        (b'\n{"resourceSpans": []}', None, "otlp_json"),
    ],
)
def test_encoding_choice(
    value: bytes, headers: list[tuple[str, bytes]] | None, encoding: str
) -> None:
    assert choose_encoding(value, headers) == encoding


def test_header_overrides_sniffing_end_to_end() -> None:
    with pytest.raises(DecodeError) as caught:
        decode(FIXTURE.read_bytes(), [("content-type", b"application/x-protobuf")])
    assert caught.value.reason == "bad_proto"


def test_proto_request_starting_like_json_is_still_protobuf() -> None:
    request = proto_request([proto_span()])
    padding = 123 - len(request.resource_spans[0].SerializeToString())
    request.resource_spans[0].scope_spans[0].spans[0].name += "x" * padding
    value = request.SerializeToString()
    assert value[:2] == b"\n{"
    (span,) = decode(value)
    assert span.encoding == "otlp_proto"


@pytest.mark.parametrize(("depth", "ok"), [(0, True), (47, True), (48, False), (49, False)])
def test_nesting_limit_is_the_same_for_both_encodings(depth: int, ok: bool) -> None:
    for value in (deep_proto_request(depth), deep_json_request(depth)):
        if ok:
            (span,) = decode(value)
            assert span.span_attributes["deep"].count("[") == depth
        else:
            assert reason_of(value) == "too_deep"


@pytest.mark.parametrize("encoding", ["otlp_json", "otlp_proto"])
def test_services_past_the_bound_are_keyed_by_overflow_but_stored_by_name(encoding: str) -> None:
    enricher = Enricher(EnrichConfig(max_services=1))
    heads = []
    for service in ("checkout", "flood-1", "flood-2", "checkout"):
        if encoding == "otlp_json":
            text = FIXTURE.read_text().replace('"checkout"', json.dumps(service))
            value = text.encode()
        else:
            value = proto_request([proto_span()], resource={"service.name": service})
            value = value.SerializeToString()
        heads += decode_message(value, None, max_bytes=MAX, enricher=enricher).spans
    assert [h.service_name for h in heads] == [
        "checkout",
        "__overflow__",
        "__overflow__",
        "checkout",
    ]
    assert [to_span(h).service_name for h in heads] == [
        "checkout",
        "flood-1",
        "flood-2",
        "checkout",
    ]


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("startTimeUnixNano", str(1 << 63), "bad_span"),  # a legal uint64 the store cannot hold
        ("startTimeUnixNano", "0", "bad_span"),
        ("endTimeUnixNano", str((1 << 64) - 1), "bad_span"),
        ("startTimeUnixNano", str((1 << 63) - 1), None),  # the last DateTime64(9) instant
        ("endTimeUnixNano", "0", None),  # not ended: Duration 0
    ],
)
def test_json_times_the_store_cannot_hold_are_bad_span(
    field: str, value: str, reason: str | None
) -> None:
    doc = json.loads(FIXTURE.read_text())
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0][field] = value
    raw = json.dumps(doc).encode()
    if reason is None:
        (span,) = decode(raw)
        assert span.duration_ns >= 0 and span.timestamp_ns < 1 << 63
    else:
        assert reason_of(raw) == reason


def test_json_event_time_past_int64_is_bad_span() -> None:
    doc = json.loads(FIXTURE.read_text())
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["events"][0]["timeUnixNano"] = str(1 << 63)
    assert reason_of(json.dumps(doc).encode()) == "bad_span"
