"""Trace/span ids and enum strings shared by both OTLP decoders.

Kind and status strings are pdata's ``SpanKind.String()`` and
``StatusCode.String()`` (opentelemetry-collector ``pdata/ptrace/span_kind.go``,
``status_code.go``), which the current ClickHouse exporter writes
(``span.Kind().String()``, ``spanStatus.Code().String()`` in
``exporter/clickhouseexporter/exporter_traces.go``). Values outside the enum
map to ``""``, as pdata does. Older exporter versions used
``traceutil.SpanKindStr`` (``SPAN_KIND_SERVER``/``STATUS_CODE_ERROR``).

Ids are lowercase hex. A span must carry a 16-byte non-zero trace id and an
8-byte non-zero span id (``bad_span`` otherwise: sampling and storage key on
them). Parent and link ids may be empty; an all-zero id renders as ``""`` like
the exporter's ``SpanIDToHexOrEmptyString``.
"""

from __future__ import annotations

from pipeline.errors import DecodeError

KINDS: dict[int, str] = {
    0: "Unspecified",
    1: "Internal",
    2: "Server",
    3: "Client",
    4: "Producer",
    5: "Consumer",
}
STATUSES: dict[int, str] = {0: "Unset", 1: "Ok", 2: "Error"}

_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)


def check_ids(trace_id: bytes, span_id: bytes, parent_id: bytes) -> tuple[str, str, str]:
    """Validate a span's ids and return them as lowercase hex.

    >>> check_ids(bytes(range(16)), b"\\x01" * 8, b"")
    ('000102030405060708090a0b0c0d0e0f', '0101010101010101', '')
    >>> check_ids(b"\\x01" * 15, b"\\x01" * 8, b"")
    Traceback (most recent call last):
    pipeline.errors.DecodeError: bad_span: trace id has 15 bytes, expected 16 non-zero
    """
    # The common root case first; zero ids are rare but still checked.
    if (
        len(trace_id) == 16
        and len(span_id) == 8
        and not parent_id
        and trace_id != _ZERO_TRACE
        and span_id != _ZERO_SPAN
    ):
        return trace_id.hex(), span_id.hex(), ""
    if len(trace_id) != 16 or trace_id == _ZERO_TRACE:
        raise DecodeError("bad_span", f"trace id has {len(trace_id)} bytes, expected 16 non-zero")
    if len(span_id) != 8 or span_id == _ZERO_SPAN:
        raise DecodeError("bad_span", f"span id has {len(span_id)} bytes, expected 8 non-zero")
    if parent_id:
        return trace_id.hex(), span_id.hex(), link_id(parent_id, 8)
    return trace_id.hex(), span_id.hex(), ""


def link_id(value: bytes, size: int) -> str:
    """An optional id (parent, link): ``""`` when empty or all zero, else hex.

    >>> link_id(b"", 8), link_id(bytes(8), 8), link_id(b"\\xab" * 8, 8)
    ('', '', 'abababababababab')
    """
    if not value:
        return ""
    if len(value) != size:
        raise DecodeError("bad_span", f"id has {len(value)} bytes, expected {size}")
    if value.count(0) == size:
        return ""
    return value.hex()


def hex_id(text: object, size: int, *, required: bool) -> str:
    """Validate an OTLP/JSON hex id (``size`` bytes) and return it lowercased.

    >>> hex_id("ABABABABABABABAB", 8, required=True)
    'abababababababab'
    >>> hex_id("", 8, required=False)
    ''
    """
    if not isinstance(text, str):
        raise DecodeError("bad_span", f"id must be a hex string, got {type(text).__name__}")
    if not text and not required:
        return ""
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise DecodeError("bad_span", f"id {text[:40]!r} is not hex") from None
    if len(raw) != size or len(text) != 2 * size:
        raise DecodeError("bad_span", f"id {text[:40]!r} is not {size} bytes of hex")
    if raw.count(0) == size:
        if required:
            raise DecodeError("bad_span", "id is all zero")
        return ""
    return raw.hex()
