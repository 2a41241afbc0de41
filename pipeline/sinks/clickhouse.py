"""Rows for the ClickHouse tables, and the writer that turns store failures into backpressure.

Column names are the Collector ClickHouse exporter's for ``otel_traces`` (see
``schemas/clickhouse``). Timestamps go in as integers in the column's unit
(ns for ``DateTime64(9)``, ms for ``DateTime64(3)``), Maps as dicts and the
``Events.*``/``Links.*`` Nested columns as one list per row.
"""

from __future__ import annotations

import logging
import re
import struct
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from pipeline import metrics
from pipeline.alerts import Alert
from pipeline.errors import BatchRejected, SinkUnavailable, SpanstreamError
from pipeline.model import Span, SpanHead
from pipeline.otlp.heads import head_buffers, head_columns, to_span
from pipeline.store.arrow import arrow_type, column_array, from_layout
from pipeline.store.base import Store, accepts_arrow
from pipeline.windows.series import ClosedWindow

if TYPE_CHECKING:
    from pipeline.sampling.buffer import DecidedTrace

log = logging.getLogger(__name__)
NS_PER_MS = 1_000_000

TRACES_TABLE = "otel_traces"
METRICS_TABLE = "spanstream_red_metrics"
ANOMALIES_TABLE = "spanstream_anomalies"


#: The ``otel_traces`` columns spanstream writes, in insert order, with their ClickHouse
#: types: ``schemas/clickhouse/0001_otel_traces.sql`` (Nested columns as their arrays).
#: ``span_columns``, the native ``columns`` and ``arrow_columns`` (``_columns.h``,
#: ``_arrow.h``) write these; tests/unit/sinks/test_clickhouse.py fails if one drifts.
TRACE_TYPES: dict[str, str] = {
    "Timestamp": "DateTime64(9)",
    "TraceId": "String",
    "SpanId": "String",
    "ParentSpanId": "String",
    "TraceState": "String",
    "SpanName": "LowCardinality(String)",
    "SpanKind": "LowCardinality(String)",
    "ServiceName": "LowCardinality(String)",
    "ResourceAttributes": "Map(LowCardinality(String), String)",
    "ScopeName": "String",
    "ScopeVersion": "String",
    "SpanAttributes": "Map(LowCardinality(String), String)",
    "Duration": "UInt64",
    "StatusCode": "LowCardinality(String)",
    "StatusMessage": "String",
    "Events.Timestamp": "Array(DateTime64(9))",
    "Events.Name": "Array(LowCardinality(String))",
    "Events.Attributes": "Array(Map(LowCardinality(String), String))",
    "Links.TraceId": "Array(String)",
    "Links.SpanId": "Array(String)",
    "Links.TraceState": "Array(String)",
    "Links.Attributes": "Array(Map(LowCardinality(String), String))",
}
TRACE_COLUMNS = tuple(TRACE_TYPES)


def span_columns(spans: Sequence[Span]) -> dict[str, list[Any]]:
    """``otel_traces`` columns for a batch of spans."""
    return {
        "Timestamp": [s.timestamp_ns for s in spans],
        "TraceId": [s.trace_id for s in spans],
        "SpanId": [s.span_id for s in spans],
        "ParentSpanId": [s.parent_span_id for s in spans],
        "TraceState": [s.trace_state for s in spans],
        "SpanName": [s.span_name for s in spans],
        "SpanKind": [s.span_kind for s in spans],
        "ServiceName": [s.service_name for s in spans],
        "ResourceAttributes": [s.resource_attributes for s in spans],
        "ScopeName": [s.scope_name for s in spans],
        "ScopeVersion": [s.scope_version for s in spans],
        "SpanAttributes": [s.span_attributes for s in spans],
        "Duration": [max(s.duration_ns, 0) for s in spans],
        "StatusCode": [s.status_code for s in spans],
        "StatusMessage": [s.status_message for s in spans],
        "Events.Timestamp": [[e.timestamp_ns for e in s.events] for s in spans],
        "Events.Name": [[e.name for e in s.events] for s in spans],
        "Events.Attributes": [[e.attributes for e in s.events] for s in spans],
        "Links.TraceId": [[lk.trace_id for lk in s.links] for s in spans],
        "Links.SpanId": [[lk.span_id for lk in s.links] for s in spans],
        "Links.TraceState": [[lk.trace_state for lk in s.links] for s in spans],
        "Links.Attributes": [[lk.attributes for lk in s.links] for s in spans],
    }


def trace_columns(spans: Sequence[SpanHead]) -> dict[str, list[Any]]:
    """:func:`span_columns` of kept spans, heads included, without building every Span.

    Heads the native scan made are read straight from their record's bytes
    (:func:`pipeline.otlp.heads.head_columns`); anything else goes through
    :func:`~pipeline.otlp.heads.to_span`. Rows come native first: row order
    means nothing to ClickHouse, and the batch's dedup token names the rows.
    """
    native, rest = _split_heads(spans)
    columns = head_columns(native)
    if rest:
        for name, values in span_columns(rest).items():
            columns[name].extend(values)
    return columns


def trace_arrays(spans: Sequence[SpanHead]) -> dict[str, pa.Array]:
    """:func:`trace_columns` as pyarrow arrays, for stores that take them (chdb).

    Native heads become Arrow buffers in one pass (:func:`~pipeline.otlp.heads.head_buffers`)
    with no Python value per column and row; the same rows, in the same order.
    """
    native, rest = _split_heads(spans)
    arrays = _head_arrays(native)
    if rest:
        for name, values in span_columns(rest).items():
            arrays[name] = pa.concat_arrays([arrays[name], column_array(values, arrays[name].type)])
    return arrays


def _split_heads(spans: Sequence[SpanHead]) -> tuple[list[SpanHead], list[Span]]:
    """Heads still as bytes (the native scan's), and the Spans the others carry."""
    native: list[SpanHead] = []
    rest: list[Span] = []
    for s in spans:
        if s.span is None:
            native.append(s)
        else:
            rest.append(s.span)
    return native, rest


def columns_of(heads: list[SpanHead], *_: Any) -> dict[str, list[Any]]:
    """The reference of ``native.columns``: :func:`span_columns` of the full spans."""
    return span_columns([to_span(h) for h in heads])


def arrow_columns_of(heads: list[SpanHead], *_: Any) -> dict[str, tuple[Any, ...]]:
    """The reference of ``native.arrow_columns``: :func:`columns_of` as Arrow layouts.

    Each column is its layout name and buffers, as :func:`~pipeline.store.arrow.from_layout`
    reads them (``str``, ``map``, ``ts``, ``u64``, ``list_`` + one of those).
    """
    columns = columns_of(heads)
    return {
        name: _layout(column_array(columns[name], arrow_type(ch_type)))
        for name, ch_type in TRACE_TYPES.items()
    }


def _layout(array: pa.Array) -> tuple[Any, ...]:
    def raw(a: pa.Array, i: int) -> bytes:
        buffer = a.buffers()[i]
        return b"" if buffer is None else buffer.to_pybytes()

    t = array.type
    if pa.types.is_list(t):
        child = _layout(array.values)
        return ("list_" + child[0], raw(array.offsets, 1), *child[1:])
    if pa.types.is_map(t):
        keys, items = array.keys, array.items
        return (
            "map",
            raw(array.offsets, 1),
            raw(keys, 1),
            raw(keys, 2),
            raw(items, 1),
            raw(items, 2),
        )
    if pa.types.is_string(t):
        return ("str", raw(array, 1), raw(array, 2))
    return ("ts" if pa.types.is_timestamp(t) else "u64", raw(array, 1))


def _head_arrays(heads: list[SpanHead]) -> dict[str, pa.Array]:
    try:
        raw = head_buffers(heads)
    except OverflowError:  # past int32 offsets (or a timestamp past int64: raised at 1)
        if len(heads) < 2:
            raise
        half = len(heads) // 2
        first, second = _head_arrays(heads[:half]), _head_arrays(heads[half:])
        return {name: pa.concat_arrays([first[name], second[name]]) for name in first}
    return {name: from_layout(raw[name], len(heads)) for name in TRACE_COLUMNS}


def window_columns(windows: Sequence[ClosedWindow]) -> dict[str, list[Any]]:
    """``spanstream_red_metrics`` columns for closed windows."""
    return {
        "WindowStart": [w.window_start_ns // NS_PER_MS for w in windows],
        "WindowEnd": [w.window_end_ns // NS_PER_MS for w in windows],
        "ServiceName": [w.service for w in windows],
        "SpanName": [w.operation for w in windows],
        "Requests": [w.requests for w in windows],
        "Errors": [w.errors for w in windows],
        "DurationP50Ms": [w.p50_ms for w in windows],
        "DurationP95Ms": [w.p95_ms for w in windows],
        "DurationP99Ms": [w.p99_ms for w in windows],
        "DurationMaxMs": [w.max_ms for w in windows],
        "LateSpans": [w.late_spans for w in windows],
    }


def anomaly_columns(alerts: Sequence[Alert]) -> dict[str, list[Any]]:
    """``spanstream_anomalies`` columns: one row per alert version."""
    return {
        "AlertId": [a.alert_id for a in alerts],
        "Version": [a.version for a in alerts],
        "Status": [a.status for a in alerts],
        "ServiceName": [a.window.service for a in alerts],
        "SpanName": [a.window.operation for a in alerts],
        "WindowStart": [a.window.window_start_ns // NS_PER_MS for a in alerts],
        "WindowEnd": [a.window.window_end_ns // NS_PER_MS for a in alerts],
        "Metrics": [[m[0] for m in a.finding.metrics] for a in alerts],
        "Observed": [{m[0]: float(m[1]) for m in a.finding.metrics} for a in alerts],
        "Expected": [{m[0]: float(m[2]) for m in a.finding.metrics} for a in alerts],
        "Score": [float(a.finding.score) for a in alerts],
        "Severity": [a.finding.severity for a in alerts],
        "Detector": [a.finding.detector for a in alerts],
        "ExemplarTraceIds": [list(a.window.exemplars) for a in alerts],
        "Summary": [a.summary for a in alerts],
        "CreatedAt": [a.window.window_end_ns // NS_PER_MS for a in alerts],
    }


#: Client-side conversions that fail on a value, whatever the store's state: a Python
#: int past Int64/UInt64 (OverflowError from the native buffers, pyarrow or
#: clickhouse-driver's packing), and pyarrow's invalid-value casts.
DATA_ERRORS: tuple[type[BaseException], ...] = (OverflowError, struct.error, pa.ArrowInvalid)
#: ClickHouse error codes that name a value the column cannot hold. Deliberately
#: few: TYPE_MISMATCH and the parse errors could also be a schema drift, which must
#: stall (and be fixed), not dead-letter every row.
#: (TOO_LARGE_STRING_SIZE, VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE, DECIMAL_OVERFLOW)
DATA_ERROR_CODES = frozenset({131, 321, 407})
_CODE = re.compile(r"\bCode: (\d+)\b")


def rejects_rows(exc: BaseException) -> bool:
    """True if ``exc`` is about the rows (permanent), not the store (retry).

    >>> rejects_rows(OverflowError("int too big to convert"))
    True
    >>> rejects_rows(SinkUnavailable("Code: 321. DB::Exception: Value out of range"))
    True
    >>> rejects_rows(SinkUnavailable("Connection refused")), rejects_rows(ValueError("x"))
    (False, False)
    """
    if isinstance(exc, DATA_ERRORS):
        return True
    code = _CODE.search(str(exc))
    return code is not None and int(code.group(1)) in DATA_ERROR_CODES


def table_writer(
    store: Store, table: str, to_columns: Callable[[Sequence[Any]], dict[str, list[Any]]]
) -> Callable[[Sequence[Any], str], None]:
    """A ``BatchingSink`` writer inserting into ``table``.

    A failure caused by the rows themselves (:func:`rejects_rows`) raises
    BatchRejected: the sink isolates those rows instead of retrying forever.
    Any other failure becomes SinkUnavailable and is retried: dropping the batch
    would lose data, and the caller has not acknowledged its input yet.
    """

    def write(rows: Sequence[Any], token: str) -> None:
        started = time.perf_counter()
        try:
            store.insert(table, to_columns(rows), dedup_token=token)
        except Exception as exc:
            if rejects_rows(exc):
                raise BatchRejected(f"{table} refused {len(rows)} rows: {exc!r}") from exc
            if isinstance(exc, SinkUnavailable):
                raise
            known = isinstance(exc, SpanstreamError)
            if not known:  # an unknown driver error must not lose the batch
                log.exception("unexpected error inserting into %s", table)
            cause = str(exc) if known else repr(exc)
            raise SinkUnavailable(f"insert into {table} failed: {cause}") from exc
        metrics.INSERT_SECONDS.labels(table).observe(time.perf_counter() - started)
        metrics.INSERT_ROWS.labels(table).observe(len(rows))

    return write


def stored_span_ids(store: Store, trace_ids: Iterable[str]) -> set[tuple[str, str]]:
    """(TraceId, SpanId) pairs already in ``otel_traces`` for these traces.

    Used only for records replayed after a crash (offsets at or below the
    last write intent), so a replay never duplicates rows that did land.
    """
    ids = sorted(set(trace_ids))
    if not ids:
        return set()
    found: set[tuple[str, str]] = set()
    for i in range(0, len(ids), 1000):
        chunk = ids[i : i + 1000]
        rows = store.query(
            f"SELECT TraceId, SpanId FROM {TRACES_TABLE} WHERE TraceId IN {{ids:Array(String)}}",
            {"ids": chunk},
        )
        found.update((str(r[0]), str(r[1])) for r in rows)
    return found


class TraceWriter:
    """The ``otel_traces`` writer of the trace sink: skips spans a replay already stored.

    ``in_replay_zone`` says whether a trace holds records at or below a write
    mark (spans of them may have landed before a crash); only those traces are
    looked up (:func:`stored_span_ids`), and their stored spans are left out.
    """

    def __init__(self, store: Store, in_replay_zone: Callable[[DecidedTrace], bool]) -> None:
        self.store = store
        self.in_replay_zone = in_replay_zone
        to_columns = trace_arrays if accepts_arrow(store) else trace_columns
        self._insert = table_writer(store, TRACES_TABLE, to_columns)

    def __call__(self, traces: Sequence[DecidedTrace], token: str) -> None:
        replayed = [t.trace_id for t in traces if self.in_replay_zone(t)]
        try:
            stored = stored_span_ids(self.store, replayed) if replayed else set()
        except SpanstreamError as exc:  # back off and retry, like a failed insert
            raise SinkUnavailable(f"replay check on otel_traces failed: {exc}") from exc
        spans = [s for t in traces for s in t.heads if (s.trace_id, s.span_id) not in stored]
        if spans:
            self._insert(spans, token)
