"""PartialAggregator: exact per-window counts, deterministic cuts, replay skipping."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.model import Span
from pipeline.windows.latency_sketch import DEFAULT_MAX_BINS
from pipeline.windows.partial import Partial, PartialAggregator, window_start_ns
from pipeline.windows.red_stats import Exemplar, WindowStats
from tests.unit.windows.conftest import make_span

NS = 1_000_000_000
SpanFactory = Callable[..., Span]


@pytest.mark.parametrize(
    ("spans", "expected"),
    [
        # (ts_s, ms, error, operation) -> {(operation, window_start_s): (requests, errors)}
        ([], {}),
        ([(1, 5, False, "a")], {("a", 0): (1, 0)}),
        ([(0, 5, True, "a"), (59.999, 5, False, "a")], {("a", 0): (2, 1)}),
        ([(59.999, 5, False, "a"), (60, 5, True, "a")], {("a", 0): (1, 0), ("a", 60): (1, 1)}),
        ([(1, 5, True, "a"), (2, 5, True, "b")], {("a", 0): (1, 1), ("b", 0): (1, 1)}),
        ([(-1, 5, False, "a")], {("a", -60): (1, 0)}),
    ],
)
def test_counts_and_errors_per_window(
    span: SpanFactory, spans: list[tuple[float, float, bool, str]], expected: dict[object, object]
) -> None:
    agg = PartialAggregator(60, source_partition=3)
    for offset, (ts, ms, err, op) in enumerate(spans):
        assert agg.add(span(ts, ms, error=err, operation=op), offset)
    got = {(p.operation, p.window_start_ns // NS): (p.requests, p.errors) for p in agg.cut()}
    assert got == expected


def test_partial_fields(span: SpanFactory) -> None:
    agg = PartialAggregator(60, source_partition=2, skip_through=9)
    for offset, (ts, ms) in zip([10, 10, 12], [(61, 4.0), (65, 80.0), (62, 2.5)], strict=True):
        agg.add(span(ts, ms), offset)
    (p,) = agg.cut(offset=15)
    assert (p.window_start_ns, p.window_end_ns) == (60 * NS, 120 * NS)
    assert (p.source_partition, p.first_offset, p.last_offset) == (2, 10, 15)
    assert p.watermark_ns == 65 * NS
    assert p.max_ms == 80.0
    assert p.sketch.count == 3
    assert [e.duration_ns for e in p.exemplars] == [80_000_000, 4_000_000, 2_500_000]


def test_ranges_tile_the_offsets(span: SpanFactory) -> None:
    agg = PartialAggregator(60, source_partition=0)
    agg.add(span(1, 1), 5)
    first = agg.cut()
    agg.add(span(2, 1), 8)
    second = agg.cut(offset=11)
    assert [(p.first_offset, p.last_offset) for p in first + second] == [(5, 5), (6, 11)]
    assert agg.through == 11


def test_exemplars_prefer_errors_then_slowest_one_per_trace(span: SpanFactory) -> None:
    agg = PartialAggregator(60, source_partition=0, max_exemplars=3)
    rows = [(1, 900, False, "t1"), (2, 5, True, "t2"), (3, 800, False, "t3"),
            (4, 950, False, "t1"), (5, 1, True, "t4"), (6, 10, False, "t5")]  # fmt: skip
    for offset, (ts, ms, err, trace) in enumerate(rows):
        agg.add(span(ts, ms, error=err, trace=trace), offset)
    (p,) = agg.cut()
    assert p.exemplars == (
        Exemplar("t2", 5_000_000, True),
        Exemplar("t4", 1_000_000, True),
        Exemplar("t1", 950_000_000, False),
    )


def feed(agg: PartialAggregator, spans: list[Span], start: int, cuts: set[int]) -> list[Partial]:
    out: list[Partial] = []
    for offset in range(start, len(spans)):
        agg.add(spans[offset], offset)
        if offset in cuts:
            out += agg.cut(offset)
    return out


def test_replay_with_recorded_cut_gives_identical_bytes(span: SpanFactory) -> None:
    spans = [
        span(ts, 3 + ts % 7, error=ts % 5 == 0, operation=f"op{ts % 3}") for ts in range(0, 200, 3)
    ]
    original = feed(PartialAggregator(60, 1), spans, 0, cuts={20, 45, len(spans) - 1})
    # Crash after sending part of the cut at 45; restart from an older committed
    # offset (12), knowing the cut at 20 completed and the intent to cut at 45.
    replayed = feed(PartialAggregator(60, 1, skip_through=20), spans, 12, {45, len(spans) - 1})
    tail = [p for p in original if p.first_offset > 20]
    assert [p.to_json() for p in replayed] == [p.to_json() for p in tail]
    assert len(tail) > 3


def test_skips_already_cut_offsets_and_rejects_reordering(span: SpanFactory) -> None:
    agg = PartialAggregator(60, 0, skip_through=4)
    assert not agg.add(span(1, 1), 4)
    assert agg.add(span(1, 1), 5)
    assert agg.add(span(1, 1), 5)  # same record, several spans
    assert agg.add(span(1, 1), 7)
    with pytest.raises(ValueError, match="offset 6"):
        agg.add(span(1, 1), 6)
    with pytest.raises(ValueError, match="behind"):
        agg.cut(offset=4)
    assert agg.pending_offset == 7
    assert [p.requests for p in agg.cut()] == [3]
    assert agg.cut() == []


def test_json_round_trip(span: SpanFactory) -> None:
    agg = PartialAggregator(60, 7)
    for offset in range(20):
        agg.add(span(offset, offset * 1.5, error=offset % 4 == 0), offset)
    for p in agg.cut():
        back = Partial.from_json(p.to_json())
        assert back == p
        assert back.to_json() == p.to_json()


def test_window_start_floors_negative_times() -> None:
    assert window_start_ns(-1, 60 * NS) == -60 * NS
    assert window_start_ns(60 * NS, 60 * NS) == 60 * NS


def test_a_span_from_a_clock_running_ahead_counts_but_caps_the_watermark(
    span: SpanFactory,
) -> None:
    agg = PartialAggregator(60, source_partition=0)
    cap = 100 * NS
    agg.add(span(10.0, 5), 0, watermark_cap_ns=cap)
    agg.add(span(700.0, 5), 1, watermark_cap_ns=cap)  # ten minutes ahead of our clock
    partials = agg.cut()
    assert [(p.window_start_ns // NS, p.requests) for p in partials] == [(0, 1), (660, 1)]
    assert {p.watermark_ns for p in partials} == {cap}


def test_add_record_is_add_for_each_span_of_the_record(span: SpanFactory) -> None:
    records = [
        [span(1, 5, error=True, operation="a"), span(2, 50, operation="a"), span(70, 3)],
        [],
        [span(3, 9, operation="b", trace="ef" * 16), span(650, 1)],  # beyond the cap
    ]
    by_record, by_span = PartialAggregator(60, 0, 2), PartialAggregator(60, 0, 2)
    cap = 600 * 10**9
    for offset, spans in enumerate(records, start=3):
        assert by_record.add_record(spans, offset, cap)
        for s in spans:
            by_span.add(s, offset, cap)
    assert [p.to_json() for p in by_record.cut(5)] == [p.to_json() for p in by_span.cut(5)]
    assert not by_record.add_record(records[0], 4)  # at or below the cut: a replay, skipped


#: Records of spans over two windows and two operations, with ties (shared by the native test).
record_spans = st.lists(
    st.tuples(
        st.sampled_from(["a", "b"]),  # operation
        st.sampled_from([0.5, 30.0, 61.0]),  # start (s): two windows
        st.sampled_from([0.0, 0.0001, 1.0, 5.0, 5.0, 250.0]),  # ms, with ties
        st.booleans(),  # error
        st.sampled_from(["1" * 32, "2" * 32, "3" * 32, "4" * 32]),  # trace
    ),
    max_size=12,
)


Summary = dict[tuple[str, str, int], tuple[object, ...]]


def _reference(spans: list[Span], max_exemplars: int) -> Summary:
    """The definition the native loop is held to: WindowStats.add, span by span."""
    expected: dict[tuple[str, str, int], WindowStats] = {}
    for s in spans:
        key = (s.service_name, s.operation, window_start_ns(s.timestamp_ns, 60 * NS))
        stats = expected.setdefault(key, WindowStats(max_exemplars))
        stats.add(max(s.duration_ns, 0), s.is_error, s.trace_id)
    return {
        key: (w.requests, w.errors, w.sketch.to_dict(), w.max_ms, w.exemplars)
        for key, w in expected.items()
    }


def _as_stats(partials: list[Partial]) -> Summary:
    return {
        (p.service, p.operation, p.window_start_ns): (
            p.requests,
            p.errors,
            p.sketch.to_dict(),
            p.max_ms,
            p.exemplars,
        )
        for p in partials
    }


@settings(max_examples=300, deadline=None)
@given(st.lists(record_spans, min_size=1, max_size=8), st.integers(1, 3))
def test_add_record_equals_window_stats_add_span_by_span(
    records: list[list[tuple[str, float, float, bool, str]]], max_exemplars: int
) -> None:
    aggregator = PartialAggregator(60, 0, max_exemplars)
    every: list[Span] = []
    for offset, record in enumerate(records):
        spans = [make_span(ts, ms, error=e, operation=op, trace=t) for op, ts, ms, e, t in record]
        aggregator.add_record(spans, offset)
        every.extend(spans)
    assert _as_stats(aggregator.cut()) == _reference(every, max_exemplars)


def test_a_sketch_over_its_bucket_bound_folds_like_python() -> None:
    # 2,100 durations a factor 1.05 apart: more buckets than DEFAULT_MAX_BINS (2,048).
    every = [make_span(1, 1e-6 * 1.05**i, trace=f"{i:032x}") for i in range(2100)]
    aggregator = PartialAggregator(60, 0)
    aggregator.add_record(every, 0)
    (partial,) = aggregator.cut()
    assert partial.sketch.to_dict() == _reference(every, 3)[("shop", "GET /cart", 0)][2]
    assert len(partial.sketch.to_dict()["k"]) == DEFAULT_MAX_BINS


# --- latency thresholds of SLOs (exact counts under each) ------------------------------------

MS_NS = 1_000_000


def test_spans_at_most_each_threshold_are_counted_per_service(span: SpanFactory) -> None:
    thresholds = {"shop": (100 * MS_NS, 300 * MS_NS)}
    agg = PartialAggregator(60, 0, thresholds=thresholds)
    for offset, ms in enumerate([50, 100, 100.000001, 299, 300, 301, 5000]):
        agg.add(span(1, ms), offset)
    agg.add(span(2, 10, service="cart"), 9)
    cart, shop = agg.cut()
    assert cart.under == ()  # no SLO on cart: nothing counted, nothing written
    assert shop.under == ((100 * MS_NS, 2), (300 * MS_NS, 5))
    assert shop.stats(3).under == {100 * MS_NS: (2, 7), 300 * MS_NS: (5, 7)}


def test_a_negative_duration_counts_as_zero_under_every_threshold(span: SpanFactory) -> None:
    agg = PartialAggregator(60, 0, thresholds={"shop": (1,)})
    agg.add(span(1, -5), 0)
    (p,) = agg.cut()
    assert p.under == ((1, 1),)


def test_under_round_trips_and_a_partial_without_it_reads_as_before(span: SpanFactory) -> None:
    agg = PartialAggregator(60, 0, thresholds={"shop": (100 * MS_NS,)})
    agg.add(span(1, 50), 0)
    (p,) = agg.cut()
    assert Partial.from_json(p.to_json()) == p
    older = PartialAggregator(60, 0)
    older.add(span(1, 50), 0)
    (plain,) = older.cut()
    assert b"under" not in plain.to_json()  # byte-identical to partials before SLOs
    assert Partial.from_json(plain.to_json()).under == ()


@pytest.mark.parametrize(
    "under",
    [
        [[100, 2]],  # more than the 1 request
        [[100, 1], [100, 0]],  # a threshold twice
        [[100]],
        "many",
        [[-1, 0]],
        [[1, 0]] * 65,
    ],
)
def test_a_bad_under_field_is_refused(span: SpanFactory, under: object) -> None:
    agg = PartialAggregator(60, 0)
    agg.add(span(1, 50), 0)
    (p,) = agg.cut()
    data = {**p.to_dict(), "under": under}
    with pytest.raises(ValueError):
        Partial.from_dict(data)


def test_window_stats_merge_under_with_its_coverage() -> None:
    a, b = WindowStats(), WindowStats()
    a.requests, b.requests = 4, 6
    a.under = {100: (3, 4)}
    b.under = {100: (1, 6), 200: (6, 6)}
    a.merge(b)
    assert a.under == {100: (4, 10), 200: (6, 6)}
    back = WindowStats.from_dict(a.to_dict())
    assert back.under == a.under
    plain = WindowStats()
    assert "under" not in plain.to_dict()
    bad = {**a.to_dict(), "under": [[100, 11, 10]]}
    with pytest.raises(ValueError):
        WindowStats.from_dict(bad)
