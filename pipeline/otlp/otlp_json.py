"""``otlp_json`` records (the OTLP/JSON mapping) -> spans.

Accepts what the Collector's pdata JSON marshaler writes and what protojson
accepts: lowerCamelCase or snake_case keys, ``traceId``/``spanId`` as hex,
64-bit integers as strings or numbers, enums as numbers or their proto names
(``SPAN_KIND_SERVER``), ``bytesValue`` as base64, doubles as numbers or
``"NaN"``/``"Infinity"``/``"-Infinity"``. ``null`` means the default value;
unknown keys are ignored (pdata ignores them too).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re

from pipeline.enrich import Enricher
from pipeline.errors import DecodeError
from pipeline.model import Span, SpanEvent, SpanLink
from pipeline.otlp.anyvalue import MAX_ANY_DEPTH, go_bytes, go_float, go_json
from pipeline.otlp.ids import KINDS, STATUSES, check_event_time, check_times, hex_id

JsonObject = dict[str, object]

# A \uD800-\uDFFF escape may encode a lone surrogate, which is not UTF-8.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_KIND_NAMES = {f"SPAN_KIND_{name.upper()}": code for code, name in KINDS.items()}
_STATUS_NAMES = {f"STATUS_CODE_{name.upper()}": code for code, name in STATUSES.items()}
_DOUBLE_WORDS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_ANY_KEYS = {
    "stringValue": "string",
    "string_value": "string",
    "boolValue": "bool",
    "bool_value": "bool",
    "intValue": "int",
    "int_value": "int",
    "doubleValue": "double",
    "double_value": "double",
    "bytesValue": "bytes",
    "bytes_value": "bytes",
    "arrayValue": "array",
    "array_value": "array",
    "kvlistValue": "kvlist",
    "kvlist_value": "kvlist",
}
_UINT64_LIMIT = 1 << 64


def parse_document(value: bytes) -> JsonObject:
    """UTF-8 check, JSON parse (bounded recursion) and top-level shape check."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError("bad_utf8", str(exc)) from None
    try:
        document = json.loads(text)
    except RecursionError:
        raise DecodeError("too_deep", "JSON nesting exceeds the parser's recursion limit") from None
    except ValueError as exc:
        raise DecodeError("bad_json", str(exc)[:200]) from None
    if not isinstance(document, dict):
        raise DecodeError("bad_json", "the document must be a JSON object")
    if _SURROGATE_ESCAPE.search(value):
        _reject_lone_surrogates(document)
    return document


def _reject_lone_surrogates(document: object) -> None:
    try:
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise DecodeError("bad_utf8", f"lone surrogate escape: {exc}") from None
    except RecursionError:
        raise DecodeError("too_deep", "JSON nesting exceeds the recursion limit") from None


def spans_from_json(value: bytes, enricher: Enricher) -> list[Span]:
    """Decode one ``otlp_json`` record into enriched spans (may be empty)."""
    document = parse_document(value)
    spans: list[Span] = []
    for resource_spans in _list(
        _field(document, "resourceSpans", "resource_spans"), "resourceSpans"
    ):
        resource_spans = _object(resource_spans, "resourceSpans[]")
        resource = _object(resource_spans.get("resource"), "resource")
        resource_attributes = attributes(resource.get("attributes"))
        service = resource_attributes.get("service.name", "")
        for scope_spans in _list(_field(resource_spans, "scopeSpans", "scope_spans"), "scopeSpans"):
            scope_spans = _object(scope_spans, "scopeSpans[]")
            scope = _object(scope_spans.get("scope"), "scope")
            context = (
                service,
                resource_attributes,
                _str(scope.get("name")),
                _str(scope.get("version")),
            )
            for span in _list(scope_spans.get("spans"), "spans"):
                spans.append(_span(_object(span, "spans[]"), context, enricher))
    return spans


def _span(
    span: JsonObject, context: tuple[str, dict[str, str], str, str], enricher: Enricher
) -> Span:
    service, resource_attributes, scope_name, scope_version = context
    status = _object(span.get("status"), "status")
    name = _str(span.get("name"))
    kind = KINDS.get(_enum(span.get("kind"), _KIND_NAMES), "")
    status_code = STATUSES.get(_enum(status.get("code"), _STATUS_NAMES), "")
    start = _uint64(_field(span, "startTimeUnixNano", "start_time_unix_nano"))
    end = _uint64(_field(span, "endTimeUnixNano", "end_time_unix_nano"))
    check_times(start, end)
    operation, is_error, span_attributes = enricher.derive(
        service, name, kind, status_code, attributes(span.get("attributes"))
    )
    return Span(
        timestamp_ns=start,
        trace_id=hex_id(_field(span, "traceId", "trace_id"), 16, required=True),
        span_id=hex_id(_field(span, "spanId", "span_id"), 8, required=True),
        parent_span_id=hex_id(
            _field(span, "parentSpanId", "parent_span_id") or "", 8, required=False
        ),
        trace_state=_str(_field(span, "traceState", "trace_state")),
        span_name=name,
        span_kind=kind,
        service_name=service,
        resource_attributes=resource_attributes,
        scope_name=scope_name,
        scope_version=scope_version,
        span_attributes=span_attributes,
        duration_ns=max(0, end - start),
        status_code=status_code,
        status_message=_str(status.get("message")),
        events=tuple(_event(_object(e, "events[]")) for e in _list(span.get("events"), "events")),
        links=tuple(_link(_object(x, "links[]")) for x in _list(span.get("links"), "links")),
        operation=operation,
        is_error=is_error,
        encoding="otlp_json",
    )


def _event(event: JsonObject) -> SpanEvent:
    return SpanEvent(
        check_event_time(_uint64(_field(event, "timeUnixNano", "time_unix_nano"))),
        _str(event.get("name")),
        attributes(event.get("attributes")),
    )


def _link(link: JsonObject) -> SpanLink:
    return SpanLink(
        hex_id(_field(link, "traceId", "trace_id") or "", 16, required=False),
        hex_id(_field(link, "spanId", "span_id") or "", 8, required=False),
        _str(_field(link, "traceState", "trace_state")),
        attributes(link.get("attributes")),
    )


def attributes(key_values: object) -> dict[str, str]:
    """A JSON ``KeyValue`` list -> ``{key: AsString(value)}`` (last duplicate wins)."""
    out: dict[str, str] = {}
    for kv in _list(key_values, "attributes"):
        kv = _object(kv, "attributes[]")
        raw = any_raw(kv.get("value"), 1)
        out[_str(kv.get("key"))] = raw if isinstance(raw, str) else raw_string(raw)
    return out


def raw_string(raw: object) -> str:
    """A raw AnyValue (from :func:`any_raw`) as pcommon ``AsString`` renders it."""
    if raw is None:
        return ""
    if isinstance(raw, str):
        return raw
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, int):
        return str(raw)
    if isinstance(raw, float):
        return go_float(raw)
    if isinstance(raw, bytes):
        return go_bytes(raw)
    return go_json(raw)


def any_raw(value: object, depth: int) -> object:
    """A JSON ``AnyValue`` -> plain Python value; nesting beyond the limit is ``too_deep``."""
    if depth > MAX_ANY_DEPTH:
        raise DecodeError("too_deep", f"AnyValue nested more than {MAX_ANY_DEPTH} levels")
    for key, item in _object(value, "AnyValue").items():
        kind = _ANY_KEYS.get(key)
        if kind is not None and item is not None:
            return _convert(kind, item, depth)
    return None


def _convert(kind: str, item: object, depth: int) -> object:
    if kind == "string":
        return _str(item)
    if kind == "bool":
        if not isinstance(item, bool):
            raise DecodeError("bad_json", "boolValue must be true or false")
        return item
    if kind == "int":
        return _int64(item)
    if kind == "double":
        return _double(item)
    if kind == "bytes":
        return _base64(item)
    values = _list(_object(item, kind).get("values"), "values")
    if kind == "array":
        return [any_raw(v, depth + 1) for v in values]
    pairs = [_object(kv, "kvlist[]") for kv in values]
    return {_str(kv.get("key")): any_raw(kv.get("value"), depth + 1) for kv in pairs}


def _field(obj: JsonObject, camel: str, snake: str) -> object:
    found = obj.get(camel)
    return obj.get(snake) if found is None else found


def _object(value: object, what: str) -> JsonObject:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise DecodeError("bad_json", f"{what} must be an object")
    return value


def _list(value: object, what: str) -> list[object]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise DecodeError("bad_json", f"{what} must be an array")
    return value


def _str(value: object) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DecodeError("bad_json", f"expected a string, got {type(value).__name__}")
    return value


def _integer(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        digits = value.strip().removeprefix("-")
        if digits.isascii() and digits.isdigit() and len(digits) <= 20:
            return int(value)
    raise DecodeError("bad_json", f"expected an integer, got {str(value)[:40]!r}")


def _uint64(value: object) -> int:
    number = 0 if value is None else _integer(value)
    if not 0 <= number < _UINT64_LIMIT:
        raise DecodeError("bad_json", f"{number} is out of range for uint64")
    return number


def _int64(value: object) -> int:
    number = _integer(value)
    if not -(1 << 63) <= number < (1 << 63):
        raise DecodeError("bad_json", f"{number} is out of range for int64")
    return number


def _enum(value: object, names: dict[str, int]) -> int:
    if isinstance(value, str) and value in names:
        return names[value]
    return 0 if value is None else _integer(value)


def _double(value: object) -> float:
    if isinstance(value, float):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() <= 1023:
        return float(value)
    if isinstance(value, str):
        if value in _DOUBLE_WORDS:
            return _DOUBLE_WORDS[value]
        try:
            return float(value)
        except (ValueError, OverflowError):
            pass
    raise DecodeError("bad_json", f"doubleValue {str(value)[:40]!r} is not a number")


def _base64(value: object) -> bytes:
    text = _str(value)
    padded = text + "=" * (-len(text) % 4)
    try:
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DecodeError("bad_json", f"bytesValue is not base64: {exc}") from None
