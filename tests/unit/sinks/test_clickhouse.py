"""otel_traces columns of kept spans: native rows from heads equal the Span-built rows."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, cast

import pyarrow as pa
import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from pipeline import native
from pipeline.enrich import Enricher
from pipeline.errors import BatchRejected, SinkUnavailable
from pipeline.generate.messages import Framing, to_messages
from pipeline.generate.schedule import StreamSpec, generate_traces
from pipeline.model import SpanHead
from pipeline.otlp import decode_message
from pipeline.otlp.heads import head_buffers, head_columns, head_of, to_span
from pipeline.otlp.samples import proto_request, proto_span
from pipeline.sampling.buffer import Cause, DecidedTrace
from pipeline.sampling.policy import Decision
from pipeline.sinks import clickhouse
from pipeline.sinks.clickhouse import (
    TRACE_COLUMNS,
    TRACE_TYPES,
    arrow_columns_of,
    span_columns,
    trace_arrays,
    trace_columns,
)
from pipeline.store.arrow import arrow_type, column_array, from_layout
from pipeline.store.base import QueryError, Store
from tests.unit.otlp.test_heads import EDGE_SPANS


def _heads(count: int) -> list[SpanHead]:
    spec = StreamSpec(seed=4, start_ns=1_700_000_000 * 10**9, rate=50.0, count=count)
    enricher = Enricher()
    return [
        h
        for m in to_messages(generate_traces(spec), Framing("otlp_proto", seed=4))
        for h in decode_message(m.value, None, max_bytes=1 << 24, enricher=enricher).spans
    ]


def _rows(columns: dict[str, list[object]]) -> list[tuple[object, ...]]:
    return sorted(zip(*columns.values(), strict=True), key=lambda r: (r[1], r[2]))  # ids


def test_generated_heads_give_the_rows_their_spans_give() -> None:
    heads = _heads(60)
    spans = [to_span(h) for h in heads]
    assert sum(len(s.events) for s in spans) > 0 and sum(len(s.links) for s in spans) > 0
    assert trace_columns(heads) == span_columns(spans)


def test_built_spans_and_python_heads_mix_with_native_heads() -> None:
    heads = _heads(20)
    mixed = [head_of(to_span(h)) if i % 2 else h for i, h in enumerate(heads)]
    columns = trace_columns(mixed)
    assert list(columns) == list(span_columns([]))
    assert _rows(columns) == _rows(span_columns([to_span(h) for h in heads]))


SCHEMA = Path(__file__).resolve().parents[3] / "schemas" / "clickhouse" / "0001_otel_traces.sql"


def _sql_columns() -> dict[str, str]:
    """The otel_traces columns the SQL declares (Nested ones as arrays; no ALIAS columns)."""
    body = SCHEMA.read_text().split("CREATE TABLE IF NOT EXISTS otel_traces (", 1)[1]
    columns: dict[str, str] = {}
    nested = ""
    for line in body.splitlines():
        line = re.sub(r"\s*CODEC\(.*\)\s*,?$|,$", "", line.strip())
        if not line or line.startswith(("INDEX", ")")) or " ALIAS " in line:
            if line.startswith(")"):
                nested = ""
            if line.startswith(") ENGINE"):
                break
            continue
        name, _, ch_type = line.partition(" ")
        if ch_type.startswith("Nested"):
            nested = name
        else:
            columns[f"{nested}.{name}" if nested else name] = (
                f"Array({ch_type})" if nested else ch_type
            )
    return columns


def test_the_otel_traces_columns_are_the_sqls_everywhere() -> None:
    """Declared once (TRACE_TYPES, checked against the SQL): the Python rows, the native
    rows (_columns.h) and the native Arrow layouts (_arrow.h) write exactly these."""
    assert _sql_columns() == TRACE_TYPES
    assert list(span_columns([])) == list(TRACE_COLUMNS)
    assert list(head_columns([])) == list(TRACE_COLUMNS)
    layouts = head_buffers([])
    assert set(layouts) == set(TRACE_COLUMNS)
    for name, ch_type in TRACE_TYPES.items():
        expected = arrow_type(ch_type)
        assert from_layout(layouts[name], 0).type == expected, name
    assert [layouts[n][0] for n in TRACE_COLUMNS] == [
        arrow_columns_of([])[n][0] for n in TRACE_COLUMNS
    ]


def _as_arrays(columns: dict[str, list[Any]]) -> dict[str, pa.Array]:
    return {k: column_array(v, arrow_type(TRACE_TYPES[k])) for k, v in columns.items()}


def _equal(got: dict[str, pa.Array], expected: dict[str, pa.Array]) -> list[str]:
    """Names of the columns that differ (type or values); [] when all are equal."""
    assert list(got) == list(expected)
    return [k for k in expected if not got[k].equals(expected[k])]


def test_native_arrays_equal_the_list_columns_as_arrow() -> None:
    heads = _heads(60)
    assert _equal(trace_arrays(heads), _as_arrays(trace_columns(heads))) == []


def test_native_arrays_of_mixed_heads_hold_the_same_rows() -> None:
    heads = _heads(20)
    mixed = [head_of(to_span(h)) if i % 2 else h for i, h in enumerate(heads)]
    got = pa.Table.from_pydict(trace_arrays(mixed)).sort_by([("SpanId", "ascending")])
    reference = _as_arrays(span_columns([to_span(h) for h in heads]))
    expected = pa.Table.from_pydict(reference).sort_by([("SpanId", "ascending")])
    assert got.equals(expected)


def test_no_spans_give_empty_typed_arrays() -> None:
    arrays = trace_arrays([])
    assert {k: len(v) for k, v in arrays.items()} == dict.fromkeys(TRACE_TYPES, 0)
    assert _equal(arrays, _as_arrays(span_columns([]))) == []


def test_a_batch_past_int32_offsets_is_split_and_joined(monkeypatch: pytest.MonkeyPatch) -> None:
    heads = _heads(10)
    calls: list[int] = []

    def small_offsets(batch: list[SpanHead]) -> dict[str, tuple[Any, ...]]:
        calls.append(len(batch))
        if len(batch) > 7:  # as if these heads' data passed 2 GiB
            raise OverflowError("Arrow int32 offsets overflow")
        return head_buffers(batch)

    monkeypatch.setattr(clickhouse, "head_buffers", small_offsets)
    got = trace_arrays(heads)
    assert calls[0] == len(heads) > 7 and sum(c for c in calls if c <= 7) == len(heads)
    monkeypatch.undo()
    assert _equal(got, trace_arrays(heads)) == []


def test_a_timestamp_past_int64_is_an_error_not_a_wrong_row() -> None:
    head = _heads(1)[0]
    late = native.SpanHead(
        head.trace_id, head.span_id, head.parent_span_id, 2**63, head.duration_ns,
        head.service_name, head.operation, head.is_error, head.row_bytes, head.value,
        head.offset, head.length, head.ctx, None,
    )  # fmt: skip
    with pytest.raises(OverflowError):
        trace_arrays([late])


def test_rows_needing_python_mid_batch_are_rolled_back_and_rewritten() -> None:
    """Heads whose values only the kv_string callback renders, or whose kind or status
    is outside the native tables, sit between plain heads: rows written without the
    GIL stop there, the partial row is undone and written again with it."""
    enricher = Enricher()
    plain = _heads(6)
    spans = [EDGE_SPANS[name]() for name in ("non-string attributes", "nested attributes")]
    spans += [EDGE_SPANS["NaN inside an array"](), proto_span(kind=12, status=Status(code=9))]
    odd: list[SpanHead] = []
    for span in spans:
        value = proto_request([span]).SerializeToString()
        odd += decode_message(value, None, max_bytes=1 << 24, enricher=enricher).spans
    assert all(h.span is None for h in odd)
    mixed = [h for pair in zip(plain, odd * len(plain), strict=False) for h in pair] + plain
    assert _equal(trace_arrays(mixed), _as_arrays(trace_columns(mixed))) == []


class _Store:
    """A store whose insert fails with ``error`` after building the rows."""

    accepts_arrow = True

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error

    def insert(self, table: str, columns: Any, dedup_token: str | None = None) -> int:
        if self.error is not None:
            raise self.error
        return 0


def _late_head() -> SpanHead:
    head = _heads(1)[0]
    return native.SpanHead(
        head.trace_id, head.span_id, head.parent_span_id, 2**63, head.duration_ns,
        head.service_name, head.operation, head.is_error, head.row_bytes, head.value,
        head.offset, head.length, head.ctx, None,
    )  # fmt: skip


def test_rows_the_store_cannot_hold_are_rejected_not_retried() -> None:
    """Issue #12: the OverflowError of a 2^63 timestamp was retried as an outage, forever."""
    write = clickhouse.table_writer(cast(Store, _Store()), "otel_traces", trace_arrays)
    with pytest.raises(BatchRejected, match="OverflowError"):
        write([_late_head()], "t")


@pytest.mark.parametrize(
    ("error", "rejected"),
    [
        (OverflowError("int too big to convert"), True),
        (pa.ArrowInvalid("Integer value 1 not in range"), True),
        (SinkUnavailable("chdb insert failed: Code: 321. DB::Exception: out of range"), True),
        (SinkUnavailable("chdb insert failed: Code: 241. DB::Exception: Memory limit"), False),
        (ConnectionRefusedError("refused"), False),
        (QueryError("Code: 60. Table default.otel_traces does not exist"), False),
    ],
)
def test_only_errors_about_the_rows_are_permanent(error: Exception, rejected: bool) -> None:
    write = clickhouse.table_writer(cast(Store, _Store(error)), "otel_traces", trace_arrays)
    expected: type[Exception] = BatchRejected if rejected else SinkUnavailable
    with pytest.raises(expected):
        write([next(iter(_heads(1)))], "t")


class ReplayStore:
    """A store holding some (TraceId, SpanId) pairs already: a crash after an insert landed."""

    def __init__(self, stored: set[tuple[str, str]]) -> None:
        self.stored = stored
        self.queried: list[list[str]] = []
        self.inserted: list[dict[str, Any]] = []

    def query(self, sql: str, params: Any = None) -> list[tuple[str, str]]:
        self.queried.append(list(params["ids"]))
        return [pair for pair in self.stored if pair[0] in params["ids"]]

    def insert(self, table: str, columns: Any, dedup_token: str | None = None) -> int:
        self.inserted.append(dict(columns))
        return len(next(iter(columns.values())))


def test_the_trace_writer_leaves_out_only_replayed_spans_already_stored() -> None:
    heads = _heads(8)
    by_trace: dict[str, list[SpanHead]] = {}
    for head in heads:
        by_trace.setdefault(head.trace_id, []).append(head)
    (replayed, replayed_heads), (fresh, fresh_heads) = list(by_trace.items())[:2]
    store = ReplayStore({(replayed, replayed_heads[0].span_id)})
    traces = [
        DecidedTrace(replayed, Decision.KEEP, "p", tuple(replayed_heads), frozenset(), Cause.TIMER),
        DecidedTrace(fresh, Decision.KEEP, "p", tuple(fresh_heads), frozenset(), Cause.TIMER),
    ]
    writer = clickhouse.TraceWriter(cast(Store, store), lambda t: t.trace_id == replayed)

    writer(traces, "token")

    assert store.queried == [[replayed]]  # only traces in the replay zone are looked up
    (columns,) = store.inserted
    written = set(zip(columns["TraceId"], columns["SpanId"], strict=True))
    expected = {(h.trace_id, h.span_id) for h in [*replayed_heads[1:], *fresh_heads]}
    assert written == expected
