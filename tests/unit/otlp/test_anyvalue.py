"""AnyValue -> string, as pcommon Value.AsString(), identical for both encodings."""

from __future__ import annotations

import base64
import json
import math

import pytest

from pipeline.enrich import Enricher
from pipeline.otlp import decode_message
from pipeline.otlp.anyvalue import go_float, go_json
from pipeline.otlp.heads import to_span
from pipeline.otlp.samples import SPAN_ID, START_NS, TRACE_ID, proto_request, proto_span


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0"),
        (-0.0, "-0"),
        (1.0, "1"),
        (-2.5, "-2.5"),
        (0.1, "0.1"),
        (1e-6, "0.000001"),
        (9.99e-7, "9.99e-7"),
        (1e-10, "1e-10"),
        (123456789.0, "123456789"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (5e-324, "5e-324"),
        (math.inf, "json: unsupported value: +Inf"),
        (-math.inf, "json: unsupported value: -Inf"),
        (math.nan, "json: unsupported value: NaN"),
    ],
)
def test_go_float(value: float, text: str) -> None:
    assert go_float(value) == text


@pytest.mark.parametrize(
    ("tree", "text"),
    [
        ([], "[]"),
        ({}, "{}"),
        ({"b": 1, "a": [True, None, 2.0]}, '{"a":[true,null,2],"b":1}'),
        (
            ["<&>", "\u2028", "é", "\n\t\x01"],
            '["\\u003c\\u0026\\u003e","\\u2028","é","\\n\\t\\u0001"]',
        ),
        ([b"\x00\xff"], '["AP8="]'),
        ([1.0, math.inf], ""),
        ([1e21, 1e-7], "[1e+21,1e-7]"),
    ],
)
def test_go_json(tree: object, text: str) -> None:
    assert go_json(tree) == text


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
        text = {math.inf: "Infinity", -math.inf: "-Infinity"}.get(value)
        return {"doubleValue": text or ("NaN" if math.isnan(value) else value)}
    if isinstance(value, bytes):
        return {"bytesValue": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        pairs = [{"key": k, "value": _json_value(v)} for k, v in value.items()]
        return {"kvlistValue": {"values": pairs}}
    assert isinstance(value, list)
    return {"arrayValue": {"values": [_json_value(v) for v in value]}}


def _decode_attribute(value: object, encoding: str) -> str:
    if encoding == "otlp_proto":
        payload = proto_request([proto_span(attributes={"v": value})]).SerializeToString()
    else:
        span = {
            "traceId": TRACE_ID.hex(),
            "spanId": SPAN_ID.hex(),
            "startTimeUnixNano": str(START_NS),
            "attributes": [{"key": "v", "value": _json_value(value)}],
        }
        doc = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
        payload = json.dumps(doc).encode()
    decoded = decode_message(payload, None, max_bytes=1 << 20, enricher=Enricher())
    return to_span(decoded.spans[0]).span_attributes["v"]


@pytest.mark.parametrize("encoding", ["otlp_proto", "otlp_json"])
@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("plain", "plain"),
        ("", ""),
        (None, ""),
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (-9223372036854775808, "-9223372036854775808"),
        (2.5, "2.5"),
        (3.0, "3"),
        (math.nan, "json: unsupported value: NaN"),
        (b"hi", "aGk="),
        (b"", ""),
        (["x", 1, 1.5, False, None, b"\x01"], '["x",1,1.5,false,null,"AQ=="]'),
        ({"z": {"y": [1]}, "a": "<b>"}, '{"a":"\\u003cb\\u003e","z":{"y":[1]}}'),
        ([math.nan], ""),
        ([[[[[["deep"]]]]]], '[[[[[["deep"]]]]]]'),
    ],
)
def test_attribute_as_string(value: object, text: str, encoding: str) -> None:
    assert _decode_attribute(value, encoding) == text
