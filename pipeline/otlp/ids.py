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

Times (:func:`check_times`, :func:`check_event_time`) are Unix nanoseconds, stored
as ``DateTime64(9)``: an Int64 of nanoseconds, so the last instant it holds is
2^63-1 ns (2262-04-11T23:47:16.854775807Z). A start, end or event time past it is
``bad_span``: no such span exists, and its row could never be inserted (the
fixed64 field allows up to 2^64-1). A start time of 0 is ``bad_span`` too: OTLP
calls the field required, and 0 means the producer never set it (the row would
land in 1970, outside any window and first in line for the TTL). An end before
the start, or an end of 0, is kept: its ``Duration`` is 0 (see ``decode``).
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
#: Kind string -> number, as a head carries it (a kind OTLP does not define reads 0).
KIND_NUMBERS: dict[str, int] = {name: number for number, name in KINDS.items()}
STATUSES: dict[int, str] = {0: "Unset", 1: "Ok", 2: "Error"}

#: The last nanosecond ``DateTime64(9)`` holds: 2262-04-11T23:47:16.854775807Z.
MAX_TIME_NS = (1 << 63) - 1

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


def check_times(start: int, end: int) -> None:
    """Reject a span whose start or end the store cannot hold, or whose start is unset.

    >>> check_times(1, 0)
    >>> check_times(0, 5)
    Traceback (most recent call last):
    pipeline.errors.DecodeError: bad_span: start time is 0 (unset)
    >>> check_times(1 << 63, (1 << 63) + 5)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    pipeline.errors.DecodeError: bad_span: start time 9223372036854775808 ns is past 2262-04-...
    """
    if start == 0:
        raise DecodeError("bad_span", "start time is 0 (unset)")
    if start > MAX_TIME_NS:
        raise DecodeError("bad_span", f"start time {start} ns is past {_LAST_INSTANT}")
    if end > MAX_TIME_NS:
        raise DecodeError("bad_span", f"end time {end} ns is past {_LAST_INSTANT}")


def check_event_time(time_ns: int) -> int:
    """An event time the store can hold (0 included: the exporter stores it too).

    >>> check_event_time(0)
    0
    """
    if time_ns > MAX_TIME_NS:
        raise DecodeError("bad_span", f"event time {time_ns} ns is past {_LAST_INSTANT}")
    return time_ns


_LAST_INSTANT = "2262-04-11T23:47:16.854775807Z"
