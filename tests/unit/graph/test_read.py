"""read: the peer of a client span, found in its protobuf bytes as the rules would read it."""

from __future__ import annotations

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan

from pipeline import native
from pipeline.graph.derive import GraphSpan, peer_of
from pipeline.graph.read import attr_in_bytes, graph_spans, read_peer
from pipeline.model import Span, SpanHead
from pipeline.otlp.heads import head_of


def kv(key: str, value: AnyValue) -> KeyValue:
    return KeyValue(key=key, value=value)


def s(text: str) -> AnyValue:
    return AnyValue(string_value=text)


CASES: dict[str, tuple[list[KeyValue], tuple[str, bool]]] = {
    "database system": ([kv("db.system", s("postgresql"))], ("postgresql", True)),
    "database name wins over address": (
        [kv("server.address", s("10.0.0.1")), kv("db.name", s("shop"))],
        ("shop", True),
    ),
    "semconv 1.26 name first": (
        [kv("db.system", s("old")), kv("db.system.name", s("mysql"))],
        ("mysql", True),
    ),
    "peer.service over address": (
        [kv("net.peer.name", s("h")), kv("peer.service", s("stripe"))],
        ("stripe", False),
    ),
    "address": ([kv("server.address", s("api.example.com"))], ("api.example.com", False)),
    "nothing": ([kv("http.method", s("GET"))], ("", False)),
    "a non-string value is no name": ([kv("db.system", AnyValue(int_value=3))], ("", False)),
    "empty value is no name": ([kv("db.system", s(""))], ("", False)),
    "long value": ([kv("peer.service", s("x" * 300))], ("x" * 256, False)),
    "utf-8": ([kv("peer.service", s("zahlungsdienst-ü"))], ("zahlungsdienst-ü", False)),
}


def proto_bytes(attrs: list[KeyValue]) -> bytes:
    span = ProtoSpan(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="call")
    span.kind = ProtoSpan.SPAN_KIND_CLIENT
    span.attributes.extend(attrs)
    return b"junk before" + span.SerializeToString() + b"junk after"


def bytes_head(raw: bytes) -> SpanHead:
    """A head whose span is only bytes (as the native scan makes them)."""
    start, end = len(b"junk before"), len(raw) - len(b"junk after")
    return native.SpanHead(
        "a" * 32, "b" * 16, "", 0, 1, "s", "q", False, 1, raw, start, end - start, None, None, 3
    )


@pytest.mark.parametrize("attrs, expected", CASES.values(), ids=CASES.keys())
def test_peer_from_bytes_matches_the_rules_on_attributes(
    attrs: list[KeyValue], expected: tuple[str, bool]
) -> None:
    assert read_peer(bytes_head(proto_bytes(attrs))) == expected
    strings = {a.key: a.value.string_value for a in attrs if a.value.HasField("string_value")}
    assert peer_of(strings) == expected


def test_read_peer_prefers_the_built_span_and_graph_spans() -> None:
    built = Span(
        0, "a" * 32, "b" * 16, "", "", "q", "Client", "s", {}, "", "", {"db.system": "pg"}, 1,
        "Unset", "",
    )  # fmt: skip
    assert read_peer(head_of(built)) == ("pg", True)
    assert read_peer(GraphSpan("s", "", "a", "o", 3, 0, 1, False, "stripe")) == ("stripe", False)


@pytest.mark.parametrize(
    "raw",
    [
        b"\x0a\x09db.system\x12",  # cut after the key
        b"\x0a\x09db.system\x12\x80",  # cut varint
        b"\x0a\x09db.system\x12\x06\x0a\x09pg",  # string longer than its AnyValue
        b"\x0a\x09db.system\x12\x06\x10\x04pgsq",  # not a string value
        b"\x0a\x09db.system\x12\xff\xff\xff\x0a\x01x",  # three-byte length
    ],
)
def test_truncated_or_foreign_encodings_read_as_no_value(raw: bytes) -> None:
    assert attr_in_bytes(raw, 0, len(raw), b"db.system") == ""


def test_search_stays_within_the_span() -> None:
    raw = proto_bytes([kv("db.system", s("pg"))])
    assert attr_in_bytes(raw, 0, 12, b"db.system") == ""
    assert attr_in_bytes(raw, 0, len(raw), b"db.system") == "pg"


def test_graph_spans_read_the_peers_of_client_spans_only() -> None:
    db = bytes_head(proto_bytes([kv("db.system", s("pg"))]))
    (client,) = graph_spans([db])
    assert (client.kind, client.peer, client.database) == (3, "pg", True)
    server = native.SpanHead("a" * 32, "c" * 16, "", 0, 1, "s", "GET /", False, 1, b"", 0, 0,
                             None, None, 2)  # fmt: skip
    assert graph_spans([server])[0][-2:] == ("", False)
