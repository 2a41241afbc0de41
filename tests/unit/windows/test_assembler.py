"""WindowAssembler: exactly-once merge, watermark closing, late, idle and empty windows."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import REGISTRY

from pipeline.clock import ManualClock
from pipeline.model import Span
from pipeline.windows import (
    ClosedWindow,
    Hold,
    MergeResult,
    Partial,
    PartialAggregator,
    SeriesState,
    WindowAssembler,
)

NS = 1_000_000_000
SpanFactory = Callable[..., Span]


def assembler(clock: ManualClock | None = None, **kwargs: Any) -> WindowAssembler:
    kwargs.setdefault("allowed_lateness_seconds", 30)
    kwargs.setdefault("startup_hold_seconds", 0)
    return WindowAssembler(60, clock=clock or ManualClock(), **kwargs)


def partials_of(spans: list[Span], source: int = 0, first_offset: int = 0) -> list[Partial]:
    agg = PartialAggregator(60, source)
    for offset, s in enumerate(spans, start=first_offset):
        agg.add(s, offset)
    return agg.cut()


class Feed:
    """One source partition: each cut() aggregates spans and merges the partials."""

    def __init__(self, asm: WindowAssembler, source: int) -> None:
        self.asm = asm
        self.agg = PartialAggregator(60, source)
        self.offset = 0

    def cut(self, *spans: Span) -> list[Partial]:
        for s in spans:
            self.agg.add(s, self.offset)
            self.offset += 1
        partials = self.agg.cut()
        self.results = [self.asm.merge(p) for p in partials]
        return partials


def summary(windows: list[ClosedWindow]) -> list[tuple[str, int, int, int, int]]:
    return [
        (w.operation, w.window_start_ns // NS, w.requests, w.errors, w.late_spans) for w in windows
    ]


def random_spans(span: SpanFactory, n: int, seed: int) -> list[Span]:
    rnd = random.Random(seed)
    return [
        span(
            i * 0.4 + rnd.random(),
            rnd.lognormvariate(3, 1.2),
            error=rnd.random() < 0.1,
            operation=rnd.choice(["GET /a", "POST /b", "GET /c"]),
            trace=f"{rnd.getrandbits(128):032x}",
        )
        for i in range(n)
    ]


def test_three_source_partitions_equal_one_aggregator(span: SpanFactory) -> None:
    spans = random_spans(span, 1500, seed=7)
    clock = ManualClock()
    single, split = assembler(clock), assembler(clock)
    for p in partials_of(spans):
        single.merge(p)
    aggs = [PartialAggregator(60, source) for source in range(3)]
    for offset, s in enumerate(spans):
        source = offset % 3
        aggs[source].add(s, offset)
        if offset % 97 == 0:  # many small cuts, interleaved across sources
            for p in aggs[source].cut():
                assert split.merge(p) is MergeResult.MERGED
    for agg in aggs:
        for p in agg.cut():
            assert split.merge(p) is MergeResult.MERGED
    clock.advance(10_000)  # idle: everything closes
    expected = single.close_ready()
    assert sum(w.requests for w in expected) == len(spans)
    assert split.close_ready() == expected


def test_replayed_partials_are_duplicates_even_after_close(span: SpanFactory) -> None:
    clock = ManualClock()
    asm = assembler(clock)
    src = Feed(asm, source=4)
    first = src.cut(span(1, 5), span(61, 5))
    src.cut(span(200, 5))
    clock.advance(60)  # idle: watermark 260 s
    closed = asm.close_ready()
    assert summary(closed) == [("GET /cart", s, n, 0, 0) for s, n in [(0, 1), (60, 1), (120, 0)]]
    assert [asm.merge(p) for p in reversed(first)] == [MergeResult.DUPLICATE] * 2
    assert (asm.duplicates, asm.late_partials, asm.late_spans) == (2, 0, 0)
    state = asm.state("shop", "GET /cart")
    assert state is not None and state.windows[180 * NS].requests == 1


def test_late_partial_is_counted_into_next_window(span: SpanFactory) -> None:
    asm = assembler()
    src = Feed(asm, 0)
    for ts in (1, 100, 200):
        src.cut(span(ts, 5))
    assert summary(asm.close_ready()) == [("GET /cart", 0, 1, 0, 0)]
    src.cut(span(2, 5), span(3, 5), span(300, 5))  # out-of-order spans in the partition
    assert src.results == [MergeResult.LATE, MergeResult.MERGED]
    assert (asm.late_partials, asm.late_spans) == (1, 2)
    src.cut(span(400, 5))  # applies watermark 300 s
    assert summary(asm.close_ready())[0] == ("GET /cart", 60, 1, 0, 2)


def test_idle_sources_let_the_last_windows_close(span: SpanFactory) -> None:
    clock = ManualClock()
    asm = assembler(clock, idle_close_seconds=20)
    Feed(asm, 0).cut(span(10, 5), span(50, 5))
    clock.advance(19)
    assert asm.watermark.global_ns() == 0  # one cut, not idle yet: its lowest window start
    clock.advance(1)
    assert asm.watermark.global_ns() == 70 * NS
    assert asm.close_ready() == []  # 70 s < window end 60 + lateness 30
    clock.advance(20)
    assert summary(asm.close_ready()) == [("GET /cart", 0, 2, 0, 0)]


def test_lagging_active_source_holds_the_watermark(span: SpanFactory) -> None:
    clock = ManualClock()
    asm = assembler(clock, idle_close_seconds=30)
    fast, slow = Feed(asm, 0), Feed(asm, 1)
    slow.cut(span(5, 5))
    fast.cut(span(400, 5))
    fast.cut(span(500, 5))
    assert asm.watermark.global_ns() == 0  # slow's first cut vouches for window 0 only
    slow.cut(span(6, 5))
    assert asm.watermark.global_ns() == 5 * NS
    assert asm.close_ready() == []
    slow.cut(span(40, 5))
    assert slow.results == [MergeResult.MERGED]  # caught up in time: not late
    clock.advance(25)
    fast.cut(span(510, 5))
    clock.advance(10)  # slow is idle now, fast is not: watermark 500 s
    assert asm.watermark.global_ns() == 500 * NS
    assert summary(asm.close_ready())[:2] == [("GET /cart", 0, 3, 0, 0), ("GET /cart", 60, 0, 0, 0)]


def test_startup_hold_waits_for_every_source(span: SpanFactory) -> None:
    clock = ManualClock()
    asm = assembler(clock, idle_close_seconds=30, startup_hold_seconds=10)
    fast, slow = Feed(asm, 0), Feed(asm, 1)
    fast.cut(span(400, 5))
    fast.cut(span(500, 5))
    clock.advance(5)
    slow.cut(span(5, 5))
    assert slow.results == [MergeResult.MERGED]
    assert asm.watermark.global_ns() is None
    clock.advance(5)
    assert asm.watermark.global_ns() == 0
    assert asm.close_ready() == []


@pytest.mark.parametrize(
    ("max_empty", "expected_starts", "forgotten"),
    [
        (0, [0], True),
        (2, [0, 60, 120], True),
        (10, [0, 60, 120, 180, 240, 300], False),
    ],
)
def test_empty_windows_are_emitted_up_to_a_bound(
    span: SpanFactory, max_empty: int, expected_starts: list[int], forgotten: bool
) -> None:
    clock = ManualClock()
    asm = assembler(clock, max_empty_windows=max_empty, idle_close_seconds=5)
    src = Feed(asm, 0)
    src.cut(span(1, 5), span(1, 5, operation="other"))
    clock.advance(200)  # GET /cart's channel goes quiet: it follows the global watermark
    for ts in (390, 391):
        src.cut(span(ts, 5, operation="other"))
    closed = [w for w in asm.close_ready() if w.operation == "GET /cart"]
    assert [w.window_start_ns // NS for w in closed] == expected_starts
    assert all(w.requests == 0 and w.p99_ms == 0.0 for w in closed[1:])
    assert (asm.state("shop", "GET /cart") is None) == forgotten


def test_traffic_after_a_quiet_period_restarts_the_series(span: SpanFactory) -> None:
    clock = ManualClock()
    asm = assembler(clock, max_empty_windows=1, idle_close_seconds=5)
    src = Feed(asm, 0)
    src.cut(span(1, 5), span(1, 5, operation="tick"))
    clock.advance(500)  # at wall-clock pace (no backlog): GET /cart's channel goes quiet
    for ts in (1000, 1001):
        src.cut(span(ts, 5, operation="tick"))
    cart = [w for w in summary(asm.close_ready()) if w[0] == "GET /cart"]
    assert cart == [("GET /cart", 0, 1, 0, 0), ("GET /cart", 60, 0, 0, 0)]
    assert asm.state("shop", "GET /cart") is None
    src.cut(span(1001, 7))
    assert src.results == [MergeResult.MERGED]
    clock.advance(50)
    for ts in (1100, 1101):
        src.cut(span(ts, 5, operation="tick"))
    assert ("GET /cart", 960, 1, 0, 0) in summary(asm.close_ready())


def test_state_survives_a_restart_through_the_store(span: SpanFactory) -> None:
    store: dict[str, dict[str, Any]] = {}
    clock = ManualClock()
    batch = partials_of([span(1, 5), span(2, 9, error=True)], source=3)
    assert assembler(clock, store=store).merge(batch[0]) is MergeResult.MERGED
    # The store holds plain JSON: a Faust table with a JSON serializer would do.
    store = json.loads(json.dumps(store))
    second = assembler(clock, store=store)
    assert second.merge(batch[0]) is MergeResult.DUPLICATE
    second.merge(partials_of([span(200, 1)], source=3, first_offset=5)[0])
    clock.advance(60)
    w = second.close_ready()[0]
    assert (w.window_start_ns, w.requests, w.errors, w.error_ratio, w.max_ms) == (0, 2, 1, 0.5, 9.0)
    assert list(store) == ['["shop","GET /cart"]']


def test_recovered_windows_close_after_a_restart_that_receives_no_partial(
    span: SpanFactory,
) -> None:
    store: dict[str, dict[str, Any]] = {}
    clock = ManualClock()
    first = assembler(clock, store=store, idle_close_seconds=60)
    for p in partials_of([span(1, 5), span(70, 9)], source=0):
        first.merge(p)
    assert first.close_ready() == []  # the first cut only vouches for its lowest start
    restarted = assembler(clock, store=store, idle_close_seconds=60, startup_hold_seconds=30)
    clock.advance(89)
    assert restarted.close_ready() == []  # not idle long enough: partials may still come
    clock.advance(1)
    # The highest open start (70 s -> window 60) plus the 90 s idle passes both windows.
    closed = restarted.close_ready()
    assert summary(closed) == [("GET /cart", 0, 1, 0, 0), ("GET /cart", 60, 1, 0, 0)]


def test_a_restart_with_nothing_recovered_keeps_no_watermark() -> None:
    clock = ManualClock()
    asm = assembler(clock)
    clock.advance(3600)
    assert (asm.watermark.global_ns(), asm.close_ready()) == (None, [])


@pytest.mark.parametrize("held", [True, False])
def test_a_held_source_keeps_its_windows_open_through_a_pause(
    span: SpanFactory, held: bool
) -> None:
    clock = ManualClock()
    asm = assembler(clock, idle_close_seconds=10)
    feed = Feed(asm, source=0)
    for second in range(0, 70, 5):  # a live stream: a cut every 5 s, event time = wall
        feed.cut(span(second, 5))
        clock.advance(5)
    closed_before = summary(asm.close_ready())
    for _ in range(24):  # 120 s paused: consumption stopped, the ingest still alive
        if held:
            asm.hold(Hold(0))
        clock.advance(5)
        closed_before += summary(asm.close_ready())
    starts = [start for _, start, *_ in closed_before]
    # Held: the window of the last cut (60 s) waits for the backlog; not held: the
    # stream counts as stopped and event time runs on with the wall clock.
    assert (60 in starts) is not held
    feed.cut(span(66, 5))  # the backlog after the pause
    assert feed.results == [MergeResult.MERGED if held else MergeResult.LATE]


def test_a_hold_before_anything_was_heard_changes_nothing(span: SpanFactory) -> None:
    clock = ManualClock()
    asm = assembler(clock)
    asm.hold(Hold(4))
    clock.advance(3600)
    assert (asm.watermark.global_ns(), asm.close_ready()) == (None, [])


def test_a_source_held_before_its_first_partial_holds_the_watermark(span: SpanFactory) -> None:
    clock = ManualClock()
    asm = assembler(clock, idle_close_seconds=10)
    fast, slow = Feed(asm, source=0), Feed(asm, source=1)
    for second in range(0, 30, 5):
        fast.cut(span(second, 5))
        clock.advance(5)
    asm.close_ready()
    for _ in range(6):  # source 1 paused before it sent anything
        asm.hold(Hold(0))
        asm.hold(Hold(1))
        clock.advance(5)
        asm.close_ready()
    for second in range(30, 600, 30):  # source 0's backlog races ahead
        fast.cut(span(second, 5))
        asm.close_ready()
    slow.cut(span(12, 5))  # source 1's first records: behind, but waited for
    assert slow.results == [MergeResult.MERGED]


def test_series_state_and_closed_window_json_round_trip(span: SpanFactory) -> None:
    clock = ManualClock()
    asm = assembler(clock)
    for source in range(3):
        for p in partials_of(random_spans(span, 200, seed=source), source=source):
            asm.merge(p)
    for operation in ["GET /a", "POST /b", "GET /c"]:
        state = asm.state("shop", operation)
        assert state is not None
        raw = json.dumps(state.to_dict())
        assert json.dumps(SeriesState.from_dict(json.loads(raw)).to_dict()) == raw
    clock.advance(1000)
    closed = asm.close_ready()
    assert len(closed) >= 6
    for w in closed:
        assert ClosedWindow.from_dict(json.loads(json.dumps(w.to_dict()))) == w


def test_closed_windows_come_in_deterministic_order(span: SpanFactory) -> None:
    clock = ManualClock()
    asm = assembler(clock)
    Feed(asm, 0).cut(*[span(ts, 1, service=svc) for ts in (1, 70) for svc in ("b", "a")])
    clock.advance(100)
    keys = [(w.window_start_ns // NS, w.service) for w in asm.close_ready()]
    assert keys == [(0, "a"), (0, "b"), (60, "a"), (60, "b")]


def test_rejects_partials_of_another_window_size(span: SpanFactory) -> None:
    agg = PartialAggregator(30, 0)
    agg.add(span(1, 1), 0)
    with pytest.raises(ValueError, match="window size"):
        assembler().merge(agg.cut()[0])


def test_closed_window_quantiles_within_sketch_accuracy(span: SpanFactory) -> None:
    rnd = random.Random(3)
    durations = [rnd.lognormvariate(4, 1.5) for _ in range(2000)]
    clock = ManualClock()
    asm = assembler(clock)
    for source in range(3):
        mine = [span(10 + i * 0.01, ms) for i, ms in enumerate(durations) if i % 3 == source]
        for p in partials_of(mine, source=source):
            asm.merge(p)
    clock.advance(1000)
    w = asm.close_ready()[0]
    ordered = sorted(round(ms * 1e6) / 1e6 for ms in durations)
    for q, got in [(0.5, w.p50_ms), (0.95, w.p95_ms), (0.99, w.p99_ms)]:
        exact = ordered[int(q * (len(ordered) - 1))]
        assert abs(got - exact) <= 0.01 * exact * (1 + 1e-9)
    assert w.max_ms == ordered[-1]


def test_a_series_stored_by_the_previous_owner_continues_before_any_reload(
    span: SpanFactory,
) -> None:
    old_owner: dict[str, Any] = {}
    before = assembler(store=old_owner)
    for p in partials_of([span(1.0, 10), span(2.0, 10)], source=0):
        before.merge(p)
    table: dict[str, Any] = {}
    after = assembler(store=table)  # built at start, when the table is still empty
    table.update(old_owner)  # then Faust recovers the changelog; no reload has run yet
    for p in partials_of([span(3.0, 10)], source=1):
        after.merge(p)
    state = after.state("shop", "GET /cart")
    assert state is not None
    assert sum(w.requests for w in state.windows.values()) == 3


def test_after_a_long_backlog_stops_a_series_heard_early_closes_within_the_idle_time(
    span: SpanFactory,
) -> None:
    clock = ManualClock()
    asm = assembler(clock)
    early, busy = Feed(asm, 0), Feed(asm, 1)
    early.cut(span(1.0, 5, operation="GET /a"))
    early.cut(span(2.0, 5, operation="GET /a"))
    for second in range(0, 1000, 50):  # 1000 s of event time read in 2 s of processing time
        busy.cut(span(float(second), 5, operation="GET /b"))
        clock.advance(0.1)
    # The stream stops. Idle time extrapolates event time from the slowest source (2 s);
    # 150 s later that passes [0, 60) + 30 s lateness, far less than the 500 s a channel
    # last heard 1000 s of event time ago would take to count as quiet by pace alone.
    clock.advance(150)
    closed = {(w.operation, w.window_start_ns // NS) for w in asm.close_ready()}
    assert ("GET /a", 0) in closed


def test_a_series_taken_over_from_a_dead_owner_merges_its_queued_backlog(
    span: SpanFactory,
) -> None:
    """Failover: the partials queued behind a dead window stage are not late at their new owner.

    Two sources cut partials of two series each second; ``GET /a`` lives on the
    partials partition of worker A, ``GET /b`` on B's. A dies at 50 s; the
    partials of ``GET /a`` it had not merged wait on its partition until B takes it
    over (after the group's session timeout), by when B's watermark, driven by
    ``GET /b``, has passed their window.
    """
    clock = ManualClock()
    a_table: dict[str, Any] = {}
    b_table: dict[str, Any] = {}
    opts: dict[str, Any] = {"idle_close_seconds": 30, "startup_hold_seconds": 30}
    a, b = assembler(clock, store=a_table, **opts), assembler(clock, store=b_table, **opts)
    aggs = [PartialAggregator(60, source) for source in (0, 1)]
    queued: list[Partial] = []
    offset = 0
    for second in range(130):
        for agg in aggs:
            for op in ("GET /a", "GET /b"):
                agg.add(span(float(second), 5, operation=op), offset)
            offset += 1
            for p in agg.cut():
                if p.operation == "GET /b":
                    assert b.merge(p) is MergeResult.MERGED
                elif second < 50:
                    assert a.merge(p) is MergeResult.MERGED
                else:
                    queued.append(p)
        clock.advance(1)
        b.close_ready()
    b_table.update(a_table)  # B recovers A's partition from the changelog
    b.reload()  # and loads its series (the close timer's reload after a rebalance)

    results = [b.merge(p) for p in queued]

    assert results.count(MergeResult.LATE) == 0
    clock.advance(200)
    closed = [w for w in b.close_ready() if w.operation == "GET /a"]
    assert [(w.window_start_ns // NS, w.requests, w.late_spans) for w in closed][:3] == [
        (0, 120, 0),
        (60, 120, 0),
        (120, 20, 0),
    ]


@pytest.mark.parametrize("pause_s", [25, 45, 90], ids=["shorter", "longer", "much-longer"])
def test_a_series_waits_for_its_backlog_after_a_held_pause_longer_than_the_idle_close(
    span: SpanFactory, pause_s: int
) -> None:
    """A ClickHouse outage: both sources paused (held) for ``pause_s``, then their backlog.

    The first cut after the pause spans the whole backlog. ``GET /b``'s partials
    (its partials partition drains fast) arrive first, with the next cut's, which
    makes that backlog cut count for the sources; ``GET /a``'s backlog partials,
    queued on a slower partials partition, come after. Its channels were silent
    for the whole pause, but their sources were held: they still hold it back.
    """
    clock = ManualClock()
    asm = assembler(clock, idle_close_seconds=30, allowed_lateness_seconds=5)
    aggs = [PartialAggregator(60, source) for source in (0, 1)]
    offset = 0

    def cut(seconds: range) -> list[Partial]:
        nonlocal offset
        out = []
        for agg in aggs:
            for second in seconds:
                for op in ("GET /a", "GET /b"):
                    agg.add(span(float(second), 5, operation=op), offset)
                offset += 1
            out.extend(agg.cut())
        return out

    for second in range(100):  # live: a cut per second, event time = wall clock
        assert {asm.merge(p) for p in cut(range(second, second + 1))} == {MergeResult.MERGED}
        clock.advance(1)
        asm.close_ready()
    for _ in range(pause_s // 5):
        asm.hold(Hold(0))
        asm.hold(Hold(1))
        clock.advance(5)
        asm.close_ready()
    backlog = cut(range(100, 100 + pause_s))
    following = cut(range(100 + pause_s, 101 + pause_s))
    slow = [p for p in backlog if p.operation == "GET /a"]
    for p in [p for p in backlog + following if p.operation == "GET /b"]:
        asm.merge(p)
    asm.close_ready()

    assert [asm.merge(p) for p in slow] == [MergeResult.MERGED] * len(slow)


def stored_series(span: SpanFactory, operation: str) -> dict[str, Any]:
    state = SeriesState("shop", operation)
    state.add(partials_of([span(1, 5, operation=operation)])[0], 3)
    return json.loads(json.dumps(state.to_dict()))


@pytest.mark.parametrize(
    "bad",
    [
        "a version-1 detector blob",
        {"service": 7},
        {"windows": [[0, {"requests": "many"}]]},
        {"windows": [[0, None]] * 200_000},
        {"through": [[0, 1, ["x"]]]},
        {"closed_until_ns": 1e300},
        {"empty_run": -1},
        {"pending_late": math.inf},
        {"operation": "POST /other"},  # a value that is not its key's series
    ],
)
def test_a_stored_series_that_does_not_parse_is_rejected_and_the_others_load(
    span: SpanFactory, bad: Any
) -> None:
    good_key, bad_key = '["shop","GET /cart"]', '["shop","POST /pay"]'
    value = {**stored_series(span, "POST /pay"), **bad} if isinstance(bad, dict) else bad
    store: dict[str, Any] = {good_key: stored_series(span, "GET /cart"), bad_key: value}
    before = (
        REGISTRY.get_sample_value(
            "spanstream_state_rejected_total", {"table": "windows", "reason": "schema"}
        )
        or 0.0
    )
    asm = assembler(store=json.loads(json.dumps(store)) if isinstance(bad, dict) else store)
    assert asm.state("shop", "GET /cart") is not None
    assert asm.state("shop", "POST /pay") is None
    assert bad_key not in asm._store  # deleted: counted once, then compacted away
    after = REGISTRY.get_sample_value(
        "spanstream_state_rejected_total", {"table": "windows", "reason": "schema"}
    )
    assert after == before + 1
