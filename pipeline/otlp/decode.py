"""Kafka record -> spans: pick the encoding, bound the size, decode, enrich.

:func:`decode_message` is the one entry point. It raises only
:class:`pipeline.errors.DecodeError`, whose ``reason`` is one of:

``empty``      the record has no value or zero bytes
``too_large``  the value exceeds ``max_bytes`` (checked before any parsing)
``bad_proto``  the bytes are not a valid ``ExportTraceServiceRequest``
``bad_json``   not JSON, or JSON that does not follow the OTLP/JSON mapping
``too_deep``   nesting beyond the limits: upb's 100-message depth limit for
               protobuf, :data:`pipeline.otlp.anyvalue.MAX_ANY_DEPTH` nested
               AnyValues or the interpreter's recursion limit for JSON
``bad_utf8``   invalid UTF-8 (upb rejects it in proto3 ``string`` fields while
               parsing; for JSON the whole value, or a lone surrogate escape)
``no_spans``   a valid message with zero spans; dead-lettered so nothing
               disappears silently
``bad_span``   a span or link id of the wrong length, or a zero trace/span id;
               or a time the store cannot hold (see Times below)

One bad span fails the whole record: the record goes to the dead-letter topic
intact rather than half-ingested.

Encoding: a ``content-type`` header (name case-insensitive) containing
``json`` or ``protobuf`` decides; otherwise, or for any other content type,
the first non-whitespace byte ``{`` means ``otlp_json``, anything else
``otlp_proto``. One ambiguity: a protobuf request may itself start with
``\n{`` (field 1, length 123); such a value is taken as protobuf when that
length prefix is consistent with the value (the field ends exactly at the end
or where another field 1 starts).

Column mapping (checked against opentelemetry-collector-contrib
``exporter/clickhouseexporter/exporter_traces.go`` and ``internal/util.go`` of
2025, the version writing ``ScopeName``/``ScopeVersion`` columns and
``span.Kind().String()``): ``Timestamp`` = start time; ids lowercase hex, empty
parent ``""``; ``ServiceName`` = ``AsString()`` of resource attribute
``service.name``, ``""`` when missing; attributes via ``AsString()`` (see
:mod:`pipeline.otlp.anyvalue`). One deliberate difference: the exporter
computes ``Duration`` as an unsigned ``end - start`` that wraps around when a
span ends before it starts; spanstream stores 0 instead, so a clock glitch
does not become a 584-year latency in the RED metrics.

Times: ``otel_traces`` keeps them as ``DateTime64(9)``, an Int64 of Unix
nanoseconds, so the last instant it holds is 2^63-1 ns
(2262-04-11T23:47:16.854775807Z), while OTLP's fixed64 goes to 2^64-1. A span
whose start, end or event time is past that instant is ``bad_span`` (its row
could never be inserted, and would hold up every insert of its batch). A start
time of 0 is ``bad_span`` as well: OTLP calls it required, and 0 means it was
never set (the row would sit in 1970, outside every window). An end time
before the start, or 0, is accepted with ``Duration`` 0 (above); an event time
of 0 is stored as it is. Both decoders (the native scan in ``_span.h`` hands
such spans to the Python path, which raises) apply :mod:`pipeline.otlp.ids`.

Spans of one resource share one ``resource_attributes`` dict, also across records
(the native scan caches scope contexts): treat it as
read-only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from google.protobuf.internal import api_implementation

from pipeline.enrich import Enricher
from pipeline.errors import DecodeError
from pipeline.otlp.heads import SpanHead, head_of, heads_from_proto
from pipeline.otlp.otlp_json import spans_from_json

Encoding = Literal["otlp_proto", "otlp_json"]

REASONS: Final = (
    "empty",
    "too_large",
    "bad_proto",
    "bad_json",
    "too_deep",
    "bad_utf8",
    "no_spans",
    "bad_span",
)

# "upb" is the fast C backend; "python" would be 10-50x slower on this path.
PROTOBUF_BACKEND: Final[str] = api_implementation.Type()

_WHITESPACE = b" \t\r\n"


@dataclass(frozen=True, slots=True)
class Decoded:
    """The spans of one record (as heads: see :mod:`pipeline.otlp.heads`), its encoding and size."""

    spans: list[SpanHead]
    encoding: Encoding
    bytes: int


def decode_message(
    value: bytes | None,
    headers: Sequence[tuple[str, bytes]] | None,
    *,
    max_bytes: int,
    enricher: Enricher,
) -> Decoded:
    """Decode one Kafka record value into enriched spans.

    >>> decode_message(b"", None, max_bytes=10, enricher=Enricher())
    Traceback (most recent call last):
    pipeline.errors.DecodeError: empty: record has no value
    >>> decode_message(b'{"resourceSpans": []}', None, max_bytes=100, enricher=Enricher())
    Traceback (most recent call last):
    pipeline.errors.DecodeError: no_spans: otlp_json message holds no spans
    """
    if not value:
        raise DecodeError("empty", "record has no value")
    size = len(value)
    if size > max_bytes:
        raise DecodeError("too_large", f"{size} bytes > max {max_bytes}")
    encoding = choose_encoding(value, headers)
    try:
        if encoding == "otlp_json":
            spans = [
                head_of(span, service=enricher.series_service(span.service_name))
                for span in spans_from_json(value, enricher)
            ]
        else:
            spans = heads_from_proto(value, enricher)
    except DecodeError:
        raise
    except RecursionError:
        raise DecodeError("too_deep", "nesting exceeds the recursion limit") from None
    except Exception as exc:  # the contract: DecodeError only, never a crash
        raise DecodeError(_fallback_reason(encoding), f"{type(exc).__name__}: {exc}") from None
    if not spans:
        raise DecodeError("no_spans", f"{encoding} message holds no spans")
    return Decoded(spans, encoding, size)


def _fallback_reason(encoding: Encoding) -> str:
    return "bad_json" if encoding == "otlp_json" else "bad_proto"


def choose_encoding(value: bytes, headers: Sequence[tuple[str, bytes]] | None) -> Encoding:
    """Pick the encoding from a ``content-type`` header, else by sniffing.

    >>> choose_encoding(b"{}", [("Content-Type", b"application/x-protobuf")])
    'otlp_proto'
    >>> choose_encoding(b"  {", None), choose_encoding(b"\\x0a\\x00", [])
    ('otlp_json', 'otlp_proto')
    >>> choose_encoding(b"\\n{" + bytes(123), None), choose_encoding(b"\\n{}", None)
    ('otlp_proto', 'otlp_json')
    """
    if headers:
        for name, raw in headers:
            if name.lower() != "content-type" or not raw:
                continue
            content_type = bytes(raw).lower()
            if b"json" in content_type:
                return "otlp_json"
            if b"protobuf" in content_type:
                return "otlp_proto"
    if value[:1] == b"{":
        return "otlp_json"
    if value.lstrip(_WHITESPACE)[:1] != b"{":
        return "otlp_proto"
    # b"\n{" is also how a request with a 123-byte ResourceSpans starts
    # (tag 0x0a, length 0x7b): prefer protobuf when the length prefix fits.
    if value[:1] == b"\n" and _plausible_proto(value):
        return "otlp_proto"
    return "otlp_json"


def _plausible_proto(value: bytes) -> bool:
    """Whether the first length-delimited field 1 ends at the end or before another one."""
    length = shift = 0
    position = 1
    while position < min(len(value), 11):
        byte = value[position]
        position += 1
        length |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            end = position + length
            return end == len(value) or (end < len(value) and value[end] == 0x0A)
    return False
