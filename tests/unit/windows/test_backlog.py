"""Consuming a backlog must not turn on-time spans late.

While a backlog is consumed (catch-up after an outage, a replay, a new
worker) one cut of an input partition spans many windows, and the partials of
one cut travel on several partials partitions (keyed by series) that the window
stage drains at different paces. These tests deliver partials the way Kafka may:
in order per series key, in any order across keys.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable

import pytest

from pipeline.clock import ManualClock
from pipeline.model import Span
from pipeline.windows import MergeResult, Partial, PartialAggregator, WindowAssembler

NS = 1_000_000_000
SpanFactory = Callable[..., Span]


def by_series(partials: list[Partial], series: str) -> list[Partial]:
    return [p for p in partials if p.operation == series]


def test_a_later_cut_seen_first_does_not_make_the_rest_of_an_earlier_cut_late(
    span: SpanFactory,
) -> None:
    clock = ManualClock()
    asm = WindowAssembler(10, 5, clock, startup_hold_seconds=0, idle_close_seconds=10)
    agg = PartialAggregator(10, source_partition=0)
    offset = 0
    cuts = []
    for first, last in [(0, 300), (300, 400)]:  # one cut: 30 windows of a catching-up stream
        for ts in range(first, last):
            for op in ("A", "B"):
                agg.add(span(ts + 0.5, 5, operation=op), offset)
                offset += 1
        cuts.append(agg.cut())
    # Series A sits on a partials partition drained faster than B's.
    arrival = by_series(cuts[0], "A") + by_series(cuts[1], "A")
    arrival += by_series(cuts[0], "B") + by_series(cuts[1], "B")
    results = [asm.merge(p) for p in arrival]
    assert results == [MergeResult.MERGED] * len(arrival)
    assert (asm.late_partials, asm.late_spans) == (0, 0)
    clock.advance(100)
    closed = [w for w in asm.close_ready() if w.requests]
    assert Counter(w.operation for w in closed) == {"A": 40, "B": 40}
    assert sum(w.requests for w in closed) == 800
    assert all(w.late_spans == 0 and w.requests == 10 for w in closed)


def test_a_series_whose_partition_lags_holds_its_own_windows_open(span: SpanFactory) -> None:
    clock = ManualClock()
    # The default startup hold (idle_close_seconds) gives every source of a new series
    # time to be heard from before that series' watermark moves.
    asm = WindowAssembler(10, 5, clock, idle_close_seconds=10)
    aggs = [PartialAggregator(10, source) for source in range(2)]
    queued_b: list[Partial] = []
    for step in range(20):  # 20 cuts of 50 s per source; B's partials wait in their partition
        for source, agg in enumerate(aggs):
            for ts in range(step * 50, step * 50 + 50):
                for op in ("A", "B"):
                    agg.add(span(ts + 0.1 * source, 5, operation=op), step * 100 + ts % 50)
            partials = agg.cut()
            for p in by_series(partials, "A"):
                assert asm.merge(p) is MergeResult.MERGED
            queued_b += by_series(partials, "B")
        clock.advance(1)
        closed = asm.close_ready()
        assert all(w.operation == "A" for w in closed)
    b_state = asm.state("shop", "B")
    assert b_state is None  # nothing of B arrived yet: nothing of B may have closed
    for p in queued_b:
        assert asm.merge(p) is MergeResult.MERGED
    assert asm.late_spans == 0


@pytest.mark.parametrize("seed", range(4))
def test_skewed_partials_partitions_during_catch_up_lose_nothing(
    span: SpanFactory, seed: int
) -> None:
    """6 input partitions consumed at different speeds, partials drained from 3 queues in
    random bursts, windows closed in between: no span is late, every window is exact."""
    rnd = random.Random(seed)
    clock = ManualClock()
    asm = WindowAssembler(10, 5, clock, startup_hold_seconds=2, idle_close_seconds=10)
    ops = [f"op{i}" for i in range(7)]
    queue_of = {op: i % 3 for i, op in enumerate(ops)}
    queues: list[list[Partial]] = [[], [], []]
    aggs = [PartialAggregator(10, source) for source in range(6)]
    offsets = [0] * 6
    event_time = [0.0] * 6
    speed = [rnd.uniform(5, 40) for _ in range(6)]  # event seconds per processing step
    expected: Counter[tuple[str, int]] = Counter()
    closed_counts: Counter[tuple[str, int]] = Counter()
    end = 300.0

    def deliver(n: int) -> None:
        for _ in range(n):
            live = [q for q in queues if q]
            if not live:
                return
            queue = rnd.choice(live)
            for _ in range(min(len(queue), rnd.randint(1, 40))):
                assert asm.merge(queue.pop(0)) is not MergeResult.LATE

    while any(t < end for t in event_time):
        for source, agg in enumerate(aggs):
            if event_time[source] >= end:
                continue
            stop = min(end, event_time[source] + speed[source] * rnd.uniform(0.5, 1.5))
            while event_time[source] < stop:
                op = rnd.choice(ops)
                ts = event_time[source]
                agg.add(span(ts, rnd.uniform(1, 50), operation=op), offsets[source])
                expected[(op, int(ts // 10) * 10)] += 1
                offsets[source] += 1
                event_time[source] += rnd.uniform(0.01, 0.3)
            for p in agg.cut():
                queues[queue_of[p.operation]].append(p)
        deliver(rnd.randint(0, 3))
        clock.advance(rnd.uniform(0.05, 0.5))
        for w in asm.close_ready():
            closed_counts[(w.operation, w.window_start_ns // NS)] += w.requests
            assert w.late_spans == 0
    deliver(10_000)
    clock.advance(60)
    for w in asm.close_ready():
        closed_counts[(w.operation, w.window_start_ns // NS)] += w.requests
    assert asm.late_spans == 0
    assert +closed_counts == expected


def test_a_stall_of_the_window_stage_does_not_turn_a_lagging_source_late(
    span: SpanFactory,
) -> None:
    clock = ManualClock()
    asm = WindowAssembler(10, 5, clock, startup_hold_seconds=0, idle_close_seconds=10)
    fast, slow = PartialAggregator(10, 0), PartialAggregator(10, 1)
    for offset, (slow_ts, fast_ts) in enumerate([(100, 400), (110, 500)]):
        for agg, ts in [(slow, slow_ts), (fast, fast_ts)]:
            agg.add(span(ts, 5), offset)
            for p in agg.cut():
                asm.merge(p)
    clock.advance(12)  # nothing arrives for a while: e.g. a slow ClickHouse write
    watermark = asm.watermark.global_ns()
    assert watermark is not None and watermark <= (110 + 12) * NS
    assert all(w.window_start_ns < 110 * NS for w in asm.close_ready())
    slow.add(span(120, 5), 2)  # the slow partition's backlog, in order: on time
    assert [asm.merge(p) for p in slow.cut()] == [MergeResult.MERGED]
    assert asm.late_spans == 0


def test_an_input_partition_starved_during_catch_up_keeps_holding_the_watermark(
    span: SpanFactory,
) -> None:
    """The consumer may serve one partition's fetched records for longer than the idle
    timeout while another waits: silence during a backlog is not idleness."""
    clock = ManualClock()
    asm = WindowAssembler(10, 5, clock, startup_hold_seconds=0, idle_close_seconds=10)
    aggs = [PartialAggregator(10, source) for source in range(2)]
    offsets = [0, 0]

    def cut(source: int, step: int) -> list[MergeResult]:
        for ts in range(step * 100, step * 100 + 100, 2):  # 100 s of stream per cut
            aggs[source].add(span(ts + source * 0.5, 5), offsets[source])
            offsets[source] += 1
        return [asm.merge(p) for p in aggs[source].cut()]

    for step in range(3):
        assert cut(0, step) + cut(1, step) == [MergeResult.MERGED] * 20
        clock.advance(1)
    for step in range(3, 23):  # partition 1 waits 20 s behind partition 0's records
        cut(0, step)
        clock.advance(1)
        asm.close_ready()
    for step in range(3, 23):
        assert cut(1, step) == [MergeResult.MERGED] * 10, step
    assert asm.late_spans == 0


def test_a_quiet_partition_at_wall_clock_pace_stops_holding_the_watermark(
    span: SpanFactory,
) -> None:
    clock = ManualClock()
    asm = WindowAssembler(10, 5, clock, startup_hold_seconds=0, idle_close_seconds=10)
    busy, quiet = PartialAggregator(10, 0), PartialAggregator(10, 1)
    quiet.add(span(0.5, 5), 0)
    for p in quiet.cut():
        asm.merge(p)
    for step in range(30):  # live: one second of stream per second
        busy.add(span(step + 0.25, 5), step)
        for p in busy.cut():
            asm.merge(p)
        clock.advance(1)
    watermark = asm.watermark.global_ns()
    assert watermark is not None and watermark >= 25 * NS
    assert [w.window_start_ns // NS for w in asm.close_ready()][:2] == [0, 10]


def test_an_input_partition_not_heard_from_yet_during_catch_up_holds_the_watermark(
    span: SpanFactory,
) -> None:
    """A worker starts into a backlog and partition 0's records wait behind the others'
    for longer than the startup hold: partitions are numbered densely, so it is missed."""
    clock = ManualClock()
    asm = WindowAssembler(10, 5, clock, startup_hold_seconds=5, idle_close_seconds=10)
    aggs = [PartialAggregator(10, source) for source in range(3)]
    offsets = [0, 0, 0]

    def cut(source: int, step: int) -> list[MergeResult]:
        for ts in range(step * 100, step * 100 + 100, 2):
            aggs[source].add(span(ts + source * 0.5, 5), offsets[source])
            offsets[source] += 1
        return [asm.merge(p) for p in aggs[source].cut()]

    for step in range(20):
        cut(1, step)
        cut(2, step)
        clock.advance(1)
        asm.close_ready()
    for step in range(20):
        assert cut(0, step) == [MergeResult.MERGED] * 10, step
    assert asm.late_spans == 0


def test_an_empty_input_partition_does_not_hold_a_live_stream(span: SpanFactory) -> None:
    clock = ManualClock()
    asm = WindowAssembler(10, 5, clock, startup_hold_seconds=5, idle_close_seconds=10)
    agg = PartialAggregator(10, source_partition=1)  # partition 0 never has data
    for step in range(40):
        agg.add(span(step + 0.5, 5), step)
        for p in agg.cut():
            asm.merge(p)
        clock.advance(1)
    assert [w.window_start_ns // NS for w in asm.close_ready()][:2] == [0, 10]


def test_a_series_first_heard_from_a_source_down_a_lagging_lane_is_not_late(
    span: SpanFactory,
) -> None:
    """Rule 10, as a backlog read under CPU load measured it (issue #14).

    Input partition 1 is read late and its second cut spans 199 s of stream; its
    partials of series S (its first from that source) wait on S's partials partition
    (lane 1) while lane 0 delivers everything. Source 1's third cut, seen on lane 0,
    vouches for its second cut globally, and S's channel from source 0 has moved on:
    only lane 1 knows that S's partials from source 1 are still on their way.
    """
    clock = ManualClock()
    asm = WindowAssembler(10, 5, clock, startup_hold_seconds=0, idle_close_seconds=10)
    lane_of = {"A": 0, "S": 1}
    aggs = [PartialAggregator(10, source) for source in range(2)]
    offsets = [0, 0]
    queued: list[Partial] = []

    def cut(source: int, first_s: int, last_s: int, ops: tuple[str, ...]) -> list[Partial]:
        for ts in range(first_s, last_s):
            for op in ops:
                aggs[source].add(span(ts + 0.5, 5, operation=op), offsets[source])
                offsets[source] += 1
        return aggs[source].cut()

    def deliver(partials: list[Partial]) -> None:
        for p in partials:
            assert asm.merge(p, lane_of[p.operation]) is MergeResult.MERGED, p

    deliver(cut(1, 0, 1, ("A",)))  # partition 1 is heard from, then read late
    deliver(cut(0, 0, 100, ("A", "S")))
    deliver(cut(0, 100, 200, ("A", "S")))
    for p in cut(1, 1, 200, ("A", "S")):  # its next cut spans 199 s; lane 1 lags
        (queued.append(p) if p.operation == "S" else deliver([p]))
    deliver(cut(1, 200, 210, ("A",)))
    deliver(cut(0, 200, 210, ("A",)))
    clock.advance(1)
    closed = asm.close_ready()
    assert {w.operation for w in closed} == {"A"}
    assert max(w.window_start_ns for w in closed) >= 150 * NS
    deliver(queued)
    assert asm.late_spans == 0
    clock.advance(60)  # stopped: everything closes
    requests = Counter(w.operation for w in asm.close_ready() for _ in range(w.requests))
    assert requests["S"] == 399


def test_without_lanes_the_same_arrival_turns_late(span: SpanFactory) -> None:
    """The case above with the partials partition unknown (rule 10 off): the hole it fills."""
    clock = ManualClock()
    asm = WindowAssembler(10, 5, clock, startup_hold_seconds=0, idle_close_seconds=10)
    aggs = [PartialAggregator(10, source) for source in range(2)]
    offsets = [0, 0]

    def cut(source: int, first_s: int, last_s: int, ops: tuple[str, ...]) -> list[Partial]:
        for ts in range(first_s, last_s):
            for op in ops:
                aggs[source].add(span(ts + 0.5, 5, operation=op), offsets[source])
                offsets[source] += 1
        return aggs[source].cut()

    for p in cut(1, 0, 1, ("A",)) + cut(0, 0, 100, ("A", "S")) + cut(0, 100, 200, ("A", "S")):
        asm.merge(p)
    queued = cut(1, 1, 200, ("A", "S"))
    for p in [q for q in queued if q.operation == "A"] + cut(1, 200, 210, ("A",)):
        asm.merge(p)
    for p in cut(0, 200, 210, ("A",)):
        asm.merge(p)
    clock.advance(1)
    asm.close_ready()
    for p in [q for q in queued if q.operation == "S"]:
        asm.merge(p)
    assert asm.late_spans > 0
